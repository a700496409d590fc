"""Clip transforms: resize, crop, flip and gray a whole clip in one call, so every frame gets the same
crop and flip."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ClipTransform", "check_size"]

# ITU-R 601-2 luma, the weights of Pillow's convert("L"), so gray frames match Pillow's.
_LUMA = (0.299, 0.587, 0.114)


def check_size(name: str, value: int | Sequence[int] | None) -> int | tuple[int, int] | None:
    """An int, an ``(H, W)`` pair (a YAML list is accepted) or ``None``."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    if (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return (value[0], value[1])
    raise ValueError(f"{name} must be an integer >= 1, a pair (height, width) of them or None, got {value!r}")


class ClipTransform:
    """Resize, crop, flip and (optionally) gray a clip, identically on every frame, in one call.

    Steps, in order: ``resize`` (bilinear with antialiasing, ``torch.nn.functional.interpolate``): an
    int sets the shorter side keeping the aspect ratio (the longer side is rounded), a pair sets
    ``(H, W)`` exactly; ``crop_size`` (int: square): a random position in training, the centre
    otherwise; horizontal flip with probability 0.5 in training when ``flip``; ``uint8`` values are
    divided by 255; ``grayscale`` takes the ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B, Pillow's
    weights). A ``uint8`` clip is resized as ``uint8`` (each value rounded to the nearest of the 256
    levels, like the decoded frames themselves): torch's kernel for it was 13x faster than on float
    (64 frames, 320x240 to 171x128, one thread).
    Random draws, in this order: crop top, crop left, flip, from ``generator`` or torch's global
    generator.

    Args:
        resize: shorter side, ``(H, W)``, or ``None`` to keep the frames' size.
        crop_size: crop side, ``(H, W)``, or ``None`` for no crop.
        train: random crop and flip (``True``) or centre crop and no flip.
        flip: flip horizontally with probability 0.5 (training only).
        grayscale: one luma channel instead of RGB.

    Shape:
        input ``(T, C, H, W)``, ``uint8`` or float in [0, 1], ``C`` 3 (or 1); output ``float32 (T, C', H',
        W')`` in [0, 1] with ``C'`` 1 when ``grayscale`` else ``C``.
    """

    def __init__(
        self,
        *,
        resize: int | tuple[int, int] | None = None,
        crop_size: int | tuple[int, int] | None = None,
        train: bool = False,
        flip: bool = False,
        grayscale: bool = False,
    ) -> None:
        self.resize = check_size("resize", resize)
        crop = check_size("crop_size", crop_size)
        self.crop_size = (crop, crop) if isinstance(crop, int) else crop
        if isinstance(self.resize, tuple) and self.crop_size is not None:
            if self.crop_size[0] > self.resize[0] or self.crop_size[1] > self.resize[1]:
                raise ValueError(
                    f"crop_size {self.crop_size} does not fit in the resized frames {self.resize} (H, W)"
                )
        self.train, self.flip, self.grayscale = train, flip, grayscale

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        if self.resize is None:
            return height, width
        if isinstance(self.resize, tuple):
            return self.resize
        if height <= width:
            return self.resize, max(1, round(width * self.resize / height))
        return max(1, round(height * self.resize / width)), self.resize

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if clip.dim() != 4 or clip.shape[1] not in (1, 3):
            raise ValueError(
                f"ClipTransform expects a clip (T, C, H, W) with C 1 or 3, got {tuple(clip.shape)}"
            )
        x = clip
        size = self._resized_size(x.shape[-2], x.shape[-1])
        if size != tuple(x.shape[-2:]):
            if x.dtype == torch.uint8:
                # the fast uint8 kernel wants channels-last; decoded (T, H, W, 3) frames permuted already are
                x = x.contiguous(memory_format=torch.channels_last)
            else:
                x = x.to(torch.float32)
            # antialias: without it, shrinking 320x240 to 128 skips pixels and aliases fine texture
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        if self.crop_size is not None:
            (height, width), (crop_h, crop_w) = x.shape[-2:], self.crop_size
            if crop_h > height or crop_w > width:
                raise ValueError(
                    f"crop_size {self.crop_size} is larger than the (resized) frames {(height, width)} (H, W)"
                )
            if self.train:
                top = int(torch.randint(height - crop_h + 1, (1,), generator=generator).item())
                left = int(torch.randint(width - crop_w + 1, (1,), generator=generator).item())
            else:
                top, left = (height - crop_h) // 2, (width - crop_w) // 2
            x = x[..., top : top + crop_h, left : left + crop_w]
        if self.train and self.flip and torch.rand((), generator=generator).item() < 0.5:
            x = x.flip(-1)
        # to float only now, on the (smaller) cropped frames
        x = x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)
        if self.grayscale and x.shape[1] == 3:
            luma = x.new_tensor(_LUMA).view(1, 3, 1, 1)
            x = (x * luma).sum(dim=1, keepdim=True)  # (T, 1, H', W')
        return x.contiguous()
