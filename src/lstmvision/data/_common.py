"""What the data modules share (private): which data sets a stage needs, their loader arguments' checks."""

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


def check_loader_args(owner: str, *, num_workers: int, seed: int | None = None, **sizes: int) -> None:
    """A ValueError naming ``owner`` and the key: ``sizes`` (set and batch sizes, …) must be >= 1,
    ``num_workers`` and ``seed`` >= 0 (numpy's SeedSequence takes no negative seed)."""
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{owner}: {name} must be >= 1, got {value}")
    if num_workers < 0:
        raise ValueError(f"{owner}: num_workers must be >= 0, got {num_workers}")
    if seed is not None and seed < 0:
        raise ValueError(f"{owner}: seed must be >= 0, got {seed}")
