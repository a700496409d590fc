"""Light-field face sequences: ``<root>/<subject>/<sample>/{horizontal,vertical}/``, two folders of
sub-aperture images read as two perspectives of a sequence (the MP-LSTM paper's light-field faces),
labelled by subject. docs/multiview_data.md describes the layout."""

from __future__ import annotations

from pathlib import Path

from lstmvision.data.checks import check_root
from lstmvision.data.io.frames import subfolders

__all__ = ["LIGHTFIELD_VIEWS", "scan_lightfield"]

LIGHTFIELD_VIEWS: tuple[str, ...] = ("horizontal", "vertical")
"""The two perspectives of a light-field sample, in their default order."""


def scan_lightfield(root: Path) -> dict[tuple[str, str], dict[str, Path]]:
    """(subject, sample) -> {perspective folder name: folder}."""
    check_root(root, "light-field")
    subjects = subfolders(root)
    if not subjects:
        raise ValueError(f"{root}: no subject folder; expected <root>/<subject>/<sample>/horizontal/")
    found: dict[tuple[str, str], dict[str, Path]] = {}
    for subject_dir in subjects:
        samples = subfolders(subject_dir)
        if not samples:
            raise ValueError(f"{subject_dir}: no sample folder; expected <subject>/<sample>/horizontal/")
        for sample_dir in samples:
            found[(subject_dir.name, sample_dir.name)] = {p.name: p for p in subfolders(sample_dir)}
    return found
