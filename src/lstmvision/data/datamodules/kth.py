"""The KTH Actions data module for video prediction and (early) action recognition: sequences of the
releases' frame folders, split by person (docs/data.md, "KTH Actions")."""

from __future__ import annotations

from collections.abc import Sequence

from lstmvision.data.datamodules.base import SetsDataModule, check_loader_args
from lstmvision.data.io.reading import OnCorrupt
from lstmvision.data.layouts.kth import (
    KTH_ACTIONS,
    KTH_TEST_PERSONS,
    KTH_TRAIN_PERSONS,
    check_actions,
    check_at_least_one,
    check_on_corrupt,
    check_persons,
)
from lstmvision.data.layouts.kth_frames import KTHFrames

__all__ = ["KTHDataModule"]


class KTHDataModule(SetsDataModule):
    """KTH Actions for video prediction and (early) action recognition.

    Training sequences come from ``train_persons`` (shuffled every epoch by the DataLoader), test
    sequences from ``test_persons``. Validation uses ``val_persons`` when given; by default
    (``None``) it uses the test persons, as the PredRNN / E3D-LSTM releases do, so model selection
    then looks at the test set: pass ``val_persons`` (and take them out of ``train_persons``) to keep
    the test set untouched. The three person sets must not overlap. ``predict_dataloader`` serves the
    test set.

    Args:
        root: the KTH root folder (``<root>/<action>/person<NN>_<action>_<scenario>/image_<n>.png``).
        image_size: frame height and width (frames are squashed to a square).
        seq_length: frames per sequence: 20 for 10→10 prediction, 30 for 10→20, 50 for 10→40.
        train_persons, val_persons, test_persons: KTH persons (1-25) of each set.
        train_stride: frames between sequence starts in training videos; ``None`` follows the releases
            (``seq_length`` for boxing, hand clapping, hand waving and walking, ``fast_stride`` for
            jogging and running).
        test_stride: the same for validation and test videos.
        fast_stride: jogging and running stride under the releases' rule.
        batch_size, num_workers: DataLoader settings.
        actions: actions to read (labels stay indices into :data:`KTH_ACTIONS`).
        on_corrupt: ``"raise"`` on a frame that cannot be decoded, or ``"skip"`` the sequence holding
            it (see :class:`KTHFrames`).

    Batches are ``(clips, labels)``: ``float32 (B, seq_length, 1, image_size, image_size)`` in [0, 1]
    and ``int64 (B,)``.
    """

    def __init__(
        self,
        *,
        root: str,
        image_size: int = 128,
        seq_length: int = 20,
        train_persons: Sequence[int] = KTH_TRAIN_PERSONS,
        val_persons: Sequence[int] | None = None,
        test_persons: Sequence[int] = KTH_TEST_PERSONS,
        train_stride: int | None = None,
        test_stride: int | None = None,
        fast_stride: int = 3,
        batch_size: int = 8,
        num_workers: int = 0,
        actions: Sequence[str] = KTH_ACTIONS,
        on_corrupt: OnCorrupt = "raise",
    ) -> None:
        super().__init__()
        check_at_least_one(
            image_size=image_size,
            seq_length=seq_length,
            train_stride=train_stride,
            test_stride=test_stride,
            fast_stride=fast_stride,
            batch_size=batch_size,
        )
        check_loader_args("KTHDataModule", num_workers=num_workers)
        check_on_corrupt(on_corrupt)
        self.persons: dict[str, tuple[int, ...] | None] = {
            "train": check_persons(train_persons, "train_persons"),
            "val": None if val_persons is None else check_persons(val_persons, "val_persons"),
            "test": check_persons(test_persons, "test_persons"),
        }
        named = [(which, set(p)) for which, p in self.persons.items() if p is not None]
        for i, (which_a, set_a) in enumerate(named):
            for which_b, set_b in named[i + 1 :]:
                if set_a & set_b:
                    raise ValueError(
                        f"KTHDataModule: {which_a}_persons and {which_b}_persons share persons "
                        f"{sorted(set_a & set_b)}; the sets must be disjoint"
                    )
        self.actions = check_actions(actions)
        self.save_hyperparameters()
        self.root = root
        self.image_size, self.seq_length = image_size, seq_length
        self.strides = {"train": train_stride, "val": test_stride, "test": test_stride}
        self.fast_stride = fast_stride
        self.batch_size, self.num_workers = batch_size, num_workers
        self.on_corrupt: OnCorrupt = on_corrupt

    @property
    def class_names(self) -> list[str]:
        """:data:`KTH_ACTIONS`, in label order (labels keep these indices when ``actions`` is a subset)."""
        return list(KTH_ACTIONS)

    @property
    def num_classes(self) -> int:
        return len(KTH_ACTIONS)

    def _build(self, which: str) -> KTHFrames:
        persons = self.persons[which]
        if persons is None:  # validation on the test persons, as in the releases: one shared set
            if "test" not in self.datasets:
                self.datasets["test"] = self._build("test")
            return self.datasets["test"]
        return KTHFrames(
            self.root,
            persons=persons,
            seq_length=self.seq_length,
            image_size=self.image_size,
            stride=self.strides[which],
            fast_stride=self.fast_stride,
            actions=self.actions,
            on_corrupt=self.on_corrupt,
        )

    def setup(self, stage: str | None = None) -> None:
        """Scan (and check) the folders of the sets that ``stage`` needs; all three when ``None``."""
        self.build_sets(stage, self._build)
