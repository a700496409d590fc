"""Moving MNIST: readers on tiny files written here in each public format, the generator, the data module."""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from lstmvision.data import (
    DIGIT_SIZE,
    EpochSampler,
    GeneratedMovingMNIST,
    MovingMNISTArray,
    MovingMNISTDataModule,
    generate_moving_digits,
    load_digits,
    read_e3d_npz,
    read_mnist_idx,
    read_moving_mnist_npy,
)

# --------------------------------------------------------------------------------------------------
# helpers writing the public formats
# --------------------------------------------------------------------------------------------------


def named(path: Path, text: str = "") -> str:
    """A pytest `match` pattern requiring the file name, then `text`."""
    return re.escape(str(path)) + ".*" + text


def truncate(path: Path, n_bytes: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-n_bytes])


def write_npy(path: Path, frames: np.ndarray) -> Path:
    np.save(path, frames)
    return path


def tiny_npy_frames(t: int = 20, n: int = 3, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, n, size, size), dtype=np.uint8)


def write_e3d_npz(path: Path, n: int = 3, in_len: int = 10, out_len: int = 10, size: int = 64) -> np.ndarray:
    """PredRNN layout: sequence i occupies frames [i*(in+out), (i+1)*(in+out)); returns (N, T, 1, H, W)."""
    total = in_len + out_len
    raw = np.random.default_rng(1).random((n * total, 1, size, size), dtype=np.float32)
    clips = np.zeros((2, n, 2), dtype=np.int32)
    clips[0, :, 0] = np.arange(n) * total
    clips[0, :, 1] = in_len
    clips[1, :, 0] = np.arange(n) * total + in_len
    clips[1, :, 1] = out_len
    np.savez(path, clips=clips, dims=np.array([[1, size, size]], dtype=np.int32), input_raw_data=raw)
    return raw.reshape(n, total, 1, size, size)


def idx_bytes(array: np.ndarray) -> bytes:
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_mnist_dir(directory: Path, n_train: int = 30, n_test: int = 10, gz: bool = False) -> None:
    rng = np.random.default_rng(2)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", rng.integers(0, 10, n))


# --------------------------------------------------------------------------------------------------
# mnist_test_seq.npy
# --------------------------------------------------------------------------------------------------


def test_npy_round_trip(tmp_path: Path) -> None:
    frames = tiny_npy_frames()
    path = write_npy(tmp_path / "mnist_test_seq.npy", frames)
    sequences = read_moving_mnist_npy(path)
    assert sequences.shape == (3, 20, 1, 64, 64) and sequences.dtype == np.uint8
    for n in range(3):
        np.testing.assert_array_equal(sequences[n, :, 0], frames[:, n])
    assert read_moving_mnist_npy(path, seq_length=12, mmap=False).shape == (3, 12, 1, 64, 64)

    dataset = MovingMNISTArray(path, seq_length=20, image_size=64)
    item = dataset[1]
    assert item.dtype == torch.float32 and item.shape == (20, 1, 64, 64)
    np.testing.assert_allclose(item[:, 0].numpy(), frames[:, 1] / 255.0, rtol=0, atol=1e-7)
    assert float(item.max()) <= 1.0 and float(item.min()) >= 0.0


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((20, 2, 64, 64), dtype=np.float32), "expected dtype uint8"),
        (np.zeros((20, 64, 64), dtype=np.uint8), r"expected 4 dims \(T, N, H, W\), got shape \(20, 64, 64\)"),
        (np.zeros((20, 0, 64, 64), dtype=np.uint8), "non-empty"),
    ],
)
def test_npy_bad_content(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = write_npy(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=named(path, message)):
        read_moving_mnist_npy(path)


def test_npy_truncated_empty_missing_garbage(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "cut.npy", tiny_npy_frames(n=2))
    truncate(path, 100)
    with pytest.raises(ValueError, match=named(path, "truncated")):
        read_moving_mnist_npy(path)
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=named(empty, "empty")):
        read_moving_mnist_npy(empty)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"this is not numpy data at all")
    with pytest.raises(ValueError, match=named(garbage, "not a readable .npy")):
        read_moving_mnist_npy(garbage)
    with pytest.raises(FileNotFoundError, match=named(tmp_path / "nowhere.npy")):
        read_moving_mnist_npy(tmp_path / "nowhere.npy")


def test_npy_too_short(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "short.npy", tiny_npy_frames(t=8, n=2))
    with pytest.raises(ValueError, match=named(path, "8 frames, fewer than seq_length=20")):
        read_moving_mnist_npy(path, seq_length=20)


# --------------------------------------------------------------------------------------------------
# E3D-LSTM / PredRNN .npz
# --------------------------------------------------------------------------------------------------


def test_e3d_npz_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "moving-mnist-valid.npz"
    expected = write_e3d_npz(path)
    sequences = read_e3d_npz(path)
    assert sequences.shape == (3, 20, 1, 64, 64) and sequences.dtype == np.float32
    np.testing.assert_array_equal(sequences, expected)
    np.testing.assert_array_equal(read_e3d_npz(path, seq_length=15), expected[:, :15])

    item = MovingMNISTArray(path, seq_length=20)[2]
    assert item.dtype == torch.float32 and item.shape == (20, 1, 64, 64)
    np.testing.assert_array_equal(item.numpy(), expected[2])


def test_e3d_npz_scattered_clips_and_output_store(tmp_path: Path) -> None:
    """Clips in no regular order, of varying lengths, and output frames in `output_raw_data`."""
    rng = np.random.default_rng(3)
    raw_in = rng.random((12, 1, 8, 8), dtype=np.float32)
    raw_out = rng.random((10, 1, 8, 8), dtype=np.float32)
    clips = np.array([[[5, 3], [0, 4]], [[6, 4], [1, 2]]], dtype=np.int64)  # (2, N=2, 2): 7 and 6 frames
    path = tmp_path / "scattered.npz"
    np.savez(
        path,
        clips=clips,
        dims=np.array([[1, 8, 8], [1, 8, 8]]),
        input_raw_data=raw_in,
        output_raw_data=raw_out,
    )
    sequences = read_e3d_npz(path, seq_length=6)
    assert sequences.shape == (2, 6, 1, 8, 8)
    np.testing.assert_array_equal(sequences[0], np.concatenate([raw_in[5:8], raw_out[6:9]]))
    np.testing.assert_array_equal(sequences[1], np.concatenate([raw_in[0:4], raw_out[1:3]]))
    with pytest.raises(ValueError, match=named(path, "different lengths")):
        read_e3d_npz(path)


def _npz_with(path: Path, **changes: np.ndarray) -> Path:
    write_e3d_npz(path, n=2, size=8)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clips": None}, "missing key 'clips'"),
        ({"input_raw_data": None}, "missing key 'input_raw_data'"),
        ({"clips": np.zeros((2, 2), dtype=np.int32)}, r"'clips' expected shape \(2, N, 2\), got \(2, 2\)"),
        ({"clips": np.zeros((2, 2, 2), dtype=np.float32)}, "'clips' expected integer"),
        ({"dims": np.array([1, 8, 8])}, r"'dims' expected integers shaped \(1, 3\) or \(2, 3\)"),
        ({"dims": np.array([[1, 16, 16]])}, "'dims' says"),
        ({"input_raw_data": np.zeros((40, 1, 8, 8), dtype=np.uint8)}, "floating-point frames"),
        ({"input_raw_data": np.full((40, 1, 8, 8), 2.0, dtype=np.float32)}, r"values in \[0, 1\]"),
        ({"input_raw_data": np.zeros((40, 8, 8), dtype=np.float32)}, "expected 4 dims"),
        ({"input_raw_data": np.zeros((25, 1, 8, 8), dtype=np.float32)}, "outside the 25 stored frames"),
        ({"dims": np.array([[1, 8, 8], [1, 8, 8]])}, "missing key 'output_raw_data'"),
    ],
)
def test_e3d_npz_bad_content(tmp_path: Path, changes: dict[str, np.ndarray], message: str) -> None:
    path = _npz_with(tmp_path / "bad.npz", **changes)
    with pytest.raises(ValueError, match=named(path, message)):
        read_e3d_npz(path)


def test_e3d_npz_truncated_empty_object_short(tmp_path: Path) -> None:
    path = tmp_path / "cut.npz"
    write_e3d_npz(path, n=2, size=8)
    truncate(path, 64)
    with pytest.raises(ValueError, match=named(path, "not a readable .npz")):
        read_e3d_npz(path)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=named(empty, "empty")):
        read_e3d_npz(empty)
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        clips=np.array([object()], dtype=object),
        dims=np.array([[1, 8, 8]]),
        input_raw_data=np.zeros((2, 1, 8, 8), dtype=np.float32),
    )
    with pytest.raises(ValueError, match=named(pickled, "cannot read key 'clips'")):
        read_e3d_npz(pickled)
    short = tmp_path / "short.npz"
    write_e3d_npz(short, n=2, in_len=3, out_len=3, size=8)
    with pytest.raises(ValueError, match=named(short, "6 frames, fewer than seq_length=10")):
        read_e3d_npz(short, seq_length=10)


# --------------------------------------------------------------------------------------------------
# MNIST idx
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, ext: str) -> None:
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    np.testing.assert_array_equal(
        read_mnist_idx(write_idx(tmp_path / f"i-images-idx3-ubyte{ext}", images)), images
    )
    np.testing.assert_array_equal(
        read_mnist_idx(write_idx(tmp_path / f"i-labels-idx1-ubyte{ext}", labels)), labels
    )


@pytest.mark.parametrize("ext", ["", ".gz"])
def test_idx_truncated(tmp_path: Path, ext: str) -> None:
    path = write_idx(tmp_path / f"train-images-idx3-ubyte{ext}", np.ones((3, 28, 28)))
    truncate(path, 10)
    message = "truncated" if ext == "" else "corrupt or truncated gzip"
    with pytest.raises(ValueError, match=named(path, message)):
        read_mnist_idx(path)


def test_idx_bad_header_and_size(tmp_path: Path) -> None:
    wrong_magic = tmp_path / "wrong-images-idx3-ubyte"
    wrong_magic.write_bytes(np.array([2052, 1, 28, 28], dtype=">i4").tobytes() + bytes(784))
    with pytest.raises(ValueError, match=named(wrong_magic, "expected magic number 2051.*got 2052")):
        read_mnist_idx(wrong_magic)
    # little-endian dims are a classic mistake; the header then declares a huge size
    little = tmp_path / "little-images-idx3-ubyte"
    little.write_bytes(np.array([2051, 1, 28, 28], dtype="<i4").tobytes() + bytes(784))
    with pytest.raises(ValueError, match=named(little, "magic number")):
        read_mnist_idx(little)
    trailing = tmp_path / "trailing-labels-idx1-ubyte"
    trailing.write_bytes(idx_bytes(np.arange(4)) + b"\x00")
    with pytest.raises(ValueError, match=named(trailing, "trailing bytes")):
        read_mnist_idx(trailing)
    header_only = tmp_path / "header-images-idx3-ubyte"
    header_only.write_bytes(np.array([2051, 2], dtype=">i4").tobytes())
    with pytest.raises(ValueError, match=named(header_only, "truncated header")):
        read_mnist_idx(header_only)


@pytest.mark.parametrize("gz", [False, True])
def test_load_digits_from_idx_dir(tmp_path: Path, gz: bool) -> None:
    write_mnist_dir(tmp_path, gz=gz)
    train, test = load_digits("train", tmp_path), load_digits("test", tmp_path)
    assert train.images.shape == (30, 28, 28) and train.labels.shape == (30,)
    assert test.images.shape == (10, 28, 28)


def test_load_digits_single_file_split_and_missing_labels(tmp_path: Path) -> None:
    images = np.arange(10, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "my-images-idx3-ubyte", images)
    write_idx(tmp_path / "my-labels-idx1-ubyte", np.arange(10))
    train, test = load_digits("train", path), load_digits("test", path)
    assert len(train.images) == 8 and len(test.images) == 2
    np.testing.assert_array_equal(test.labels, [8, 9])
    lonely = write_idx(tmp_path / "lonely-images-idx3-ubyte", images)
    with pytest.raises(FileNotFoundError, match="lonely-labels-idx1-ubyte"):
        load_digits("train", lonely)
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    with pytest.raises(FileNotFoundError, match=named(empty_dir, "no MNIST train images file")):
        load_digits("train", empty_dir)


# --------------------------------------------------------------------------------------------------
# shipped asset
# --------------------------------------------------------------------------------------------------


def test_asset_pools_are_real_disjoint_and_small() -> None:
    train, test = load_digits("train"), load_digits("test")
    assert train.images.shape == (4000, 28, 28) and test.images.shape == (1000, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.uint8
    assert set(np.unique(train.labels)) == set(range(10)) == set(np.unique(test.labels))
    # real handwriting: dark background, bright strokes
    assert train.images[:, 0, 0].max() == 0 and train.images.max(axis=(1, 2)).min() > 200
    train_keys = {image.tobytes() for image in train.images}
    shared = sum(image.tobytes() in train_keys for image in test.images)
    assert shared == 0, f"{shared} test digits also in the train pool"
    asset = Path(__file__).parents[2] / "src" / "lstmvision" / "data" / "assets" / "mnist_digits.npz"
    assert asset.stat().st_size < 2_000_000
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_digits("val")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------------------


def _reference_bounce(
    rng: np.random.Generator, digits: np.ndarray, seq_length: int, image_size: int, speed: tuple[float, float]
) -> np.ndarray:
    """Frame-by-frame reflection with one digit, drawing the random numbers in the generator's order."""
    chosen = rng.integers(len(digits), size=1)
    travel = image_size - DIGIT_SIZE
    pos = rng.uniform(0.0, travel, size=(1, 2))[0]
    angle = rng.uniform(0.0, 2 * np.pi, size=1)[0]
    step = rng.uniform(*speed, size=1)[0]
    vel = step * np.array([np.sin(angle), np.cos(angle)])
    frames = np.zeros((seq_length, image_size, image_size), dtype=np.float32)
    for t in range(seq_length):
        y, x = np.rint(pos).astype(int)
        frames[t, y : y + DIGIT_SIZE, x : x + DIGIT_SIZE] = digits[chosen[0]] / 255.0
        pos = pos + vel
        for axis in range(2):  # mirror whatever crossed a border
            while not 0 <= pos[axis] <= travel:
                if pos[axis] < 0:
                    pos[axis], vel[axis] = -pos[axis], -vel[axis]
                else:
                    pos[axis], vel[axis] = 2 * travel - pos[axis], -vel[axis]
    return frames


@pytest.mark.parametrize("seed", range(4))
def test_generator_matches_stepwise_bounce(seed: int) -> None:
    digits = load_digits("test").images
    frames, _ = generate_moving_digits(
        np.random.default_rng(seed), digits, num_digits=1, seq_length=30, image_size=48, speed=(5.0, 9.0)
    )
    expected = _reference_bounce(np.random.default_rng(seed), digits, 30, 48, (5.0, 9.0))
    np.testing.assert_allclose(frames[:, 0], expected, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    image_size=st.integers(29, 80),
    low=st.floats(0.0, 12.0),
    extra=st.floats(0.0, 8.0),
)
def test_bouncing_digit_stays_whole_inside(seed: int, image_size: int, low: float, extra: float) -> None:
    digits = load_digits("train")
    frames, chosen = generate_moving_digits(
        np.random.default_rng(seed),
        digits.images,
        num_digits=1,
        image_size=image_size,
        seq_length=25,
        speed=(low, low + extra),
    )
    # a digit cut by a border would lose ink: every frame must hold all of it
    ink = frames.sum(axis=(1, 2, 3))
    expected = digits.images[chosen[0]].sum() / 255.0
    np.testing.assert_allclose(ink, expected, rtol=1e-5)


def test_generator_output_and_motion() -> None:
    dataset = GeneratedMovingMNIST(8, seed=5)
    for index in range(4):
        sequence = dataset[index]
        assert sequence.shape == (20, 1, 64, 64) and sequence.dtype == torch.float32
        assert float(sequence.min()) >= 0.0 and float(sequence.max()) <= 1.0
        assert float(sequence.max()) > 0.9  # digits are actually drawn
        assert (sequence[1:] - sequence[:-1]).abs().sum(dim=(1, 2, 3)).min() > 0  # every frame moves
        ys = torch.arange(64.0)[:, None]
        mass = sequence[:, 0].sum(dim=(1, 2))
        centre_y = (sequence[:, 0] * ys).sum(dim=(1, 2)) / mass
        centre_x = (sequence[:, 0] * ys.T).sum(dim=(1, 2)) / mass
        assert float(torch.hypot(centre_y.diff(), centre_x.diff()).max()) > 0.5


def test_generator_is_a_function_of_seed_stream_epoch_index() -> None:
    a = GeneratedMovingMNIST(10, seed=7)
    b = GeneratedMovingMNIST(10, seed=7)
    torch.testing.assert_close(a[3], b[3], rtol=0, atol=0)
    # order of requests does not matter
    later = [b[i] for i in (9, 3)]
    torch.testing.assert_close(later[1], a[3], rtol=0, atol=0)
    assert not torch.equal(a[3], a[4])
    assert not torch.equal(a[3], GeneratedMovingMNIST(10, seed=8)[3])
    assert not torch.equal(a[3], GeneratedMovingMNIST(10, seed=7, stream=1)[3])
    # index 13 = epoch 1, item 3
    torch.testing.assert_close(a[13], torch.from_numpy(a.generate(3, epoch=1)[0]), rtol=0, atol=0)
    assert not torch.equal(a[3], a[13])


def test_generator_options() -> None:
    digits = load_digits("train").images
    # three digits in a 40x40 frame always overlap somewhere, so "sum" and "max" must differ
    render = functools.partial(generate_moving_digits, num_digits=3, image_size=40, seq_length=7, speed=3.0)
    frames, chosen = render(np.random.default_rng(0), digits)
    assert frames.shape == (7, 1, 40, 40) and chosen.shape == (3,)
    summed, _ = render(np.random.default_rng(0), digits, combine="sum")
    assert float(summed.max()) <= 1.0 and (summed >= frames).all() and float((summed - frames).max()) > 0
    dataset = GeneratedMovingMNIST(2, split="test", num_digits=1, image_size=32, seq_length=5)
    images, labels = dataset.generate(0)
    assert images.shape == (5, 1, 32, 32) and labels.shape == (1,) and 0 <= int(labels[0]) <= 9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_digits": 0}, "num_digits must be >= 1, got 0"),
        ({"image_size": 28}, "image_size must exceed the 28-pixel digits, got 28"),
        ({"seq_length": 0}, "seq_length must be >= 1, got 0"),
        ({"speed": (4.0, 2.0)}, r"speed must be .* got \(4.0, 2.0\)"),
        ({"speed": -1.0}, "speed must be"),
        ({"combine": "mean"}, "combine must be 'max' or 'sum', got 'mean'"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"length": 0}, "length must be >= 1"),
    ],
)
def test_generator_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"length": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        GeneratedMovingMNIST(**arguments)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# epoch freshness through DataLoader workers
# --------------------------------------------------------------------------------------------------


def _epochs(loader: DataLoader[torch.Tensor], n: int) -> list[torch.Tensor]:
    return [torch.cat(list(loader)) for _ in range(n)]


def test_epoch_sampler_fresh_each_epoch_and_same_in_workers() -> None:
    dataset = GeneratedMovingMNIST(4, seq_length=4, image_size=32)
    serial = _epochs(DataLoader(dataset, batch_size=2, sampler=EpochSampler(4)), 2)
    assert not torch.equal(serial[0], serial[1])
    sampler = EpochSampler(4)
    parallel_loader = DataLoader(
        dataset, batch_size=2, sampler=sampler, num_workers=2, persistent_workers=True
    )
    parallel = _epochs(parallel_loader, 2)
    for epoch in range(2):
        torch.testing.assert_close(parallel[epoch], serial[epoch], rtol=0, atol=0)
    sampler.set_epoch(0)  # as Lightning does on resume
    torch.testing.assert_close(torch.cat(list(parallel_loader)), serial[0], rtol=0, atol=0)


class _Recorder(L.LightningModule):
    """Keeps the first batch of every train and validation epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.train_batches: list[torch.Tensor] = []
        self.val_batches: list[torch.Tensor] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if batch_idx == 0:
            self.train_batches.append(batch.clone())
        return (self.weight * batch.mean()) ** 2

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        if batch_idx == 0:
            self.val_batches.append(batch.clone())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_datamodule_in_trainer_fresh_train_fixed_val() -> None:
    datamodule = MovingMNISTDataModule(image_size=32, seq_length=4, train_size=4, val_size=2, batch_size=2)
    model = _Recorder()
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=datamodule)
    first = model.train_batches
    assert len(first) == 3 and first[0].shape == (2, 4, 1, 32, 32)
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    assert all(torch.equal(model.val_batches[0], batch) for batch in model.val_batches[1:])


# --------------------------------------------------------------------------------------------------
# data module sources
# --------------------------------------------------------------------------------------------------


def _first_batch(loader: DataLoader[torch.Tensor]) -> torch.Tensor:
    return next(iter(loader))


def test_datamodule_generated(tmp_path: Path) -> None:
    datamodule = MovingMNISTDataModule(
        image_size=48,
        seq_length=6,
        train_size=6,
        val_size=3,
        test_size=5,
        batch_size=3,
        num_digits=1,
        speed=2.5,
        seed=1,
    )
    datamodule.setup("fit")
    batch = _first_batch(datamodule.train_dataloader())
    assert batch.shape == (3, 6, 1, 48, 48) and batch.dtype == torch.float32
    val = _first_batch(datamodule.val_dataloader())
    torch.testing.assert_close(val, _first_batch(datamodule.val_dataloader()), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="test set is not set up"):
        datamodule.test_dataloader()
    datamodule.setup("predict")
    test = _first_batch(datamodule.test_dataloader())
    assert test.shape == (3, 6, 1, 48, 48)
    torch.testing.assert_close(_first_batch(datamodule.predict_dataloader()), test, rtol=0, atol=0)
    assert not torch.equal(test, val)  # validation and test are different sequences

    write_mnist_dir(tmp_path)
    idx_module = MovingMNISTDataModule(
        mnist_path=str(tmp_path),
        image_size=32,
        seq_length=3,
        train_size=2,
        val_size=2,
        test_size=2,
        batch_size=2,
    )
    idx_module.setup()
    for loader in (idx_module.train_dataloader(), idx_module.val_dataloader(), idx_module.test_dataloader()):
        assert _first_batch(loader).shape == (2, 3, 1, 32, 32)


def test_datamodule_files(tmp_path: Path) -> None:
    npy = write_npy(tmp_path / "mnist_test_seq.npy", tiny_npy_frames(t=20, n=4, size=32))
    npz = tmp_path / "moving-mnist-valid.npz"
    expected = write_e3d_npz(npz, n=3, size=32)
    datamodule = MovingMNISTDataModule(
        train_path=str(npy), val_path=str(npz), test_path=str(npz), image_size=32, seq_length=12, batch_size=2
    )
    datamodule.setup()
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader(), datamodule.test_dataloader()):
        batch = _first_batch(loader)
        assert batch.shape == (2, 12, 1, 32, 32) and batch.dtype == torch.float32
        assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0
    np.testing.assert_array_equal(_first_batch(datamodule.test_dataloader()).numpy(), expected[:2, :12])


def test_datamodule_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        MovingMNISTDataModule(test_path=str(missing)).setup("test")
    npy = write_npy(tmp_path / "mnist_test_seq.npy", tiny_npy_frames(t=20, n=2, size=32))
    with pytest.raises(ValueError, match=named(npy, "frames are 32x32, expected image_size 64x64")):
        MovingMNISTDataModule(val_path=str(npy)).setup("validate")
    with pytest.raises(ValueError, match=named(npy, "20 frames, fewer than seq_length=30")):
        MovingMNISTDataModule(val_path=str(npy), image_size=32, seq_length=30).setup("fit")
    text = tmp_path / "sequences.txt"
    text.write_text("1 2 3")
    with pytest.raises(ValueError, match=named(text, r"expected a .npy .* or .npz")):
        MovingMNISTDataModule(train_path=str(text)).setup("fit")
    with pytest.raises(ValueError, match="stage must be one of"):
        MovingMNISTDataModule().setup("train")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        MovingMNISTDataModule(batch_size=0)
