"""What every frame encoder shares: the ``(maps, pooled)`` contract, weights files, freezing, the registry.

A frame encoder maps frames ``(N, C, H, W)`` to feature maps ``(N, out_channels, H', W')`` and a pooled
vector ``(N, feature_dim)``. :func:`encode` applies the same contract to any ``nn.Module`` (a timm
model, a user's CNN), and :class:`ExternalEncoder` wraps one so that it can stand wherever a
:class:`FrameEncoder` is expected. See docs/encoders.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from typing_extensions import Self

from lstmvision._checks import check_input_dtype, check_tensor
from lstmvision._io import safe_load
from lstmvision._registry import Registry

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ExternalEncoder",
    "FrameEncoder",
    "create_encoder",
    "dry_run",
    "encode",
    "list_encoders",
    "register_encoder",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., nn.Module])

# the per-channel statistics that ImageNet-trained weights (torchvision's, timm's) expect their RGB input
# in [0, 1] to be normalised with (torchvision.transforms.Normalize in the weights' documented transforms)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# how many offending keys an error message lists per kind: a wrong file can mismatch hundreds
_MAX_LISTED = 10


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown if len(items) <= _MAX_LISTED else f"{shown}, ... ({len(items) - _MAX_LISTED} more)"


def init_weights(module: nn.Module) -> None:
    """He et al. 2015 ("Delving deep into rectifiers") normal init for convolutions, in fan-out mode as the
    ResNet and MobileNetV2 references; BatchNorm weight 1, bias 0; linear layers keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file or a torch state dict (bare or under "state_dict"/"model")."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file  # imported here: only weights files need it

        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as err:  # a corrupt or foreign file: name it instead of surfacing its error
            raise ValueError(f"cannot read weights file {path}: {err}") from err
    else:
        # weights_only: a weights file is data, never code to run (pickle can execute anything)
        obj = safe_load(path, what="weights file")
    if isinstance(obj, Mapping):
        for entry in ("state_dict", "model"):  # Lightning / many training scripts wrap the weights
            if isinstance(obj.get(entry), Mapping):
                obj = obj[entry]
                break
    if not isinstance(obj, Mapping):
        raise ValueError(f"weights file {path} holds a {type(obj).__name__}, expected a state dict")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise ValueError(
            f"weights file {path} is not a state dict: entries that are not tensors: {_listed(not_tensors)}"
        )
    return {str(k): v for k, v in obj.items()}


def _load_state_dict_file(
    module: nn.Module, path: str | os.PathLike[str], *, head_prefixes: Sequence[str] = ()
) -> None:
    """Load a weights file into ``module``, refusing any mismatch except a dropped classification head.

    Keys starting with one of ``head_prefixes`` that ``module`` lacks are dropped (logged at info).
    Missing ``*.num_batches_tracked`` counters are tolerated: files saved before PyTorch 0.4.1 (some
    published ImageNet weights) have none, and the counter only matters for ``momentum=None``.
    Any other missing or unexpected key, or a shape mismatch, is a ValueError naming the file.
    """
    path = Path(path)
    state = _read_state_dict(path)
    own = module.state_dict()
    head = [k for k in state if k not in own and any(k.startswith(p) for p in head_prefixes)]
    if head:
        logger.info("%s: dropped classification-head keys %s (encoders have no head)", path, _listed(head))
        for key in head:
            del state[key]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, {type(module).__name__} {tuple(own[k].shape)})"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            f"{label} ({len(keys)}): {_listed(keys)}"
            for label, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", mismatched),
            )
            if keys
        ]
        raise ValueError(f"weights file {path} does not fit {type(module).__name__}: {'; '.join(problems)}")
    for key in own:
        state.setdefault(key, own[key])  # only num_batches_tracked can be absent here
    module.load_state_dict(state, strict=True)


class FrameEncoder(nn.Module):
    """Base of the frame encoders: ``forward(x) -> (maps, pooled)``, weights files and freezing.

    Subclasses set ``out_channels``, ``feature_dim`` and ``reduction``, build their layers and
    initialise them, then call :meth:`_finish_init` last, which loads ``weights`` and applies
    ``trainable``. They implement :meth:`forward_maps` and, if the pooled vector is not the global
    average of the maps, :meth:`pool`.

    Attributes:
        in_channels: C, channels of the input frames.
        out_channels: channels of the feature maps (0 only for an :class:`ExternalEncoder` whose module
            returns vectors; then the maps are None).
        feature_dim: D, size of the pooled vector.
        reduction: total spatial stride of the maps: ``H' = ceil(H / reduction)`` for every encoder
            written here (0 when there are no maps).
        trainable: False freezes the encoder (see :meth:`set_trainable`).
        mean, std: buffers (not in the state dict) set from the constructor's ``mean``/``std``: the
            input is normalised as ``(x - mean) / std`` per channel (1 or C values each) before the
            first layer, e.g. :data:`IMAGENET_MEAN`/:data:`IMAGENET_STD` with ImageNet weights;
            ``None``: the frames as they come ([0, 1]).

    Shape:
        - input: ``(N, in_channels, H, W)``
        - output: maps ``(N, out_channels, H', W')``, pooled ``(N, feature_dim)``.
    """

    in_channels: int
    out_channels: int
    feature_dim: int
    reduction: int
    trainable: bool
    mean: Tensor | None  # input normalisation (buffers set by _finish_init)
    std: Tensor | None
    # state-dict key prefixes of a classification head that a weights file may hold and the encoder lacks
    head_prefixes: tuple[str, ...] = ()

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"{type(self).__name__}: in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        self.trainable = True

    @property
    def has_maps(self) -> bool:
        """Whether :meth:`forward` returns feature maps (always, except a vector-only ExternalEncoder)."""
        return self.out_channels > 0

    def _finish_init(
        self,
        weights: str | None,
        trainable: bool,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        """Load ``weights`` (after the subclass's initialisation, which they overwrite), set ``trainable``
        and the input normalisation ``(x - mean) / std``."""
        if (mean is None) != (std is None):
            raise ValueError(f"{type(self).__name__}: give both mean and std, or neither")
        mean_buffer = std_buffer = None
        if mean is not None and std is not None:
            for name, values in (("mean", mean), ("std", std)):
                if len(values) not in (1, self.in_channels):
                    raise ValueError(
                        f"{type(self).__name__}: {name} needs 1 or in_channels={self.in_channels} values, "
                        f"got {list(values)}"
                    )
            if min(std) <= 0:
                raise ValueError(f"{type(self).__name__}: std must be > 0, got {list(std)}")
            mean_buffer = torch.tensor(mean, dtype=torch.float32)[:, None, None]  # (C or 1, 1, 1)
            std_buffer = torch.tensor(std, dtype=torch.float32)[:, None, None]
        # not persistent: a weights file (e.g. torchvision's) has no such keys and must still fit
        self.register_buffer("mean", mean_buffer, persistent=False)
        self.register_buffer("std", std_buffer, persistent=False)
        if weights is not None:
            self.load_weights(weights)
        self.set_trainable(trainable)

    def _weights_target(self) -> nn.Module:
        """The module whose state dict a weights file holds."""
        return self

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Load a ``.safetensors`` file or a torch state dict file; see :func:`_load_state_dict_file`."""
        _load_state_dict_file(self._weights_target(), path, head_prefixes=self.head_prefixes)

    def set_trainable(self, trainable: bool) -> None:
        """``False``: Keras ``layer.trainable = False``: no parameter requires a gradient and BatchNorm
        layers stay in eval mode (they normalise with their running statistics and never update them),
        even when a parent module calls ``.train()``. ``True`` undoes both."""
        self.trainable = trainable
        for parameter in self.parameters():
            parameter.requires_grad_(trainable)
        self.train(self.training)  # re-applies (or lifts) the BatchNorm rule at the current mode

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        if not self.trainable:
            # _BatchNorm covers BatchNorm1d/2d/3d, SyncBatchNorm and subclasses such as timm's norm-act layers
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def _check_input(self, x: Tensor) -> Tensor:
        """``x`` checked and normalised with ``mean``/``std`` when the encoder has them."""
        check_tensor(type(self).__name__, x)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            # frames (N, H, W, C) from NumPy or PIL: say which permute puts the channels first
            hint = (
                "; it looks channels-last: use x.permute(0, 3, 1, 2)"
                if x.dim() == 4 and x.shape[-1] == self.in_channels
                else ""
            )
            raise ValueError(
                f"{type(self).__name__} expects (N, C, H, W) with C={self.in_channels}, "
                f"got shape {tuple(x.shape)}{hint}"
            )
        check_input_dtype(type(self).__name__, x, self)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std  # (N, C, H, W) - (C, 1, 1)
        return x

    def forward_maps(self, x: Tensor) -> Tensor:
        """Feature maps ``(N, out_channels, H', W')`` of checked input ``x``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_maps")

    def pool(self, maps: Tensor) -> Tensor:
        """Pooled vector ``(N, feature_dim)``; by default the global average of the maps."""
        return maps.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        maps = self.forward_maps(self._check_input(x))
        return maps, self.pool(maps)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"feature_dim={self.feature_dim}, reduction={self.reduction}, trainable={self.trainable}"
        )


def _describe(output: Any) -> str:
    if isinstance(output, Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, (tuple, list)):
        inner = ", ".join(str(tuple(o.shape)) if isinstance(o, Tensor) else type(o).__name__ for o in output)
        return f"a {type(output).__name__} of {len(output)} ({inner})"
    return f"a {type(output).__name__}"


def encode(encoder: nn.Module, x: Tensor) -> tuple[Tensor | None, Tensor]:
    """Run any module on frames ``x`` ``(N, C, H, W)`` and return ``(maps or None, pooled)``.

    - a :class:`FrameEncoder`: its ``(maps, pooled)`` as they are;
    - any module returning ``(N, C', H', W')``: those maps and their global average ``(N, C')``;
    - any module returning ``(N, D)`` (e.g. a timm model built with ``num_classes=0``): ``(None, it)``.

    Anything else is a ValueError naming the module's type and what it returned.
    """
    output = encoder(x)
    if isinstance(encoder, FrameEncoder):
        maps, pooled = output
        return maps, pooled
    expected = "expected feature maps (N, C, H, W) or vectors (N, D)"
    if isinstance(output, Tensor) and output.shape[0] != x.shape[0]:
        raise ValueError(
            f"{type(encoder).__name__} returned {_describe(output)} for a batch of {x.shape[0]} "
            f"frames; {expected} with the same N"
        )
    if isinstance(output, Tensor) and output.dim() == 4:
        return output, output.mean(dim=(2, 3))
    if isinstance(output, Tensor) and output.dim() == 2:
        return None, output
    raise ValueError(f"{type(encoder).__name__} returned {_describe(output)}; {expected}")


def dry_run(module: nn.Module, in_channels: int, height: int, width: int) -> tuple[Tensor | None, Tensor]:
    """:func:`encode` one zero frame ``(1, in_channels, height, width)`` to learn the output sizes.

    Runs in eval mode without gradient (BatchNorm in train mode would record the zeros' statistics)
    and restores the module's mode, on the dtype and device of its parameters.
    """
    reference = next(module.parameters(), None)
    dtype = reference.dtype if reference is not None else torch.float32
    device = reference.device if reference is not None else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return encode(module, torch.zeros(1, in_channels, height, width, dtype=dtype, device=device))
    finally:
        module.train(was_training)


class ExternalEncoder(FrameEncoder):
    """Any ``nn.Module`` as a :class:`FrameEncoder`: outputs normalised by :func:`encode`.

    ``out_channels``, ``feature_dim`` and ``reduction`` are found by one dry run (eval mode, no
    gradient) on zeros of ``probe_size × probe_size`` pixels at construction; ``reduction`` is
    ``probe_size / H'`` rounded to the nearest integer. A module returning vectors has no maps:
    ``out_channels = reduction = 0`` and :meth:`forward` returns ``(None, pooled)``.

    Args:
        module: the network, e.g. from YAML ``class_path: timm.models.resnet.resnet18`` with
            ``init_args: {num_classes: 0}``.
        in_channels: C, the channels the module takes.
        probe_size: side of the dry-run input; large enough for the module's strides.
        head_prefixes: state-dict prefixes of a classification head to drop from a weights file (e.g.
            ``["fc."]`` for a timm ResNet built without head), logged at info.
        weights: a weights file of ``module`` (its own key names, no ``module.`` prefix).
        trainable: False freezes the module (see :meth:`FrameEncoder.set_trainable`).
        mean, std: input normalisation, see :class:`FrameEncoder`.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        in_channels: int = 3,
        probe_size: int = 64,
        head_prefixes: Sequence[str] = (),
        weights: str | None = None,
        trainable: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(in_channels)
        if not isinstance(module, nn.Module):
            raise TypeError(f"ExternalEncoder wraps an nn.Module, got {type(module).__name__}")
        if isinstance(head_prefixes, str):  # tuple("fc.") would drop every key starting with "f"
            raise ValueError(
                f"ExternalEncoder: head_prefixes must be a list of prefixes, got {head_prefixes!r}"
            )
        if probe_size < 1:
            raise ValueError(f"ExternalEncoder: probe_size must be >= 1, got {probe_size}")
        self.module = module
        self.head_prefixes = tuple(head_prefixes)
        self._finish_init(weights, trainable, mean, std)
        self.out_channels, self.feature_dim, self.reduction = self._probe(probe_size)

    def _probe(self, size: int) -> tuple[int, int, int]:
        """(out_channels, feature_dim, reduction) from one forward pass on zeros."""
        try:
            maps, pooled = dry_run(self.module, self.in_channels, size, size)
        except RuntimeError as error:  # e.g. a Linear layer built for another image size
            raise ValueError(
                f"ExternalEncoder could not run {type(self.module).__name__} on a probe input of shape "
                f"(1, {self.in_channels}, {size}, {size}) ({error}); set probe_size to a frame size the "
                "module accepts"
            ) from error
        if maps is None:
            return 0, int(pooled.shape[1]), 0
        return int(maps.shape[1]), int(pooled.shape[1]), max(1, round(size / maps.shape[-2]))

    def _weights_target(self) -> nn.Module:
        return self.module

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor]:  # type: ignore[override]
        # maps may be None (a module returning vectors): the one FrameEncoder whose maps are optional
        return encode(self.module, self._check_input(x))


_ENCODERS: Registry[FrameEncoder] = Registry("encoder")


def register_encoder(name: str) -> Callable[[F], F]:
    """Decorator registering an encoder class or factory function under ``name``."""
    return _ENCODERS.register(name)


def list_encoders(pattern: str | Sequence[str] | None = None) -> list[str]:
    """Sorted names of every registered encoder, or of those matching ``pattern`` (a shell wildcard such
    as ``"resnet*"``, or a list of them; see :func:`lstmvision.models.list_models`)."""
    return _ENCODERS.names(pattern)


def create_encoder(name: str, **kwargs: Any) -> FrameEncoder:
    """Build the encoder registered as ``name`` with its constructor arguments."""
    return _ENCODERS.create(name, **kwargs)
