"""Where a task writes (private): its run directory, the checkpoints it keeps by default, the names of the
samples it predicted, and the line that tells the person running the command where an output went."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor
from torch.utils.data import DistributedSampler, SequentialSampler

logger = logging.getLogger(__name__)


def default_checkpoints(trainer: Any, monitor: str, mode: Literal["min", "max"]) -> list[Callback]:
    """``last.ckpt`` (for resuming) and the best checkpoint by ``monitor``, unless the trainer already has
    a ``ModelCheckpoint`` with a monitor: the user's choice wins."""
    if any(isinstance(cb, ModelCheckpoint) and cb.monitor for cb in getattr(trainer, "callbacks", [])):
        return []
    best = ModelCheckpoint(
        monitor=monitor,
        mode=mode,
        save_last=True,
        filename="best-{epoch:03d}-{step:06d}",
        auto_insert_metric_name=False,
    )
    return [best]


def run_dir(trainer: Any) -> Path | None:
    """The run directory of ``trainer`` (its logger's version folder, else its root), or None without one.

    Under DDP this is a collective (``Trainer.log_dir`` broadcasts rank 0's folder): every rank must call
    it, never rank 0 alone."""
    if trainer is None:
        return None
    directory = trainer.log_dir or trainer.default_root_dir
    return Path(directory) if directory else None


def gather_on_rank_zero(trainer: Any, items: list[Any]) -> list[Any]:
    """The ``items`` of every process in rank order on rank 0 (a collective: every rank must call it);
    other ranks get their own back. The test loaders give rank r the r-th contiguous block of the set
    (``lstmvision.data._sharding``), so rank order is the set's order."""
    world = getattr(trainer, "world_size", 1)
    if world == 1 or not (dist.is_available() and dist.is_initialized()):
        return items
    parts: list[Any] | None = [None] * world if trainer.is_global_zero else None
    dist.gather_object(items, parts, dst=0)
    return [item for part in parts for item in part] if parts is not None else items


@rank_zero_only
def announce(what: str, path: Path) -> None:
    """``<what>: <path>`` on stdout, from rank 0 only: the one line a task prints, so that a person
    running ``lstmvision predict`` learns where the outputs went (everything else goes to ``logging``)."""
    print(f"{what}: {path}", flush=True)


def _predict_datasets(trainer: Any) -> list[Any]:
    loaders = getattr(trainer, "predict_dataloaders", None)
    if loaders is None:
        return []
    listed = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    return [getattr(loader, "dataset", None) for loader in listed]


def skipped_rows(trainer: Any) -> list[int]:
    """The rows of the predictions (positions in the predict sets, in order) whose sample was unusable
    and skipped (``on_corrupt: skip``): each holds the prediction of the next usable sample instead.

    On rank 0 the union over every process, which is why this is a collective (every rank must call
    it); other ranks get their own rows. The data sets record skips in memory shared with their
    DataLoader workers (``lstmvision.data.skips``)."""
    rows: list[int] = []
    offset = 0
    for dataset in _predict_datasets(trainer):
        indices = getattr(dataset, "skipped_indices", None)
        if callable(indices):
            rows.extend(offset + index for index in indices())
        try:
            offset += len(dataset)
        except TypeError:  # an iterable data set ends the numbered ones (predicted_sample_names)
            break
    return sorted(set(gather_on_rank_zero(trainer, rows)))


class CountedRows:
    """Which rows of a process's validation or test batches (``stage`` ``"val"`` or ``"test"``) are their
    own sample's, so that the metrics leave out the rows a data set served in place of an unusable sample
    it skipped (``on_corrupt: skip``): such a row is a copy of the next usable sample, which would
    otherwise count twice. For the same reason they leave out the rows torch's ``DistributedSampler``
    repeats to give every process as many (Lightning's validation sampler under DDP): its padding repeats
    the first samples at the end, and a process's rows from there on are copies.

    :meth:`start` at the start of an epoch of the stage, then :meth:`counted` (or :meth:`own`) once per
    batch, in order. A row's sample is known when the loader's sampler reads in a fixed order:
    sequential, or a ``DistributedSampler`` without shuffling (the data modules' test blocks under DDP,
    ``lstmvision.data.datamodules.sharding``, and the one Lightning gives other loaders). The flags of a
    batch's samples are final when the batch arrives, since the worker that found a sample unusable
    flagged it before serving the replacement. Only the stage's first loader is followed (the tasks
    take one).
    """

    def __init__(self, stage: Literal["val", "test"]) -> None:
        self._stage = stage
        self._dataset: Any = None
        self._order: list[int] | None = None  # the samples of this process's rows, in order
        self._next = 0
        self._sampler = ""
        self.left_out = 0  # rows of this process's epoch served in place of a skipped sample
        self.repeats = 0  # rows of this process's epoch that repeat a sample another row has
        self._unrepeated: int | None = None  # this process's rows before the sampler's padding

    def start(self, trainer: Any) -> None:
        """Follow ``trainer``'s (first) loader of the stage from its first row (none: every row counts)."""
        loaders = getattr(trainer, f"{self._stage}_dataloaders", None)
        listed = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        loader = listed[0] if listed else None
        self._dataset = getattr(loader, "dataset", None)
        sampler = getattr(loader, "sampler", None)
        self._order = None
        if isinstance(sampler, SequentialSampler) or (
            isinstance(sampler, DistributedSampler) and not sampler.shuffle
        ):
            self._order = list(sampler)
        self._sampler = type(sampler).__name__
        self._unrepeated = _unrepeated_rows(sampler)
        self._next = 0
        self.left_out = 0
        self.repeats = 0

    def own(self, count: int) -> Tensor | None:
        """For the next ``count`` rows: None when each is its own sample's (or the order is unknown), else
        a bool mask, False at the rows served in place of a skipped sample and at the sampler's repeats."""
        first, self._next = self._next, self._next + count
        unique: Tensor | None = None  # False at the rows the sampler's padding repeats
        if self._unrepeated is not None and first + count > self._unrepeated:
            unique = torch.arange(first, first + count) < self._unrepeated
            self.repeats += int((~unique).sum())
        flags = getattr(self._dataset, "skipped_among", None)
        if self._order is None or not callable(flags):
            return unique
        skipped = flags(self._order[first : first + count])
        if unique is not None and skipped is not None:
            skipped = skipped & unique  # a repeated row is left out once, as a repeat
        if skipped is None or not bool(skipped.any()):
            return unique
        self.left_out += int(skipped.sum())
        return ~skipped if unique is None else ~skipped & unique

    def counted(self, *rows: Tensor) -> tuple[Tensor, ...]:
        """The next ``len(rows[0])`` rows of each of ``rows`` (batch-first tensors of one batch), less those
        served in place of a skipped sample."""
        own = self.own(len(rows[0]))
        return rows if own is None else tuple(row[own.to(row.device)] for row in rows)

    def total_left_out(self, trainer: Any) -> int:
        """The rows left out by every process in this epoch (a collective under DDP); this process's
        without a trainer. Warns when the data set skipped samples whose rows could not be told apart."""
        quiet = trainer is not None and not trainer.is_global_zero
        skipped = int(getattr(self._dataset, "skipped", 0))
        if self._order is None and skipped and not quiet:
            logger.warning(
                "the %s loader's %s reads the set in no fixed order: the rows served in place of the %d "
                "skipped sample(s) (on_corrupt: skip) are counted in its metrics",
                self._stage,
                self._sampler,
                skipped,
            )
        if trainer is None:
            return self.left_out
        count = torch.tensor(float(self.left_out), device=trainer.strategy.root_device)
        total = trainer.strategy.reduce(count, reduce_op="sum")
        return round(float(total))


class RowMeans:
    """Means of ``keys`` over the rows of an epoch of every process: float64 sums of per-row values and a
    row count, added up over the processes at the epoch's end.

    What it replaces, ``self.log(..., sync_dist=True, batch_size=n)`` per batch, averages each process's
    sums and counts over the processes and divides by the averaged count as an integer: the mean is wrong
    (by up to a factor 2 with 2 processes) whenever the processes count different numbers of rows, as
    they do once :class:`CountedRows` leaves out repeated and skipped rows.
    """

    def __init__(self, *keys: str) -> None:
        self.keys = keys
        self._sums = torch.zeros(len(keys), dtype=torch.float64)
        self._rows = 0

    def reset(self) -> None:
        self._sums, self._rows = torch.zeros(len(self.keys), dtype=torch.float64), 0

    def add(self, rows: int, **sums: Tensor) -> None:
        """Add a batch of ``rows`` rows, with each key's sum of its per-row values over them."""
        if set(sums) != set(self.keys):
            raise ValueError(f"RowMeans takes the sums of {sorted(self.keys)}, got {sorted(sums)}")
        batch = torch.stack([sums[key].detach().to(torch.float64).reshape(()) for key in self.keys])
        self._sums = self._sums.to(batch.device) + batch
        self._rows += rows

    def means(self, trainer: Any) -> dict[str, float]:
        """Each key's mean over the rows of every process (a collective under DDP: every rank must ask);
        this process's without a trainer; empty when no row was counted."""
        rows = torch.tensor([float(self._rows)], dtype=torch.float64, device=self._sums.device)
        local = torch.cat([self._sums, rows])
        if trainer is not None:
            local = trainer.strategy.reduce(local.to(trainer.strategy.root_device), reduce_op="sum")
        totals = local.tolist()
        count = totals.pop()
        return {key: total / count for key, total in zip(self.keys, totals, strict=True)} if count else {}


def _unrepeated_rows(sampler: Any) -> int | None:
    """How many of a process's rows come before the padding of torch's own ``DistributedSampler`` (None:
    another sampler, or one that repeats nothing). Its padded order appends the first samples again and
    deals the whole out in turn, so process ``rank``'s row ``i`` is position ``rank + i * num_replicas``,
    a repeat from position ``len(dataset)`` on."""
    if (
        not isinstance(sampler, DistributedSampler)
        or type(sampler).__iter__ is not DistributedSampler.__iter__
    ):
        return None  # a subclass may deal otherwise (UnrepeatedShardSampler repeats nothing)
    size = len(sampler.dataset)  # type: ignore[arg-type]  # a DistributedSampler's data set is sized
    if sampler.drop_last or sampler.total_size <= size:
        return None
    return max(0, -(-(size - sampler.rank) // sampler.num_replicas))


def _sample_name(dataset: Any, index: int) -> str | None:
    """The file (or frame folder) item ``index`` of ``dataset`` reads, where the data set says so."""
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and index < len(samples):
        sample = samples[index]
        if isinstance(getattr(sample, "path", None), Path):  # a video file or frame folder
            return str(sample.path)
        paths = getattr(sample, "paths", None)
        if isinstance(paths, tuple) and paths:  # one file or folder per view, joined as in a CSV cell
            return "|".join(str(path) for path in paths)
    locate = getattr(dataset, "locate", None)
    seq_length = getattr(dataset, "seq_length", None)
    if callable(locate) and isinstance(seq_length, int):
        # KTH frame sequences: a stretch of one video folder, named by its first and last frame
        video, start = locate(index)
        return f"{video.path}[{start}:{start + seq_length}]"
    return None


def predicted_sample_names(trainer: Any, count: int) -> list[str]:
    """A name for each of the ``count`` predictions gathered on rank 0, in the predict sets' order.

    A sample read from a file is named by its path (several views: their paths joined by ``|``; a
    KTH frame sequence: its folder and ``[start:stop]`` frames); a generated sample, which has no file,
    by a stable id ``test/<index>`` (the data modules predict on their test set; ``predict/<index>``
    for loaders given to ``Trainer.predict`` directly, ``.../<loader>/<index>`` with several), the same
    on every run with the same data settings. The predict loaders read their sets in order on one
    process and in rank-ordered contiguous blocks under DDP, so the ``i``-th prediction is item ``i``
    of the set. A sample skipped under ``on_corrupt: skip`` keeps its row and name; :func:`skipped_rows`
    says which rows those are.
    """
    split = "test" if getattr(trainer, "datamodule", None) is not None else "predict"
    datasets = _predict_datasets(trainer)
    names: list[str] = []
    for number, dataset in enumerate(datasets):
        prefix = split if len(datasets) == 1 else f"{split}/{number}"
        try:
            size = len(dataset)
        except TypeError:  # an iterable data set: its items have no index to name them by
            break
        names.extend(_sample_name(dataset, index) or f"{prefix}/{index}" for index in range(size))
    if len(names) != count:  # an unsized set, or a loader that drops items: number the rows instead
        return [f"{split}/{index}" for index in range(count)]
    return names
