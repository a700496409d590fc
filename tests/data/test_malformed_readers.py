"""Property tests: every reader turns a malformed file into a clear error naming the file (or skips it).

Each test writes random, truncated, reshaped or wrong-dtype contents in the real format to a temporary
file and checks that the reader either works or raises ``ValueError`` / ``FileNotFoundError`` whose
message names the file — never an exception from deep inside numpy, zipfile, gzip, Pillow or PyAV.
"""

from __future__ import annotations

import gzip
import io
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from video_files import write_video

from lstmvision.data import (
    KTHFrames,
    VideoClips,
    count_frames,
    load_digits,
    read_e3d_npz,
    read_frames,
    read_hmdb51_splits,
    read_mnist_idx,
    read_moving_mnist_npy,
    read_ucf101_splits,
)

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CLEAR_ERRORS = (ValueError, FileNotFoundError)


def expect_clear(call: Callable[[], object], name: str) -> object | None:
    """Run ``call``; a failure must be a clear error whose message names ``name`` (the file)."""
    try:
        return call()
    except CLEAR_ERRORS as exc:
        assert name in str(exc), f"{type(exc).__name__} does not name {name!r}: {exc}"
        return None


# hypothesis runs many examples per test and does not reset function-scoped fixtures between them:
# each example makes its own folder under this one, removed when the module's tests end
_SCRATCH = tempfile.TemporaryDirectory(prefix="lstmvision-malformed-")


@pytest.fixture(scope="module", autouse=True)
def _remove_scratch() -> Iterator[None]:
    yield
    _SCRATCH.cleanup()


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _fresh(suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(dir=_SCRATCH.name))
    return folder / f"sample{suffix}"


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


dtypes = st.sampled_from([np.uint8, np.int8, np.int32, np.int64, np.float32, np.float64, np.bool_])
small_shapes = st.lists(st.integers(0, 4), min_size=0, max_size=5).map(tuple)


# ---------------------------------------------------------------------------------------------- .npy
@FUZZ
@given(data=st.binary(max_size=300))
def test_npy_random_bytes(data: bytes) -> None:
    path = _fresh(".npy")
    path.write_bytes(data)
    expect_clear(lambda: read_moving_mnist_npy(path), path.name)


@FUZZ
@given(shape=small_shapes, dtype=dtypes, cut=st.floats(0.0, 1.0), seq_length=st.none() | st.integers(-1, 5))
def test_npy_reshaped_retyped_truncated(
    shape: tuple[int, ...], dtype: type, cut: float, seq_length: int | None
) -> None:
    path = _fresh(".npy")
    raw = _npy_bytes(np.ones(shape, dtype=dtype))
    path.write_bytes(raw[: max(1, int(len(raw) * cut))] if cut < 1.0 else raw)
    out = expect_clear(lambda: read_moving_mnist_npy(path, seq_length=seq_length), path.name)
    if out is not None:
        assert isinstance(out, np.ndarray) and out.ndim == 5 and out.dtype == np.uint8


# ---------------------------------------------------------------------------------------------- .npz
@FUZZ
@given(data=st.binary(max_size=300))
def test_npz_random_bytes(data: bytes) -> None:
    path = _fresh(".npz")
    path.write_bytes(data)
    expect_clear(lambda: read_e3d_npz(path), path.name)


big_ints = st.integers(-(2**62), 2**62) | st.integers(-3, 6)


@FUZZ
@given(
    n=st.integers(0, 3),
    clip_values=st.lists(big_ints, min_size=0, max_size=12),
    dims=st.sampled_from([(1, 3), (2, 3), (3,), (1, 4)]),
    raw_shape=small_shapes,
    raw_dtype=dtypes,
    drop=st.sampled_from([None, "clips", "dims", "input_raw_data"]),
    cut=st.floats(0.0, 1.0),
    seq_length=st.none() | st.integers(1, 5),
)
def test_npz_wrong_keys_shapes_dtypes(
    n: int,
    clip_values: list[int],
    dims: tuple[int, ...],
    raw_shape: tuple[int, ...],
    raw_dtype: type,
    drop: str | None,
    cut: float,
    seq_length: int | None,
) -> None:
    clips = np.resize(np.array(clip_values or [0], dtype=np.int64), (2, n, 2))
    raw = np.full(raw_shape, 0.5).astype(raw_dtype)
    dims_array = np.resize(np.array([1, *raw_shape[2:4], 2, 2], dtype=np.int64), dims)
    arrays = {"clips": clips, "dims": dims_array, "input_raw_data": raw, "output_raw_data": raw}
    if drop is not None:
        del arrays[drop]
    content = _npz_bytes(**arrays)
    path = _fresh(".npz")
    path.write_bytes(content[: max(1, int(len(content) * cut))] if cut < 0.95 else content)
    out = expect_clear(lambda: read_e3d_npz(path, seq_length=seq_length), path.name)
    if out is not None:
        assert isinstance(out, np.ndarray) and out.ndim == 5


def test_npz_clip_bounds_overflow_is_reported() -> None:
    # start + length overflows int64 and would wrap round below the frame count
    path = _fresh(".npz")
    clips = np.array([[[2**62, 2**62]], [[0, 1]]], dtype=np.int64)
    raw = np.zeros((4, 1, 2, 2), np.float32)
    path.write_bytes(_npz_bytes(clips=clips, dims=np.array([[1, 2, 2]]), input_raw_data=raw))
    with pytest.raises(ValueError, match="lies outside the 4 stored frames"):
        read_e3d_npz(path)


def test_npz_sequences_of_no_frames_are_reported() -> None:
    path = _fresh(".npz")
    clips = np.zeros((2, 3, 2), dtype=np.int64)  # three sequences, every clip empty
    raw = np.zeros((4, 1, 2, 2), np.float32)
    path.write_bytes(_npz_bytes(clips=clips, dims=np.array([[1, 2, 2]]), input_raw_data=raw))
    with pytest.raises(ValueError, match=f"{path.name}.*no frame"):
        read_e3d_npz(path)


# ---------------------------------------------------------------------------------------------- idx
def _idx(magic: int, dims: list[int], payload: bytes) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big", signed=True) for d in dims)
    return header + payload


@FUZZ
@given(data=st.binary(max_size=200), gz=st.booleans())
def test_idx_random_bytes(data: bytes, gz: bool) -> None:
    path = _fresh("-images-idx3-ubyte")
    path.write_bytes(gzip.compress(data) if gz else data)
    expect_clear(lambda: read_mnist_idx(path), path.name)


@FUZZ
@given(
    magic=st.sampled_from([2051, 2049, 2050, 0]),
    dims=st.lists(st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 4), min_size=0, max_size=3),
    payload=st.binary(max_size=64),
    gz=st.booleans(),
    cut=st.floats(0.0, 1.0),
)
def test_idx_header_and_payload(magic: int, dims: list[int], payload: bytes, gz: bool, cut: float) -> None:
    path = _fresh("-images-idx3-ubyte")
    content = _idx(magic, dims, payload)
    if gz:
        content = gzip.compress(content)
    path.write_bytes(content[: max(1, int(len(content) * cut))] if cut < 0.9 else content)
    out = expect_clear(lambda: read_mnist_idx(path), path.name)
    if out is not None:
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8


def test_idx_negative_dims_are_reported() -> None:
    path = _fresh("-images-idx3-ubyte")
    path.write_bytes(_idx(2051, [-1, -1, 1], b"\x00"))
    with pytest.raises(ValueError, match=f"{path.name}.*dims"):
        read_mnist_idx(path)


@FUZZ
@given(images=st.integers(0, 3), rows=st.integers(0, 30), labels=st.integers(0, 4))
def test_idx_digit_pool_wrong_shape(images: int, rows: int, labels: int) -> None:
    folder = Path(tempfile.mkdtemp(dir=_SCRATCH.name))
    (folder / "train-images-idx3-ubyte").write_bytes(
        _idx(2051, [images, rows, 28], bytes(images * rows * 28))
    )
    (folder / "train-labels-idx1-ubyte").write_bytes(_idx(2049, [labels], bytes(labels)))
    expect_clear(lambda: load_digits("train", folder), "idx")


def test_missing_files_name_the_file(workdir: Path) -> None:
    for reader, name in ((read_moving_mnist_npy, "a.npy"), (read_e3d_npz, "b.npz"), (read_mnist_idx, "c")):
        with pytest.raises(FileNotFoundError, match=name):
            reader(workdir / name)
        (workdir / name).write_bytes(b"")
        with pytest.raises(ValueError, match=f"{name}.*empty"):
            reader(workdir / name)


# --------------------------------------------------------------------------------------- frame images
def _png(size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 100, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 8, 3), 100, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def corrupt(good: bytes, mode: str, data: bytes, cut: float) -> bytes:
    if mode == "random":
        return data
    if mode == "truncated":
        return good[: int(len(good) * cut)]
    if mode == "flipped":
        middle = len(good) // 2
        return good[:middle] + data + good[middle + len(data) :]
    return good


corruptions = st.sampled_from(["random", "truncated", "flipped", "intact"])


def _kth_root(frame: bytes, suffix: str, count: int = 4) -> tuple[Path, Path]:
    root = Path(tempfile.mkdtemp(dir=_SCRATCH.name))
    video = root / "boxing" / "person01_boxing_d1_uncomp"
    video.mkdir(parents=True)
    for i in range(1, count + 1):
        (video / f"image_{i:04d}.png").write_bytes(_png())
    bad = video / f"image_{2:04d}{suffix}"
    (video / "image_0002.png").unlink()
    bad.write_bytes(frame)
    return root, bad


@FUZZ
@given(
    mode=corruptions,
    data=st.binary(max_size=80),
    cut=st.floats(0.0, 1.0),
    jpeg=st.booleans(),
    skip=st.booleans(),
)
def test_kth_corrupt_frame(mode: str, data: bytes, cut: float, jpeg: bool, skip: bool) -> None:
    good = _jpeg() if jpeg else _png()
    root, bad = _kth_root(corrupt(good, mode, data, cut), ".jpg" if jpeg else ".png")
    on_corrupt = "skip" if skip else "raise"
    dataset = KTHFrames(
        root, persons=[1], seq_length=2, image_size=8, stride=2, actions=["boxing"], on_corrupt=on_corrupt
    )
    assert len(dataset) == 2
    for index in range(2):
        try:
            clip, label = dataset[index]
        except ValueError as exc:
            assert not skip and bad.name in str(exc), exc
        else:
            assert clip.shape == (2, 1, 8, 8) and int(label) == 0
    if skip:
        assert dataset.skipped in (0, 1)


def _frame_folder(frame: bytes, suffix: str, count: int = 3) -> tuple[Path, Path]:
    folder = Path(tempfile.mkdtemp(dir=_SCRATCH.name)) / "clip"
    folder.mkdir()
    for i in range(count):
        (folder / f"frame_{i}.png").write_bytes(_png())
    (folder / "frame_1.png").unlink()
    bad = folder / f"frame_1{suffix}"
    bad.write_bytes(frame)
    return folder, bad


@FUZZ
@given(mode=corruptions, data=st.binary(max_size=80), cut=st.floats(0.0, 1.0), jpeg=st.booleans())
def test_video_frame_folder_corrupt_frame(mode: str, data: bytes, cut: float, jpeg: bool) -> None:
    good = _jpeg() if jpeg else _png()
    folder, bad = _frame_folder(corrupt(good, mode, data, cut), ".jpg" if jpeg else ".png")
    frames = expect_clear(lambda: read_frames(folder, [0, 1, 2]), bad.name)
    if frames is not None:
        assert isinstance(frames, np.ndarray) and frames.shape[0] == 3
    dataset = VideoClips([(folder, 0)], num_frames=3, resize=None, crop_size=None, on_corrupt="skip")
    try:
        clip, _ = dataset[0]
    except RuntimeError as exc:
        assert "unusable" in str(exc) and dataset.skipped == 1
    else:
        assert clip.shape[0] == 3 and dataset.skipped == 0


def test_video_frame_folder_of_mixed_sizes(workdir: Path) -> None:
    folder = workdir / "clip"
    folder.mkdir()
    (folder / "0.png").write_bytes(_png((8, 6)))
    (folder / "1.png").write_bytes(_png((4, 4)))
    with pytest.raises(ValueError, match="clip: frames of different sizes"):
        read_frames(folder, [0, 1])


def test_video_frame_folder_with_superscript_digits(workdir: Path) -> None:
    folder = workdir / "clip"
    folder.mkdir()
    for name in ("1\u00b22.png", "2.png"):
        (folder / name).write_bytes(_png())
    assert count_frames(folder) == 2
    assert read_frames(folder, [0, 1]).shape == (2, 6, 8, 3)


# ---------------------------------------------------------------------------------------- video files
@pytest.fixture(scope="module")
def good_video() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        frames = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
        return write_video(Path(folder) / "v.mp4", frames).read_bytes()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(["random", "truncated", "flipped"]),
    data=st.binary(max_size=200),
    cut=st.floats(0.0, 1.0),
    suffix=st.sampled_from([".mp4", ".avi", ".mkv"]),
)
def test_video_file_corrupt(good_video: bytes, mode: str, data: bytes, cut: float, suffix: str) -> None:
    path = _fresh(suffix)
    path.write_bytes(corrupt(good_video, mode, data, cut))
    expect_clear(lambda: count_frames(path), path.name)
    expect_clear(lambda: count_frames(path, exact=True), path.name)
    frames = expect_clear(lambda: read_frames(path, [0, 5]), path.name)
    if frames is not None:
        assert isinstance(frames, np.ndarray) and frames.shape[:1] == (2,)
    dataset = VideoClips([(path, 0)], num_frames=2, resize=None, crop_size=None, on_corrupt="skip")
    try:
        dataset[0]
    except RuntimeError as exc:
        assert "unusable" in str(exc) and dataset.skipped == 1


def test_missing_video_is_named(workdir: Path) -> None:
    with pytest.raises(CLEAR_ERRORS, match=r"absent\.mp4"):
        read_frames(workdir / "absent.mp4", [0])
    with pytest.raises(CLEAR_ERRORS, match=r"absent\.mp4"):
        count_frames(workdir / "absent.mp4")


# ---------------------------------------------------------------------------------------- split files
lines = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["1 Run", "2 Jump", "Run/v_Run_g01_c01.avi 1", "Run/v_Run_g01_c01.avi", "x.avi 1"]),
        st.from_regex(r"[0-9²٣]{1,3} [A-Za-z]{1,5}", fullmatch=True),
    ),
    max_size=5,
)


def _write_text(path: Path, content: list[str] | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text("\n".join(content), encoding="utf-8", errors="surrogatepass")


@FUZZ
@given(
    class_ind=lines | st.binary(max_size=40),
    train=lines | st.binary(max_size=40),
    test=lines | st.binary(max_size=40),
)
def test_ucf101_split_files(
    class_ind: list[str] | bytes, train: list[str] | bytes, test: list[str] | bytes
) -> None:
    root = Path(tempfile.mkdtemp(dir=_SCRATCH.name))
    video = root / "Run" / "v_Run_g01_c01.avi"
    video.parent.mkdir()
    video.write_bytes(b"")
    written = {"classInd.txt": class_ind, "trainlist01.txt": train, "testlist01.txt": test}
    for name, content in written.items():
        try:
            _write_text(root / name, content)
        except UnicodeEncodeError:
            (root / name).write_bytes(b"\xff\xfe\x00")
    try:
        read_ucf101_splits(root, val_fraction=0)
    except CLEAR_ERRORS as exc:
        assert any(name in str(exc) for name in written), exc


@FUZZ
@given(content=lines | st.binary(max_size=40))
def test_hmdb51_split_file(content: list[str] | bytes) -> None:
    root = Path(tempfile.mkdtemp(dir=_SCRATCH.name))
    (root / "run").mkdir()
    (root / "run" / "x.avi").write_bytes(b"")
    split = root / "run_test_split1.txt"
    try:
        _write_text(split, content)
    except UnicodeEncodeError:
        split.write_bytes(b"\xff\xfe\x00")
    try:
        read_hmdb51_splits(root, val_fraction=0)
    except CLEAR_ERRORS as exc:
        assert split.name in str(exc) or str(root) in str(exc), exc


def test_split_file_not_utf8_is_named(workdir: Path) -> None:
    (workdir / "classInd.txt").write_bytes(b"1 Run\n\xff\xfe bad\n")
    with pytest.raises(ValueError, match=r"classInd\.txt.*UTF-8"):
        read_ucf101_splits(workdir)


def test_split_file_unicode_digit_index_is_named(workdir: Path) -> None:
    (workdir / "classInd.txt").write_text("² Run\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"classInd\.txt:1"):
        read_ucf101_splits(workdir)
