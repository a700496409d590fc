"""The multi-view video data module: OuluVS2 recordings or light-field face sequences, every view of a
sample read as a clip (docs/multiview_data.md).

- ``layout="ouluvs2"`` (:mod:`~lstmvision.data.layouts.ouluvs2`): a sample is a (speaker, utterance)
  pair seen from every chosen view, labelled by its phrase (u31-u60), digit sequence (u1-u30) or a
  mapping the user gives;
- ``layout="lightfield"`` (:mod:`~lstmvision.data.layouts.lightfield`): two perspectives of a sequence,
  labelled by subject.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from lstmvision.data.checks import check_choice, check_extensions, check_positive, check_split_fractions
from lstmvision.data.datamodules.base import LayoutDataModule, check_loader_args
from lstmvision.data.io.frames import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, natural_key
from lstmvision.data.io.multiview_clips import MultiViewClips, MultiViewSample, Sampling
from lstmvision.data.io.reading import OnCorrupt, count_frames
from lstmvision.data.io.sampling import ShortClips
from lstmvision.data.io.transforms import ClipTransform
from lstmvision.data.layouts.lightfield import LIGHTFIELD_VIEWS, scan_lightfield
from lstmvision.data.layouts.ouluvs2 import (
    custom_utterance_classes,
    ouluvs2_utterance_classes,
    parse_number,
    scan_ouluvs2,
)
from lstmvision.data.layouts.splits import SET_NAMES, assign_groups, split_groups

__all__ = ["MultiViewVideoDataModule"]

logger = logging.getLogger(__name__)

Layout = Literal["ouluvs2", "lightfield"]
Task = Literal["phrases", "digits", "custom"]
OnMissingView = Literal["raise", "skip"]


class _Splits(NamedTuple):
    sets: dict[str, list[MultiViewSample]]
    class_names: list[str]
    views: list[str]
    val_is_test: bool


class MultiViewVideoDataModule(LayoutDataModule):
    """Multi-view clips of OuluVS2 or light-field face data (see the module docstring and
    docs/multiview_data.md).

    The layout is scanned and checked once, by ``setup()`` or by the first use of :attr:`class_names`,
    :attr:`num_classes` or :attr:`view_names`; no video is decoded then.

    Args:
        root: the data set's root folder.
        layout: ``"ouluvs2"`` or ``"lightfield"``.
        views: the views to read, in this order: OuluVS2 view numbers (``[1, 3]``, ``["1", "3"]`` or
            ``["v1", "v3"]``), light-field ``"horizontal"`` / ``"vertical"``; ``None``: every view found
            (OuluVS2, by number) or both perspectives (light field).
        on_missing_view: a sample without one of the views raises (``"raise"``) or is left out with a
            warning (``"skip"``).
        task: OuluVS2 labels: ``"phrases"`` (u31-u60), ``"digits"`` (u1-u30) or ``"custom"``
            (``utterance_classes``); other utterances are left out.
        utterance_classes: utterance -> class name, with ``task="custom"`` only; classes in order of
            first appearance.
        train_speakers, val_speakers, test_speakers: OuluVS2 speakers (``1`` or ``"s1"``); ``None``:
            a seeded split of the speakers by ``val_fraction`` / ``test_fraction``.
        train_samples, val_samples, test_samples: light-field sample names (``"<sample>"`` for that
            sample of every subject, or ``"<subject>/<sample>"``); ``None``: a seeded split of each
            subject's samples.
        val_fraction, test_fraction: groups held out (speakers, or each subject's samples); a
            ``val_fraction`` of 0 (or an empty validation list) validates on the test set.
        num_frames, frame_stride, short_clips, sampling: see :class:`MultiViewClips`.
        resize, grayscale: see :class:`~lstmvision.data.video.ClipTransform`.
        batch_size, num_workers: DataLoader settings.
        on_corrupt: ``"raise"`` on a sample that cannot be decoded, or ``"skip"`` it.
        seed: seed of the held-out draws (clip sampling follows torch's global generator).
        extensions: video file extensions (OuluVS2).

    Batches are ``(clips, labels)``: ``float32 (B, V, T, C, H, W)`` in [0, 1] and ``int64 (B,)``.
    """

    def __init__(
        self,
        root: str,
        *,
        layout: Layout = "ouluvs2",
        views: Sequence[str | int] | None = None,
        on_missing_view: OnMissingView = "raise",
        task: Task = "phrases",
        utterance_classes: Mapping[str, str] | None = None,
        train_speakers: Sequence[str | int] | None = None,
        val_speakers: Sequence[str | int] | None = None,
        test_speakers: Sequence[str | int] | None = None,
        train_samples: Sequence[str] | None = None,
        val_samples: Sequence[str] | None = None,
        test_samples: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_frames: int = 16,
        frame_stride: int = 1,
        resize: int | tuple[int, int] | None = (64, 64),
        grayscale: bool = False,
        short_clips: ShortClips = "pad",
        sampling: Sampling = "window",
        batch_size: int = 8,
        num_workers: int = 0,
        on_corrupt: OnCorrupt = "raise",
        seed: int = 0,
        extensions: Sequence[str] = VIDEO_EXTENSIONS,
    ) -> None:
        super().__init__()
        owner = "MultiViewVideoDataModule"
        check_choice("layout", layout, ("ouluvs2", "lightfield"), owner=owner)
        check_choice("on_missing_view", on_missing_view, ("raise", "skip"), owner=owner)
        check_choice("task", task, ("phrases", "digits", "custom"), owner=owner)
        check_choice("short_clips", short_clips, ("pad", "loop", "reject"), owner=owner)
        check_choice("sampling", sampling, ("window", "resample"), owner=owner)
        check_choice("on_corrupt", on_corrupt, ("raise", "skip"), owner=owner)
        check_positive(
            owner=owner, none_ok=True, num_frames=num_frames, frame_stride=frame_stride, batch_size=batch_size
        )
        check_split_fractions(val_fraction, test_fraction, owner=owner)
        check_loader_args(owner, num_workers=num_workers, seed=seed)
        if sampling == "resample" and frame_stride != 1:
            raise ValueError(f"{owner}: frame_stride applies to sampling='window', got {frame_stride}")
        speakers = (train_speakers, val_speakers, test_speakers)
        sample_lists = (train_samples, val_samples, test_samples)
        if layout == "lightfield":
            if task != "phrases" or utterance_classes is not None or any(s is not None for s in speakers):
                raise ValueError(
                    f"{owner}: task, utterance_classes and *_speakers apply to layout 'ouluvs2', not "
                    "'lightfield'"
                )
            self._explicit = self._check_lists(sample_lists, "samples", lambda name: str(name))
        else:
            if any(s is not None for s in sample_lists):
                raise ValueError(f"{owner}: *_samples apply to layout 'lightfield', not 'ouluvs2'")
            self._explicit = self._check_lists(
                speakers, "speakers", lambda s: parse_number(s, "s", "a speaker")
            )
        if (task == "custom") != (utterance_classes is not None):
            raise ValueError(f"{owner}: utterance_classes is required with task='custom' and only then")
        self._utterance_classes: dict[str, str] = {}
        self._class_names: list[str] = []
        if utterance_classes is not None:
            self._utterance_classes = custom_utterance_classes(utterance_classes)
        elif layout == "ouluvs2":
            self._utterance_classes = ouluvs2_utterance_classes("digits" if task == "digits" else "phrases")
        self._views = self._check_views(views, layout)
        self.save_hyperparameters()
        self.root, self.layout = Path(root), layout
        self.on_missing_view: OnMissingView = on_missing_view
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.extensions = check_extensions(extensions)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.clip_options: dict[str, Any] = {
            "num_frames": num_frames,
            "frame_stride": frame_stride,
            "resize": resize,
            "grayscale": grayscale,
            "short_clips": short_clips,
            "sampling": sampling,
            "synchronised": layout == "ouluvs2",
            "on_corrupt": on_corrupt,
        }
        ClipTransform(resize=resize, grayscale=grayscale)  # checks resize
        self.missing_views = 0
        self.splits: _Splits | None = None

    @staticmethod
    def _check_lists(lists: Sequence[Sequence[Any] | None], what: str, norm: Any) -> list[list[str]] | None:
        owner = "MultiViewVideoDataModule"
        if all(x is None for x in lists):
            return None
        train, val, test = lists
        if train is None or test is None:
            raise ValueError(f"{owner}: give train_{what} and test_{what} together (val_{what} optional)")
        result: list[list[str]] = []
        for name, given in zip(SET_NAMES, (train, val or [], test)):
            if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
                raise ValueError(f"{owner}: {name}_{what} must be a list, got {given!r}")
            result.append([norm(x) for x in given])
        if not result[0] or not result[2]:
            raise ValueError(f"{owner}: train_{what} and test_{what} must not be empty")
        for i, j in ((0, 1), (0, 2), (1, 2)):
            shared = sorted(set(result[i]) & set(result[j]), key=natural_key)
            if shared:
                raise ValueError(
                    f"{owner}: {what} {shared} are in both {SET_NAMES[i]}_{what} and {SET_NAMES[j]}_{what}"
                )
        return result

    @staticmethod
    def _check_views(views: Sequence[str | int] | None, layout: Layout) -> list[str] | None:
        owner = "MultiViewVideoDataModule"
        if views is None:
            return None if layout == "ouluvs2" else list(LIGHTFIELD_VIEWS)
        if isinstance(views, (str, bytes)) or not isinstance(views, Sequence) or not views:
            raise ValueError(f"{owner}: views must be a non-empty list, got {views!r}")
        if layout == "ouluvs2":
            names = [parse_number(v, "v", f"{owner}: a view") for v in views]
        else:
            names = [str(v) for v in views]
            unknown = [v for v in names if v not in LIGHTFIELD_VIEWS]
            if unknown:
                raise ValueError(
                    f"{owner}: unknown light-field views {unknown}; the views are {list(LIGHTFIELD_VIEWS)}"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"{owner}: views {names} name a view twice")
        return names

    # -- scanning ------------------------------------------------------------------------------------

    def _chosen(self, found: Mapping[tuple[str, str], Mapping[str, Path]]) -> list[MultiViewSample]:
        """Samples with a path for every chosen view; missing views raise or are skipped."""
        views = self._views
        assert views is not None
        samples: list[MultiViewSample] = []
        for (group, key), paths in sorted(
            found.items(), key=lambda kv: (natural_key(kv[0][0]), natural_key(kv[0][1]))
        ):
            if self.layout == "ouluvs2":
                if key not in self._utterance_classes:
                    continue
                name = f"speaker {group} utterance {key}"
                label = self._class_names.index(self._utterance_classes[key])
            else:
                name = f"{group}/{key}"
                label = self._class_names.index(group)
            missing = [v for v in views if v not in paths]
            if missing:
                where = self.root / group / key if self.layout == "lightfield" else self.root
                message = f"{where}: {name} has no view {missing[0]} (views present: {sorted(paths, key=natural_key)})"
                if self.on_missing_view == "raise":
                    raise ValueError(message + "; choose other views or on_missing_view='skip'")
                logger.warning("%s; sample skipped", message)
                self.missing_views += 1
                continue
            samples.append(MultiViewSample(name, tuple(paths[v] for v in views), label, group))
        return samples

    def _read_ouluvs2(self) -> tuple[list[MultiViewSample], dict[str, list[MultiViewSample]] | None]:
        found = scan_ouluvs2(self.root, self.extensions)
        present = sorted({v for paths in found.values() for v in paths}, key=natural_key)
        if self._views is None:
            self._views = present
        unknown = [v for v in self._views if v not in present]
        if unknown:
            raise ValueError(
                f"{self.root}: no view {unknown[0]} folder under any speaker; views found: {present}"
            )
        self._class_names = list(dict.fromkeys(self._utterance_classes.values()))
        samples = self._chosen(found)
        if self._explicit is None:
            return samples, None
        speakers = {s.group for s in samples}
        for name, listed in zip(SET_NAMES, self._explicit):
            absent = [s for s in listed if s not in speakers]
            if absent:
                raise ValueError(
                    f"{self.root}: {name}_speakers {absent} have no sample (speakers found: {sorted(speakers, key=natural_key)})"
                )
        which = {s: name for name, listed in zip(SET_NAMES, self._explicit) for s in listed}
        return samples, assign_groups(samples, lambda s: s.group, which)

    def _read_lightfield(self) -> tuple[list[MultiViewSample], dict[str, list[MultiViewSample]] | None]:
        found = scan_lightfield(self.root)
        self._class_names = sorted({subject for subject, _ in found}, key=natural_key)
        samples = self._chosen(found)
        for sample in samples:
            counts = []
            for view, folder in zip(self._views or [], sample.paths):
                n = count_frames(folder)
                if n == 0:
                    raise ValueError(
                        f"{folder}: no image ({', '.join(FRAME_EXTENSIONS)}) in the {view} folder"
                    )
                counts.append(n)
            if self.clip_options["sampling"] == "window" and len(set(counts)) > 1:
                sizes = ", ".join(f"{v}: {n}" for v, n in zip(self._views or [], counts))
                raise ValueError(
                    f"{self.root / sample.name}: the perspectives hold different numbers of images ({sizes}); "
                    "use sampling='resample' to resample each to num_frames"
                )
        if self._explicit is None:
            return samples, None
        full = {s.name for s in samples}
        bare = {s.name.split("/", 1)[1] for s in samples}
        which: dict[str, str] = {}
        for name, listed in zip(SET_NAMES, self._explicit):
            for entry in listed:
                if entry not in full and entry not in bare:
                    raise ValueError(f"{self.root}: {name}_samples names '{entry}', which is no sample")
                for sample in samples:
                    if entry in (sample.name, sample.name.split("/", 1)[1]):
                        if which.get(sample.name, name) != name:
                            raise ValueError(
                                f"{self.root}: sample {sample.name} is in {which[sample.name]}_samples and {name}_samples"
                            )
                        which[sample.name] = name
        return samples, assign_groups(samples, lambda s: s.name, which)

    def _scan(self) -> _Splits:
        if self.splits is not None:
            return self.splits
        if self.layout == "ouluvs2":
            samples, sets = self._read_ouluvs2()
        else:
            samples, sets = self._read_lightfield()
        if not samples:
            raise ValueError(f"{self.root}: no sample with every view {self._views} (and a class)")
        if sets is None:
            if self.layout == "ouluvs2":  # speaker-disjoint
                which = split_groups(
                    [s.group for s in samples],
                    self.val_fraction,
                    self.test_fraction,
                    self.seed,
                    str(self.root),
                    "speakers",
                )
                sets = assign_groups(samples, lambda s: s.group, which)
            else:  # a subject's samples are divided between the sets
                which = {}
                for subject in self._class_names:
                    names = [s.name for s in samples if s.group == subject]
                    if names:
                        where = f"{self.root / subject} (subject {subject})"
                        which |= split_groups(
                            names, self.val_fraction, self.test_fraction, self.seed, where, "samples"
                        )
                sets = assign_groups(samples, lambda s: s.name, which)
        val_is_test = not sets["val"]
        if val_is_test:
            sets["val"] = sets["test"]
        for name in ("train", "test"):
            if not sets[name]:
                raise ValueError(f"{self.root}: the {name} set is empty")
        views = list(self._views or [])
        logger.info(
            "%s (%s): views %s, %d classes; %d training, %d validation and %d test samples",
            self.root,
            self.layout,
            views,
            len(self._class_names),
            len(sets["train"]),
            len(sets["val"]),
            len(sets["test"]),
        )
        self.splits = _Splits(sets, list(self._class_names), views, val_is_test)
        return self.splits

    @property
    def view_names(self) -> list[str]:
        """The views in batch order (OuluVS2 view numbers, or light-field perspectives)."""
        return list(self._scan().views)

    @property
    def num_views(self) -> int:
        return len(self._scan().views)

    def setup(self, stage: str | None = None) -> None:
        """Scan and check the layout, then build the sets ``stage`` needs (all three when ``None``)."""
        splits = self._scan()
        self.build_sets(
            stage,
            lambda which: MultiViewClips(
                splits.sets[which], splits.views, train=which == "train", **self.clip_options
            ),
        )
