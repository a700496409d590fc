"""The demo predictor made tiny, for tests that run the command line: 32x32 frames, 4 observed and 4
predicted, one ConvLSTM layer of 4 channels with 3x3 kernels. Each test adds its own data sizes."""

TINY_DEMO_NETWORK = [
    "--model.init_args.model.init_args.num_hidden", "[4]",
    "--model.init_args.model.init_args.filter_size", "3",
    "--model.init_args.model.init_args.input_length", "4",
    "--model.init_args.model.init_args.total_length", "8",
    "--data.init_args.image_size", "32",
    "--data.init_args.seq_length", "8",
]  # fmt: skip
