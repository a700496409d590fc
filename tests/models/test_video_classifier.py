"""CNN-LSTM, CNN-ConvLSTM and the single-frame baseline: equations, lengths, freezing, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmvision.encoders import SmallCNN, create_encoder
from lstmvision.models import CNNLSTM, CNNConvLSTM, SingleFrameClassifier

pytestmark = pytest.mark.usefixtures("one_thread")


def _encoder(in_channels: int = 1, **kwargs: object) -> SmallCNN:
    return SmallCNN(in_channels, (4, 6), pool_size=2, feature_dim=7, **kwargs)  # type: ignore[arg-type]


def _clips(B: int = 3, T: int = 6, C: int = 1, size: int = 12) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(B, T, C, size, size)


def test_cnn_lstm_equals_encoder_lstm_linear() -> None:
    torch.manual_seed(0)
    model = CNNLSTM(4, _encoder(), in_channels=1, hidden_size=5).eval()
    x = _clips()
    with torch.no_grad():
        encoder = model.frame_encoder
        features = torch.stack([encoder(x[:, t])[1] for t in range(x.shape[1])], dim=1)  # frame by frame
        h = torch.zeros(1, 3, 5)
        c = torch.zeros(1, 3, 5)
        for t in range(x.shape[1]):
            _, (h, c) = model.lstm(features[:, t : t + 1], (h, c))
        expected = model.classifier(h[0])
        got = model(x)
    err = (got - expected).abs().max().item()
    assert err < 1e-5, f"max error {err}"


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cnn_lstm_lengths_equal_truncated_clips(pooling: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = CNNLSTM(
        4,
        _encoder(),
        in_channels=1,
        hidden_size=5,
        num_layers=2,
        pooling=pooling,
        bidirectional=bidirectional,
    ).eval()  # type: ignore[arg-type]
    x = _clips()
    lengths = torch.tensor([6, 2, 4])
    with torch.no_grad():
        padded = model(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i : i + 1, :n])
            err = (padded[i] - alone[0]).abs().max().item()
            assert err < 1e-5, f"clip {i} ({n} frames): max error {err}"


def test_cnn_lstm_uses_frame_order_single_frame_does_not() -> None:
    torch.manual_seed(0)
    x = _clips()
    reversed_x = x.flip(1)
    recurrent = CNNLSTM(4, _encoder(), in_channels=1, hidden_size=5).eval()
    single = SingleFrameClassifier(4, _encoder(), in_channels=1).eval()
    with torch.no_grad():
        assert not torch.allclose(recurrent(x), recurrent(reversed_x), atol=1e-4)
        torch.testing.assert_close(single(x), single(reversed_x))
        per_frame = torch.stack([single.classifier(single.frame_encoder(x[:, t])[1]) for t in range(6)], 1)
        torch.testing.assert_close(single(x), per_frame.mean(1))
        torch.testing.assert_close(single(x, torch.tensor([6, 2, 4]))[1], per_frame[1, :2].mean(0))


def test_cnn_convlstm_reads_the_final_hidden_maps() -> None:
    torch.manual_seed(0)
    model = CNNConvLSTM(4, _encoder(), in_channels=1, hidden_channels=3, image_size=12, dense_size=5).eval()
    x = _clips()
    with torch.no_grad():
        maps = torch.stack([model.frame_encoder(x[:, t])[0] for t in range(6)], dim=1)  # (B, T, 6, 3, 3)
        outputs, _ = model.convlstm(maps)
        expected = model.classifier(outputs[:, -1])
        got = model(x)
    assert model.map_size == (3, 3)
    assert (got - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("head", ["flatten", "pool"])
def test_cnn_convlstm_lengths_equal_truncated_clips(head: str) -> None:
    torch.manual_seed(0)
    model = CNNConvLSTM(
        4, _encoder(), in_channels=1, hidden_channels=[3, 2], num_layers=2, bidirectional=True, head=head,
        image_size=12,
    ).eval()  # type: ignore[arg-type]  # fmt: skip
    x = _clips()
    lengths = torch.tensor([3, 6, 1])
    with torch.no_grad():
        padded = model(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            err = (padded[i] - model(x[i : i + 1, :n])[0]).abs().max().item()
            assert err < 1e-5, f"clip {i} ({n} frames): max error {err}"


def test_pool_head_takes_any_size_flatten_head_names_the_mismatch() -> None:
    pool = CNNConvLSTM(3, _encoder(), in_channels=1, hidden_channels=2, head="pool")
    assert pool(_clips(size=12)).shape == (3, 3) and pool(_clips(size=20)).shape == (3, 3)
    flatten = CNNConvLSTM(3, _encoder(), in_channels=1, hidden_channels=2, image_size=12)
    with pytest.raises(
        ValueError, match=r"built for 3x3 feature maps \(image_size\), but frames of 20x20 give 5x5"
    ):
        flatten(_clips(size=20))
    with pytest.raises(ValueError, match="head='flatten' needs image_size"):
        CNNConvLSTM(3, _encoder(), in_channels=1)


def test_frozen_encoder_gets_no_gradient_the_rest_does() -> None:
    torch.manual_seed(0)
    frozen = _encoder(trainable=False)
    model = CNNLSTM(3, frozen, in_channels=1, hidden_size=4)
    model.train()
    running_mean = [m.running_mean.clone() for m in frozen.modules() if isinstance(m, nn.BatchNorm2d)]
    model(_clips()).square().sum().backward()
    assert all(p.grad is None for p in frozen.parameters())
    trained = [n for n, p in model.named_parameters() if not n.startswith("encoder.")]
    assert trained and all(model.get_parameter(n).grad.abs().sum() > 0 for n in trained)
    after = [m.running_mean for m in frozen.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(running_mean, after)), "a frozen encoder's BatchNorm changed"


def test_frame_stack_feeds_consecutive_frames_as_channels() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("vgg_m", in_channels=5, width_multiplier=0.05, feature_dim=8)
    model = CNNLSTM(3, encoder, in_channels=1, hidden_size=4, frame_stack=5).eval()
    x = _clips(B=2, T=7, size=32)
    with torch.no_grad():
        features = torch.stack([encoder(x[:, t : t + 5].flatten(1, 2))[1] for t in range(3)], dim=1)
        _, (h, _) = model.lstm(features)
        torch.testing.assert_close(model(x), model.classifier(h[-1]))
        # a clip padded after 6 real frames equals its 6 frames alone (2 stacks)
        torch.testing.assert_close(model(x, torch.tensor([6, 7]))[0], model(x[:1, :6])[0])


def test_any_module_can_be_the_encoder() -> None:
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU())  # returns maps only
    model = CNNConvLSTM(3, conv, in_channels=1, hidden_channels=2, image_size=12)
    assert model.map_size == (6, 6)
    vectors = nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(9, 9))
    lstm = CNNLSTM(3, vectors, in_channels=1, hidden_size=4)
    assert lstm.lstm.input_size == 9 and lstm(_clips()).shape == (3, 3)
    with pytest.raises(ValueError, match="CNNConvLSTM needs an encoder that returns feature maps"):
        CNNConvLSTM(3, vectors, in_channels=1, head="pool")
    with pytest.raises(
        ValueError, match=r"could not run Sequential on a probe input of shape \(1, 1, 64, 64\)"
    ):
        CNNLSTM(3, nn.Sequential(nn.Flatten(), nn.Linear(12 * 12, 9)), in_channels=1)


def test_bad_inputs_are_named() -> None:
    model = CNNLSTM(3, _encoder(), in_channels=1, hidden_size=4)
    with pytest.raises(
        ValueError, match=r"CNNLSTM expects clips \(B, T, C=1, H, W\), got shape \(2, 4, 3, 8, 8\)"
    ):
        model(torch.rand(2, 4, 3, 8, 8))
    with pytest.raises(ValueError, match=r"got shape \(4, 1, 8, 8\)"):
        model(torch.rand(4, 1, 8, 8))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=4\]"):
        model(torch.rand(2, 4, 1, 8, 8), torch.tensor([5, 1]))
    with pytest.raises(ValueError, match="takes 1 input channels but the model feeds it 3"):
        CNNLSTM(3, _encoder(), in_channels=3)
    with pytest.raises(ValueError, match="pooling must be 'last', 'mean' or 'attention', got 'max'"):
        CNNLSTM(3, _encoder(), in_channels=1, pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"classifier_dropout must be in \[0, 1\), got 1.0"):
        CNNLSTM(3, _encoder(), in_channels=1, classifier_dropout=1.0)
    with pytest.raises(ValueError, match="num_classes must be >= 2, got 1"):
        SingleFrameClassifier(1, _encoder(), in_channels=1)
    with pytest.raises(ValueError, match="head must be 'flatten' or 'pool'"):
        CNNConvLSTM(3, _encoder(), in_channels=1, head="max")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"registered encoder name or an nn\.Module, got int"):
        CNNLSTM(3, 5, in_channels=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown encoder 'nope'"):
        CNNLSTM(3, "nope", in_channels=1)
