"""Which data sets a Lightning stage needs (shared by the data modules; private)."""

from __future__ import annotations

_STAGE_SETS: dict[str, tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),  # every data module predicts on its test set
}


def sets_for_stage(owner: str, stage: str | None) -> tuple[str, ...]:
    """The data sets ``setup(stage)`` must build (all three for ``None``), or a ValueError naming ``owner``."""
    if stage is None:
        return ("train", "val", "test")
    if stage not in _STAGE_SETS:
        raise ValueError(f"{owner}.setup: stage must be one of {sorted(_STAGE_SETS)} or None, got {stage!r}")
    return _STAGE_SETS[stage]
