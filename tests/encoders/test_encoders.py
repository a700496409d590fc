"""Frame encoders: published sizes, torchvision key names, weights files, freezing, the (maps, pooled) contract."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from lstmvision._registry import Registry
from lstmvision.encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGGM,
    ExternalEncoder,
    FrameEncoder,
    MobileNetV2,
    ResNet18,
    SmallCNN,
    create_encoder,
    encode,
    list_encoders,
    register_encoder,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# a small configuration of every registered encoder, an input shape whose sides are not multiples of the
# reduction (ceil and floor differ), and the exact (out_channels, H', W', feature_dim, reduction) it gives
SMALL: dict[str, tuple[dict, tuple[int, int, int, int], tuple[int, int, int, int, int]]] = {
    "small_cnn": (
        dict(in_channels=1, channels=(4, 6), pool_size=2, feature_dim=5),
        (3, 1, 13, 18),
        (6, 4, 5, 5, 4),
    ),
    "vgg_m": (dict(in_channels=5, width_multiplier=1 / 32, feature_dim=7), (3, 5, 40, 70), (16, 2, 3, 7, 32)),
    "mobilenet_v2": (dict(width_multiplier=0.25), (3, 3, 40, 70), (1280, 2, 3, 1280, 32)),
    "resnet18": (dict(width_multiplier=0.125, small_input=True), (3, 3, 20, 13), (64, 3, 2, 64, 8)),
}


def _build(name: str, **overrides: object) -> tuple[FrameEncoder, Tensor]:
    kwargs, shape, _ = SMALL[name]
    torch.manual_seed(0)
    return create_encoder(name, **{**kwargs, **overrides}), torch.rand(*shape)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- published sizes and torchvision names


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {f"{prefix}.{k}": (channels,) for k in ("weight", "bias")}
    shapes |= {f"{prefix}.running_mean": (channels,), f"{prefix}.running_var": (channels,)}
    return shapes | {f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet18_shapes(widths: tuple[int, ...] = (64, 128, 256, 512)) -> dict[str, tuple[int, ...]]:
    """torchvision's resnet18 state dict without fc, written from its naming scheme (conv1/bn1, layerL.B.
    conv1/bn1/conv2/bn2, downsample.0 conv + downsample.1 BN on the first block of layers 2-4)."""
    shapes = {"conv1.weight": (widths[0], 3, 7, 7), **_bn("bn1", widths[0])}
    inplanes = widths[0]
    for layer, planes in enumerate(widths, start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
            shapes |= _bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            shapes |= _bn(f"{p}.bn2", planes)
            if layer > 1 and block == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                shapes |= _bn(f"{p}.downsample.1", planes)
            inplanes = planes
    return shapes


def torchvision_mobilenet_v2_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision's mobilenet_v2 state dict without classifier, from the paper's Table 2 and torchvision's
    naming (features.0 stem, features.1-17 blocks with a ``conv`` Sequential, features.18 last conv)."""
    table = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    shapes = {"features.0.0.weight": (32, 3, 3, 3), **_bn("features.0.1", 32)}
    index, inp = 1, 32
    for t, c, n, _ in table:
        for _ in range(n):
            hidden, p = inp * t, f"features.{index}.conv"
            if t == 1:  # no expansion: depthwise (0), projection (1), BN (2)
                shapes |= {f"{p}.0.0.weight": (hidden, 1, 3, 3), **_bn(f"{p}.0.1", hidden)}
                shapes |= {f"{p}.1.weight": (c, hidden, 1, 1), **_bn(f"{p}.2", c)}
            else:  # expansion (0), depthwise (1), projection (2), BN (3)
                shapes |= {f"{p}.0.0.weight": (hidden, inp, 1, 1), **_bn(f"{p}.0.1", hidden)}
                shapes |= {f"{p}.1.0.weight": (hidden, 1, 3, 3), **_bn(f"{p}.1.1", hidden)}
                shapes |= {f"{p}.2.weight": (c, hidden, 1, 1), **_bn(f"{p}.3", c)}
            index, inp = index + 1, c
    return shapes | {"features.18.0.weight": (1280, 320, 1, 1), **_bn("features.18.1", 1280)}


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_parameter_counts_match_the_published_networks_without_their_heads() -> None:
    # torchvision's model tables (docs.pytorch.org/vision/stable/models): resnet18 11,689,512 parameters,
    # mobilenet_v2 3,504,872; their heads are Linear(512, 1000) and Linear(1280, 1000)
    assert _n_params(ResNet18()) == 11_689_512 - (512 * 1000 + 1000) == 11_176_512
    assert _n_params(MobileNetV2()) == 3_504_872 - (1280 * 1000 + 1000) == 2_223_872
    # VGG-M from its layer list (conv weights without bias + BN weight/bias, fc6 on a 3x3 grid of pool5)
    convs = [(5, 96, 7), (96, 256, 5), (256, 512, 3), (512, 512, 3), (512, 512, 3)]
    vggm = sum(i * o * k * k + 2 * o for i, o, k in convs) + (512 * 9 * 4096 + 4096)
    assert _n_params(VGGM()) == vggm == 25_418_400
    assert _n_params(SmallCNN()) == (3 * 32 * 9 + 64) + (32 * 64 * 9 + 128) + (64 * 128 * 9 + 256) == 93_472


def test_resnet18_state_dict_matches_torchvision_names_and_shapes() -> None:
    shapes = _shapes(ResNet18())
    assert shapes == torchvision_resnet18_shapes()
    assert len(shapes) == 122 - 2  # torchvision's 122 entries less fc.weight and fc.bias
    spot = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_mean": (64,),
        "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer3.1.bn1.running_var": (256,),
        "layer4.1.bn2.bias": (512,),
    }
    assert {k: shapes[k] for k in spot} == spot
    assert "layer1.0.downsample.0.weight" not in shapes


def test_mobilenet_v2_state_dict_matches_torchvision_names_and_shapes() -> None:
    shapes = _shapes(MobileNetV2())
    assert shapes == torchvision_mobilenet_v2_shapes()
    assert len(shapes) == 314 - 2  # torchvision's 314 entries less classifier.1.weight and .bias
    spot = {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.1.conv.0.0.weight": (32, 1, 3, 3),
        "features.1.conv.1.weight": (16, 32, 1, 1),
        "features.2.conv.1.0.weight": (96, 1, 3, 3),
        "features.17.conv.2.weight": (320, 960, 1, 1),
        "features.18.1.bias": (1280,),
    }
    assert {k: shapes[k] for k in spot} == spot


def test_mobilenet_v2_width_rounds_to_multiples_of_8_and_grows_only_the_last_conv_above_1() -> None:
    narrow = MobileNetV2(width_multiplier=0.35)
    convs = [m.out_channels for m in narrow.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    assert all(c % 8 == 0 for c in convs), convs
    assert narrow.features[0][0].out_channels == 16  # 32 * 0.35 = 11.2 -> 16 (8 would lose > 10%)
    assert narrow.out_channels == 1280
    assert MobileNetV2(width_multiplier=1.5).out_channels == 1920


def test_a_torchvision_file_loads_and_its_head_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(1)
    state = {
        k: torch.randn(s) if s else torch.tensor(7) for k, s in torchvision_mobilenet_v2_shapes().items()
    }
    state |= {"classifier.1.weight": torch.randn(1000, 1280), "classifier.1.bias": torch.randn(1000)}
    path = tmp_path / "mobilenet_v2-imagenet.pth"
    torch.save(state, path)
    with caplog.at_level(logging.INFO, logger="lstmvision.encoders.base"):
        encoder = MobileNetV2(weights=str(path))
    assert "classifier.1.weight" in caplog.text and str(path) in caplog.text
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_a_file_without_batch_counters_loads(tmp_path: Path) -> None:
    # files saved before PyTorch 0.4.1 (some published ImageNet weights) have no num_batches_tracked
    source, x = _build("resnet18")
    source.train()(x)  # running statistics other than a fresh encoder's
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    loaded = ResNet18(width_multiplier=0.125, small_input=True, weights=str(tmp_path / "old.pth"))
    assert torch.equal(loaded.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)


# ---------------------------------------------------------------- weights files


def _save(state: dict[str, Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "safetensors"])
def test_weights_round_trip_gives_identical_outputs(name: str, wrap: str, tmp_path: Path) -> None:
    source, x = _build(name)
    source.train()
    source(x)  # move the BatchNorm running statistics away from their initial values
    source.eval()
    state = source.state_dict()
    if wrap == "safetensors":
        path = _save(state, tmp_path / "enc.safetensors")
    else:
        path = _save(state if wrap == "bare" else {wrap: state, "epoch": 3}, tmp_path / "enc.pt")  # type: ignore[dict-item]
    torch.manual_seed(123)  # a fresh encoder with other initial weights
    kwargs, _, _ = SMALL[name]
    loaded = create_encoder(name, **kwargs, weights=str(path)).eval()
    with torch.no_grad():
        for a, b in zip(source(x), loaded(x)):
            assert torch.equal(a, b)


def _resnet_state() -> dict[str, Tensor]:
    return _build("resnet18")[0].state_dict()


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda s: s.update({"layer1.0.extra": torch.zeros(3)}), r"unexpected keys \(1\): layer1\.0\.extra"),
        (lambda s: s.pop("layer1.0.conv1.weight"), r"missing keys \(1\): layer1\.0\.conv1\.weight"),
        (
            lambda s: s.update({"conv1.weight": torch.zeros(8, 3, 7, 7)}),
            r"shape mismatches \(1\): conv1\.weight \(file \(8, 3, 7, 7\), ResNet18 \(8, 3, 3, 3\)\)",
        ),
    ],
    ids=["extra", "missing", "shape"],
)
def test_a_mismatched_file_is_refused_naming_file_and_key(edit, pattern: str, tmp_path: Path) -> None:
    state = _resnet_state()
    edit(state)
    path = _save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" does not fit ResNet18: .*" + pattern):
        ResNet18(width_multiplier=0.125, small_input=True, weights=str(path))


def test_many_mismatches_are_listed_up_to_a_bound(tmp_path: Path) -> None:
    state = {f"junk.{i}": torch.zeros(1) for i in range(25)} | _resnet_state()
    path = _save(state, tmp_path / "junk.pt")
    with pytest.raises(ValueError, match=r"unexpected keys \(25\): junk\.0, .*\(15 more\)"):
        ResNet18(width_multiplier=0.125, small_input=True, weights=str(path))


def test_head_keys_are_dropped_but_only_for_encoders_with_that_head(tmp_path: Path) -> None:
    state = _resnet_state() | {"fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}
    path = _save(state, tmp_path / "with_fc.pt")
    loaded = ResNet18(width_multiplier=0.125, small_input=True, weights=str(path))
    assert "fc.weight" not in loaded.state_dict()
    # SmallCNN has no classification head to drop: the same keys are an error there
    small = _build("small_cnn", feature_dim=None)[0].state_dict() | {"fc.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): fc\.weight"):
        SmallCNN(1, (4, 6), pool_size=2, weights=str(_save(small, tmp_path / "small.pt")))


def test_missing_and_unreadable_weights_files(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        SmallCNN(weights=str(missing))
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list\.pt holds a list, expected a state dict"):
        SmallCNN(weights=str(tmp_path / "list.pt"))
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"cannot read weights file .*garbage\.safetensors"):
        SmallCNN(weights=str(tmp_path / "garbage.safetensors"))


# ---------------------------------------------------------------- freezing and gradients


def _bn_stats(module: nn.Module) -> list[Tensor]:
    return [b.clone() for n, b in module.named_buffers() if "running" in n or "num_batches" in n]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_frozen_encoder_has_no_trainable_weights_and_keeps_batchnorm_statistics(name: str) -> None:
    encoder, x = _build(name, trainable=False)
    parent = nn.Sequential(encoder).train()  # a parent's .train() must not wake the frozen BatchNorms
    assert encoder.training and not any(
        m.training for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)
    )
    assert not any(p.requires_grad for p in encoder.parameters())
    before = _bn_stats(encoder)
    maps, pooled = parent(x)
    for a, b in zip(before, _bn_stats(encoder)):
        assert torch.equal(a, b)
    assert not maps.requires_grad and not pooled.requires_grad
    encoder.set_trainable(True)  # unfreezing restores training-mode BatchNorm and gradients
    assert all(m.training for m in encoder.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_parameter_gets_a_gradient(name: str) -> None:
    encoder, x = _build(name)
    encoder.train()
    maps, pooled = encoder(x)
    # random weights: a plain sum after BatchNorm would have zero gradient by construction
    loss = (maps * torch.randn_like(maps)).sum() + (pooled * torch.randn_like(pooled)).sum()
    loss.backward()
    dead = [n for n, p in encoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"{name}: parameters without gradient: {dead}"


# ---------------------------------------------------------------- the (maps, pooled) contract


def test_every_registered_encoder_has_a_small_configuration() -> None:
    assert set(list_encoders()) <= set(SMALL), f"add a SMALL entry for {set(list_encoders()) - set(SMALL)}"


@pytest.mark.parametrize("name", list_encoders())
def test_output_sizes_are_the_advertised_ones(name: str) -> None:
    encoder, x = _build(name)
    channels, h, w, feature_dim, reduction = SMALL[name][2]
    assert (encoder.out_channels, encoder.feature_dim, encoder.reduction) == (
        channels,
        feature_dim,
        reduction,
    )
    N, _, H, W = x.shape
    assert (h, w) == (math.ceil(H / reduction), math.ceil(W / reduction))  # the stated rule, not floor
    maps, pooled = encoder.eval()(x)
    assert maps.shape == (N, channels, h, w)
    assert pooled.shape == (N, feature_dim)


def test_resnet18_standard_stem_has_stride_32() -> None:
    encoder = ResNet18(width_multiplier=0.125).eval()
    maps, _ = encoder(torch.rand(1, 3, 40, 70))
    assert encoder.reduction == 32 and maps.shape == (1, 64, 2, 3)


@pytest.mark.parametrize("name", list_encoders())
def test_batch_items_are_independent(name: str) -> None:
    encoder, x = _build(name)
    encoder.eval()
    with torch.no_grad():
        before = encoder(x)
        x2 = x.clone()
        x2[1] = torch.rand_like(x2[1])
        after = encoder(x2)
    for a, b in zip(before, after):
        torch.testing.assert_close(a[[0, 2]], b[[0, 2]], rtol=0, atol=1e-6)
        assert not torch.allclose(a[1], b[1]), f"{name}: changing item 1 must change its output"


def test_pooled_vector_without_fc_is_the_global_average_or_the_grid() -> None:
    encoder, x = _build("small_cnn", feature_dim=None, pool_size=1)
    maps, pooled = encoder.eval()(x)
    torch.testing.assert_close(pooled, maps.mean(dim=(2, 3)))
    encoder, x = _build("small_cnn", feature_dim=None, pool_size=2)
    maps, pooled = encoder.eval()(x)  # maps 4x5: the grid's first cell averages rows 0-1, columns 0-2
    assert pooled.shape == (3, 6 * 4)
    torch.testing.assert_close(pooled[:, 0], maps[:, 0, :2, :3].mean(dim=(1, 2)))


@pytest.mark.parametrize("name", list_encoders())
def test_wrong_rank_or_channel_count_is_refused(name: str) -> None:
    encoder, x = _build(name)
    C = x.shape[1]
    with pytest.raises(
        ValueError, match=rf"expects \(N, C, H, W\) with C={C}, got shape \(1, {C}, 16, 16, 2\)"
    ):
        encoder(torch.rand(1, C, 16, 16, 2))
    with pytest.raises(
        ValueError, match=rf"expects \(N, C, H, W\) with C={C}, got shape \(1, {C + 1}, 16, 16\)"
    ):
        encoder(torch.rand(1, C + 1, 16, 16))


@pytest.mark.parametrize("name", list_encoders())
def test_numpy_frames_are_a_type_error_and_channels_last_frames_get_the_permute(name: str) -> None:
    encoder, x = _build(name)
    C = x.shape[1]
    with pytest.raises(TypeError, match=r"expects x to be a torch\.Tensor, got numpy\.ndarray"):
        encoder(x.numpy())
    channels_last = x.permute(0, 2, 3, 1)  # (N, H, W, C)
    with pytest.raises(ValueError, match=rf"with C={C}, .*channels-last: use x\.permute\(0, 3, 1, 2\)"):
        encoder(channels_last)
    encoder.eval()
    assert torch.equal(encoder(channels_last.permute(0, 3, 1, 2))[1], encoder(x)[1])


@pytest.mark.parametrize("cls", [VGGM, MobileNetV2, ResNet18])
@pytest.mark.parametrize("width", [0.0, -1.0])
def test_width_multiplier_must_be_positive(cls: type, width: float) -> None:
    with pytest.raises(ValueError, match=rf"{cls.__name__}: width_multiplier must be > 0, got {width}"):
        cls(width_multiplier=width)


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"channels must be one or more ints >= 1, got \[\]"):
        SmallCNN(channels=())
    with pytest.raises(ValueError, match=r"channels must be one or more ints >= 1, got \[8, 0\]"):
        SmallCNN(channels=(8, 0))
    with pytest.raises(ValueError, match="pool_size must be >= 1, got 0"):
        SmallCNN(pool_size=0)
    with pytest.raises(ValueError, match="feature_dim must be >= 1 or None, got 0"):
        VGGM(width_multiplier=0.1, feature_dim=0)
    with pytest.raises(ValueError, match="in_channels must be >= 1, got 0"):
        ResNet18(in_channels=0)


# ---------------------------------------------------------------- encode and ExternalEncoder


def _conv_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
    )


def _vector_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 9)
    )


def test_encode_normalises_any_module() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 20, 20)
    encoder = _build("resnet18")[0].eval()
    maps, pooled = encode(encoder, x)
    reference = encoder(x)
    assert maps is not None and torch.equal(maps, reference[0]) and torch.equal(pooled, reference[1])

    net = _conv_net().eval()
    maps, pooled = encode(net, x)
    assert maps is not None and maps.shape == (2, 6, 5, 5)
    torch.testing.assert_close(pooled, net(x).mean(dim=(2, 3)))

    maps, pooled = encode(_vector_net(), x)
    assert maps is None and pooled.shape == (2, 9)

    with pytest.raises(ValueError, match=r"Sequential returned a tensor of shape \(2, 4, 400\); expected"):
        encode(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(2)), x)
    with pytest.raises(ValueError, match=r"_TupleModule returned a tuple of 2 \(\(2, 3, 20, 20\), int\)"):
        encode(_TupleModule(), x)


class _TupleModule(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, int]:
        return x, 1


def test_external_encoder_infers_its_sizes() -> None:
    maps_encoder = ExternalEncoder(_conv_net(), in_channels=3)
    assert (maps_encoder.out_channels, maps_encoder.feature_dim, maps_encoder.reduction) == (6, 6, 4)
    assert maps_encoder.has_maps and maps_encoder.training  # the dry run leaves the mode as it was
    maps, pooled = maps_encoder(torch.rand(2, 3, 20, 28))
    assert maps is not None and maps.shape == (2, 6, 5, 7) and pooled.shape == (2, 6)

    vector_encoder = ExternalEncoder(_vector_net(), in_channels=3, probe_size=16)
    assert (vector_encoder.out_channels, vector_encoder.feature_dim, vector_encoder.reduction) == (0, 9, 0)
    assert not vector_encoder.has_maps
    maps, pooled = vector_encoder(torch.rand(2, 3, 20, 28))
    assert maps is None and pooled.shape == (2, 9)

    with pytest.raises(
        ValueError, match=r"ExternalEncoder expects \(N, C, H, W\) with C=3, got shape \(2, 1, 8, 8\)"
    ):
        vector_encoder(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"Sequential returned a tensor of shape \(1, 4, 4096\)"):
        ExternalEncoder(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(2)))
    with pytest.raises(ValueError, match=r"head_prefixes must be a list of prefixes, got 'fc\.'"):
        ExternalEncoder(_conv_net(), head_prefixes="fc.")


def test_external_encoder_honours_weights_and_trainable(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _conv_net()
    source.train()(torch.rand(4, 3, 16, 16))  # non-trivial BatchNorm statistics
    path = tmp_path / "net.pt"
    torch.save(source.state_dict() | {"head.weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): head\.weight"):
        ExternalEncoder(_conv_net(), weights=str(path))

    frozen = ExternalEncoder(_conv_net(), head_prefixes=["head."], weights=str(path), trainable=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    x = torch.rand(2, 3, 16, 16)
    stats = _bn_stats(frozen)
    maps, _ = nn.Sequential(frozen).train()(x)
    for a, b in zip(stats, _bn_stats(frozen)):
        assert torch.equal(a, b)
    assert maps is not None and torch.equal(maps, source.eval()(x))  # the file's weights, in eval-mode BN


# ---------------------------------------------------------------- registry


def test_list_encoders() -> None:
    assert list_encoders() == ["mobilenet_v2", "resnet18", "small_cnn", "vgg_m"]
    assert list_encoders("*net*") == ["mobilenet_v2", "resnet18"]
    assert list_encoders(["vgg*", "small_*"]) == ["small_cnn", "vgg_m"]
    assert list_encoders("Resnet*") == []  # case-sensitive, as timm
    assert isinstance(create_encoder("small_cnn", in_channels=1, channels=(4,)), SmallCNN)


def test_registry_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match=r"encoder 'small_cnn' is already registered \(by .*SmallCNN"):
        register_encoder("small_cnn")(ResNet18)


def test_unknown_encoder_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown encoder 'vgg16'; known encoders: mobilenet_v2, resnet18, small_cnn, vgg_m"
    ):
        create_encoder("vgg16")


def test_registry_creates_with_keyword_arguments() -> None:
    registry: Registry[tuple] = Registry("thing")
    registry.register("pair")(lambda a, b=2: (a, b))
    assert registry.create("pair", a=1) == (1, 2) and registry.names() == ["pair"] and "pair" in registry
    with pytest.raises(ValueError, match="unknown thing 'x'; known things: pair"):
        registry.get("x")


def test_mean_std_normalise_the_input_before_the_first_layer() -> None:
    torch.manual_seed(0)
    plain = SmallCNN(3, (4,), pool_size=1).eval()
    normalised = SmallCNN(3, (4,), pool_size=1, mean=IMAGENET_MEAN, std=IMAGENET_STD).eval()
    normalised.load_state_dict(plain.state_dict())  # the statistics are not in the state dict
    assert "mean" not in normalised.state_dict()
    x = torch.rand(2, 3, 8, 8)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(normalised(x)[1], plain((x - mean) / std)[1])
    with pytest.raises(ValueError, match="give both mean and std, or neither"):
        SmallCNN(3, (4,), mean=IMAGENET_MEAN)
    with pytest.raises(ValueError, match=r"mean needs 1 or in_channels=1 values, got \[0.1, 0.2\]"):
        SmallCNN(1, (4,), mean=[0.1, 0.2], std=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"std must be > 0, got \[0.0\]"):
        SmallCNN(1, (4,), mean=[0.5], std=[0.0])


def test_small_cnn_downsampling_by_stride_or_maxpool() -> None:
    torch.manual_seed(0)
    strided = SmallCNN(1, (4, 6, 8))
    pooled = SmallCNN(1, (4, 6, 8), downsample="maxpool")
    assert sum(p.numel() for p in strided.parameters()) == sum(p.numel() for p in pooled.parameters())
    assert strided.stages[0].conv.stride == (2, 2) and not hasattr(strided.stages[0], "pool")
    assert pooled.stages[0].conv.stride == (1, 1) and isinstance(pooled.stages[0].pool, nn.MaxPool2d)
    x = torch.rand(2, 1, 13, 20)
    for encoder in (strided, pooled):
        maps, _ = encoder.eval()(x)
        assert maps.shape == (2, 8, 2, 3)  # ceil(13 / 8), ceil(20 / 8)
    # the same weights: one stride-2 convolution equals the stride-1 one sampled at every other pixel
    pooled.load_state_dict(strided.state_dict())
    conv_full = F.conv2d(x, strided.stages[0].conv.weight, padding=1)
    torch.testing.assert_close(strided.stages[0].conv(x), conv_full[:, :, ::2, ::2])
    with pytest.raises(ValueError, match="downsample must be 'stride' or 'maxpool', got 'avg'"):
        SmallCNN(1, (4,), downsample="avg")  # type: ignore[arg-type]
