"""Property tests: cells, sequence layers and models turn malformed input or configuration into clear errors.

Random tensor ranks, sizes, dtypes and lengths go through every cell, wrapper and registered model; each
call either works or raises ``ValueError`` / ``TypeError`` naming the argument or the model — never an
error from deep inside torch (a conv with mismatched channels, an empty reduction, a bad reshape).
Constructors reject out-of-range values naming the key, before any training starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lstmvision.cells import (
    ConvLSTM,
    ConvLSTMCell,
    Eidetic3DLSTM,
    Eidetic3DLSTMCell,
    SpatioTemporalLSTM,
    SpatioTemporalLSTMCell,
)
from lstmvision.models import create_model, get_model_factory, list_models

FUZZ = settings(max_examples=30, deadline=None)
CLEAR_ERRORS = (ValueError, TypeError)

# float64/float16 into float32 weights must be named too (outside autocast, which mixes dtypes on purpose)
dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool])
shapes = st.lists(st.integers(0, 5), min_size=0, max_size=7).map(tuple)


def _tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.rand(shape).to(dtype)


def expect_clear(call: Callable[[], object], *names: str) -> object | None:
    """Run ``call``; a failure must be a clear error naming one of ``names``."""
    try:
        with torch.no_grad():
            return call()
    except CLEAR_ERRORS as exc:
        assert any(name in str(exc) for name in names), f"{type(exc).__name__} names none of {names}: {exc}"
        return None


# --------------------------------------------------------------------------------------------- cells
CELLS: dict[str, Callable[[], nn.Module]] = {
    "ConvLSTMCell": lambda: ConvLSTMCell(2, 3, 3),
    "ConvLSTMCell-valid": lambda: ConvLSTMCell(2, 3, 3, padding="valid"),
    "SpatioTemporalLSTMCell": lambda: SpatioTemporalLSTMCell(2, 3, 3),
    "Eidetic3DLSTMCell": lambda: Eidetic3DLSTMCell(2, 3, 3, window_length=2),
}
LAYERS: dict[str, Callable[[], nn.Module]] = {
    "ConvLSTM": lambda: ConvLSTM(2, 3, 3, 2, bidirectional=True),
    "SpatioTemporalLSTM": lambda: SpatioTemporalLSTM(2, 3, 3, 2),
    "Eidetic3DLSTM": lambda: Eidetic3DLSTM(2, 3, 3, 2, window_length=2),
}
_built: dict[str, nn.Module] = {}


def _module(table: dict[str, Callable[[], nn.Module]], name: str) -> nn.Module:
    if name not in _built:
        torch.manual_seed(0)
        _built[name] = table[name]().eval()
    return _built[name]


def _who(name: str) -> str:
    return name.split("-")[0]


@FUZZ
@given(name=st.sampled_from(sorted(CELLS)), shape=shapes, dtype=dtypes)
def test_cells_reject_bad_inputs_clearly(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    cell = _module(CELLS, name)
    out = expect_clear(lambda: cell(_tensor(shape, dtype)), _who(name), "x_t", "input")
    if out is not None:
        h, _ = out  # type: ignore[misc]
        assert h.shape[0] == shape[0] and h.shape[1] == 3


@FUZZ
@given(name=st.sampled_from(sorted(CELLS)), state_shape=shapes, dtype=dtypes)
def test_cells_reject_bad_states_clearly(name: str, state_shape: tuple[int, ...], dtype: torch.dtype) -> None:
    cell = _module(CELLS, name)
    x = torch.rand(2, 2, 2, 6, 6) if name.startswith("Eidetic") else torch.rand(2, 2, 6, 6)
    _, good = cell(x)
    state = type(good)(*(_tensor(state_shape, dtype) for _ in good))
    expect_clear(lambda: cell(x, state), _who(name), "state")


@FUZZ
@given(
    name=st.sampled_from(sorted(LAYERS)),
    shape=shapes,
    dtype=dtypes,
    lengths=st.none() | st.lists(st.integers(-1, 6), min_size=0, max_size=4),
)
def test_sequence_layers_reject_bad_inputs_clearly(
    name: str, shape: tuple[int, ...], dtype: torch.dtype, lengths: list[int] | None
) -> None:
    layer = _module(LAYERS, name)
    given_lengths = None if lengths is None else torch.tensor(lengths, dtype=torch.int64)
    expect_clear(lambda: layer(_tensor(shape, dtype), lengths=given_lengths), name, "lengths", "x")


# -------------------------------------------------------------------------------------------- models
SMALL: dict[str, dict[str, object]] = {
    "convlstm": dict(num_hidden=(4,), patch_size=2, input_length=2, total_length=4, filter_size=3),
    "predrnn": dict(num_hidden=(4,), patch_size=2, input_length=2, total_length=4, filter_size=3),
    "predrnn_v2": dict(num_hidden=(4,), patch_size=2, input_length=2, total_length=4, filter_size=3),
    "e3d_lstm": dict(num_hidden=(4,), patch_size=2, input_length=2, total_length=4, filter_size=3),
    "e3d_lstm_classifier": dict(num_classes=3, num_hidden=(4,), patch_size=2, filter_size=3),
    "cnn_lstm": dict(num_classes=3, encoder="small_cnn", hidden_size=8),
    "cnn_convlstm": dict(num_classes=3, encoder="small_cnn", image_size=16, hidden_channels=4),
    "single_frame": dict(num_classes=3, encoder="small_cnn"),
    "mp_lstm": dict(num_classes=3, num_views=2, hidden_size=8),
    "early_fusion": dict(num_classes=3, num_views=2, hidden_size=8),
    "late_fusion": dict(num_classes=3, num_views=2, hidden_size=8),
    "mv_lstm": dict(num_classes=3, num_views=2, hidden_size=8),
    "single_view": dict(num_classes=3, num_views=2, hidden_size=8),
}
PREDICTORS = ("convlstm", "predrnn", "predrnn_v2", "e3d_lstm")


# models that take more than clips: fuzzed on their own below
CAPTIONERS: dict[str, dict[str, object]] = {
    "sa_lstm": dict(vocab_size=9, feature_size=5, embed_size=4, hidden_size=6, attention_size=3),
}


def test_every_registered_model_is_fuzzed() -> None:
    assert sorted({**SMALL, **CAPTIONERS}) == list_models()


@FUZZ
@given(
    shape=shapes,
    dtype=dtypes,
    tokens=st.lists(st.lists(st.integers(-2, 10), min_size=0, max_size=4), min_size=0, max_size=3),
    lengths=st.none() | st.lists(st.integers(-1, 6), min_size=0, max_size=3),
)
def test_captioners_reject_bad_features_tokens_and_lengths_clearly(
    shape: tuple[int, ...], dtype: torch.dtype, tokens: list[list[int]], lengths: list[int] | None
) -> None:
    key = "model:sa_lstm"
    if key not in _built:
        torch.manual_seed(0)
        _built[key] = create_model("sa_lstm", **CAPTIONERS["sa_lstm"]).eval()
    model = _built[key]
    width = max((len(t) for t in tokens), default=0)
    ids = torch.tensor([t + [0] * (width - len(t)) for t in tokens], dtype=torch.int64).reshape(
        len(tokens), width
    )
    given_lengths = None if lengths is None else torch.tensor(lengths, dtype=torch.int64)
    expect_clear(
        lambda: model(_tensor(shape, dtype), ids, given_lengths),
        "SALSTM", "features", "tokens", "lengths",
    )  # fmt: skip


def _model(name: str) -> nn.Module:
    key = f"model:{name}"
    if key not in _built:
        torch.manual_seed(0)
        _built[key] = create_model(name, **SMALL[name]).eval()
    return _built[key]


@FUZZ
@given(name=st.sampled_from(sorted(SMALL)), shape=shapes, dtype=dtypes)
def test_models_reject_bad_clips_clearly(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    model = _model(name)
    who = type(model).__name__
    expect_clear(lambda: model(_tensor(shape, dtype)), who, "patch_size", "frames", "clips", "input_length")


@FUZZ
@given(
    name=st.sampled_from(PREDICTORS),
    T=st.integers(0, 6),
    size=st.integers(1, 9),
    future=st.integers(-1, 4),
    sampling_prob=st.sampled_from([0.0, 0.5, 1.0, -0.1, 1.5]),
)
def test_predictors_reject_bad_rollouts_clearly(
    name: str, T: int, size: int, future: int, sampling_prob: float
) -> None:
    model = _model(name)
    frames = torch.rand(1, T, 1, size, size)
    keys = ("input_length", "patch_size", "future", "sampling_prob", "total_length", type(model).__name__)
    out = expect_clear(lambda: model(frames, future=future, sampling_prob=sampling_prob), *keys)
    if out is not None:
        assert out.shape == (1, 2 - 1 + future, 1, size, size)  # type: ignore[attr-defined]


@FUZZ
@given(
    name=st.sampled_from(["cnn_lstm", "cnn_convlstm", "single_frame"]),
    T=st.integers(1, 3),
    lengths=st.lists(st.integers(-1, 4), min_size=0, max_size=3),
    dtype=st.sampled_from([torch.int64, torch.int32, torch.float32]),
)
def test_classifiers_reject_bad_lengths_clearly(
    name: str, T: int, lengths: list[int], dtype: torch.dtype
) -> None:
    model = _model(name)
    clips = torch.rand(2, T, 3, 16, 16)
    expect_clear(lambda: model(clips, torch.tensor(lengths, dtype=dtype)), "lengths")


# ------------------------------------------------------------------------------------- configuration
def _numeric_keys(name: str) -> list[str]:
    params = inspect.signature(get_model_factory(name)).parameters.values()
    return [
        p.name
        for p in params
        if any(t in str(p.annotation) for t in ("int", "float")) and "Sequence" not in str(p.annotation)
    ]


# values an int- or float-typed setting may legitimately take at 0 (probabilities, iterations, rates)
ZERO_OK = {
    "dropout",
    "feature_dropout",
    "classifier_dropout",
    "input_dropout",
    "recurrent_dropout",
    "dropout_lstm",
    "view_specific_fraction",
    "view",
    "pad_id",
}


@pytest.mark.parametrize("name", sorted({**SMALL, **CAPTIONERS}))
def test_constructors_reject_out_of_range_values_naming_the_key(name: str) -> None:
    for key in _numeric_keys(name):
        for bad in (-1, -0.5, 0):
            if bad == 0 and key in ZERO_OK:
                continue
            kwargs = {**SMALL.get(name, CAPTIONERS.get(name, {})), key: bad}
            with pytest.raises(ValueError, match=key):
                create_model(name, **kwargs)


@FUZZ
@given(input_length=st.integers(-2, 6), total_length=st.integers(-2, 6), name=st.sampled_from(PREDICTORS))
def test_predictor_lengths_are_checked_at_construction(
    name: str, input_length: int, total_length: int
) -> None:
    kwargs = {**SMALL[name], "input_length": input_length, "total_length": total_length}
    if 1 <= input_length < total_length:
        assert create_model(name, **kwargs).future_length == total_length - input_length  # type: ignore[attr-defined]
    else:
        with pytest.raises(ValueError, match="input_length"):
            create_model(name, **kwargs)


@pytest.mark.parametrize("key", ["in_channels", "hidden_channels"])
def test_cell_channel_errors_name_the_key(key: str) -> None:
    kwargs = {"in_channels": 2, "hidden_channels": 3, key: 0}
    for cell in (ConvLSTMCell, SpatioTemporalLSTMCell, Eidetic3DLSTMCell):
        with pytest.raises(ValueError, match=f"{key}=0"):
            cell(**kwargs)


# ------------------------------------------------------------------------------------------- short clips
@pytest.mark.parametrize("name", PREDICTORS)
def test_short_clip_error_names_input_length_when_forecasting(name: str) -> None:
    model = _model(name)  # input_length=2, total_length=4
    with pytest.raises(ValueError, match=r"input_length=2 frames, got 1") as info:
        model(torch.rand(1, 1, 1, 4, 4), future=2)
    assert "total_length" not in str(info.value)


@pytest.mark.parametrize("name", PREDICTORS)
def test_short_clip_error_names_the_keys_under_scheduled_sampling(name: str) -> None:
    model = _model(name)  # training reads input_length + future - 1 = total_length - 1 true frames
    with pytest.raises(ValueError, match=r"input_length \+ future - 1 = 3 .*got 2"):
        model(torch.rand(1, 2, 1, 4, 4), sampling_prob=0.5)


def test_patch_size_error_names_the_key_and_the_frame_size() -> None:
    with pytest.raises(ValueError, match=r"patch_size=2 must divide the frame height and width.*5x5"):
        _model("convlstm")(torch.rand(1, 3, 1, 5, 5))


# ------------------------------------------------------------------------------------- data modules
def _data_modules(root: str) -> dict[str, tuple[Callable[..., object], dict[str, object]]]:
    from lstmvision.data import (
        KTHDataModule,
        MovingDigitActionsDataModule,
        MovingMNISTDataModule,
        VideoDataModule,
    )

    return {
        "moving_mnist": (MovingMNISTDataModule, {}),
        "moving_actions": (MovingDigitActionsDataModule, {}),
        "kth": (KTHDataModule, {"root": root}),
        "video": (VideoDataModule, {"root": root}),
    }


# int-typed settings for which 0 is a valid value
DATA_ZERO_OK = {"num_workers", "seed", "num_distractors", "val_fraction"}


@pytest.mark.parametrize("which", ["moving_mnist", "moving_actions", "kth", "video"])
def test_data_module_constructors_reject_out_of_range_values_naming_the_key(
    which: str, tmp_path: object
) -> None:
    cls, base = _data_modules(str(tmp_path))[which]
    for p in inspect.signature(cls).parameters.values():
        annotation = str(p.annotation)
        if not any(t in annotation for t in ("int", "float")) or "Sequence" in annotation:
            continue
        for bad in (-1, 0):
            # Moving MNIST allows still digits (speed 0); Moving Digit Actions does not
            if bad == 0 and (p.name in DATA_ZERO_OK or (which, p.name) == ("moving_mnist", "speed")):
                continue
            with pytest.raises(ValueError, match=p.name):
                cls(**{**base, p.name: bad})


@pytest.mark.parametrize("key", ["train_persons", "test_persons"])
def test_kth_persons_not_a_list_names_the_key(key: str, tmp_path: object) -> None:
    from lstmvision.data import KTHDataModule

    with pytest.raises(TypeError, match=key):
        KTHDataModule(root=str(tmp_path), **{key: 3})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_convlstm", "single_frame"])
@pytest.mark.parametrize("shape", [(0, 2, 3, 16, 16), (1, 0, 3, 16, 16), (1, 2, 3, 0, 0)])
def test_classifiers_reject_empty_clips(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="expects non-empty clips"):
        _model(name)(torch.zeros(shape))


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_convlstm", "single_frame"])
def test_classifiers_reject_integer_clips(name: str) -> None:
    with pytest.raises(ValueError, match=r"expects a floating-point input, got dtype torch\.uint8"):
        _model(name)(torch.zeros(1, 2, 3, 16, 16, dtype=torch.uint8))


def test_a_float64_clip_into_float32_weights_is_named_and_autocast_is_left_alone() -> None:
    model = create_model("cnn_lstm", num_classes=3, in_channels=1, hidden_size=4)
    clips = torch.rand(2, 3, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"CNNLSTM expects torch.float32 input \(the dtype of its weights\), got torch.float64",
    ):
        model(clips)
    assert model.double()(clips).dtype == torch.float64  # a float64 model takes float64 clips
    model.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed dtypes are autocast's job, not an error
        assert model(clips.to(torch.bfloat16)).shape == (2, 3)
