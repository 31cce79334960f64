"""Image sets as tasks: one task per set (and pseudo-site), MedMNIST's official splits kept.

A tabular task is a site's patients, split by task into meta-train and meta-test.  An
image set already comes split (MedMNIST's train / val / test, fixed by its authors and
used by every published number), so an image task keeps them: meta- and pre-training
read the training tasks' ``train`` split (their ``val`` split for early stopping), and a
held-out task is scored on its official ``test`` split, whole, with the K labelled
support images drawn from its own ``train`` split.  The support and the scored images
are then disjoint by construction, and a test AUROC is comparable with MedMNIST's
published ones (its ResNet-18 anchors are test-split AUCs).

The features are the pixels as the loader gives them (intensities in [0, 1], row-major,
one row per image); no :class:`~metamed.data.Preprocessor` runs, because per-pixel
standardisation would give each position its own scale, which a convolution's shared
weights cannot follow, and there is nothing to impute.  A model recovers the image from
a row with :attr:`ImageTasks.image_shape`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metamed.data.cohort import Cohort
from metamed.errors import MetamedValueError, did_you_mean
from metamed.tasks.task import Task

__all__ = ["IMAGE_SPLITS", "ImageTasks", "image_tasks"]

#: The official splits an image cohort carries in its ``split`` group column.
IMAGE_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageTasks:
    """The tasks of an image cohort, one :class:`~metamed.tasks.Task` per task and split.

    Attributes
    ----------
    names : tuple of str
        Task names (``"breastmnist"``, ``"breastmnist/blur"``, ...), sorted.
    image_shape : tuple of int
        (channels, height, width) of one image; ``X`` rows are these pixels flattened.
    train, val, test : dict of str to Task
        Each task's rows in that official split (rows in file order).
    """

    names: tuple[str, ...]
    image_shape: tuple[int, ...]
    train: dict[str, Task]
    val: dict[str, Task]
    test: dict[str, Task]

    def split(self, name: str) -> dict[str, Task]:
        """The tasks of official split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in IMAGE_SPLITS:
            raise MetamedValueError(
                f"Unknown split '{name}'.{did_you_mean(name, IMAGE_SPLITS)} Splits: "
                f"{', '.join(IMAGE_SPLITS)}."
            )
        out: dict[str, Task] = getattr(self, name)
        return out

    def check_names(self, names: list[str] | tuple[str, ...], what: str) -> None:
        """Refuse a task name the cohort does not hold ("did you mean")."""
        for name in names:
            if name not in self.names:
                raise MetamedValueError(
                    f"{what}: no image task '{name}'.{did_you_mean(name, self.names)} "
                    f"Tasks: {', '.join(self.names)}."
                )


def image_tasks(cohort: Cohort, task_col: str = "task", split_col: str = "split") -> ImageTasks:
    """Cut an image cohort (``load_dataset("medmnist")``) into tasks per official split.

    Parameters
    ----------
    cohort : Cohort
        One row per image, the pixels as numeric features, ``task_col`` and ``split_col``
        as group columns and ``provenance["image_shape"]`` (channels, height, width).
    task_col, split_col : str
        Group columns naming each row's task and official split.

    Raises
    ------
    MetamedValueError
        The cohort is not an image cohort (no image shape, or a shape that does not match
        the pixel count), or a split column value is not train / val / test.
    """
    shape = cohort.provenance.get("image_shape")
    features = cohort.schema.features
    if not shape:
        raise MetamedValueError(
            f"{cohort.name}: not an image cohort (its provenance has no image_shape); load "
            "one with load_dataset('medmnist')."
        )
    image_shape = tuple(int(s) for s in shape)
    if int(np.prod(image_shape)) != len(features) or cohort.schema.categorical:
        raise MetamedValueError(
            f"{cohort.name}: image_shape {image_shape} needs {int(np.prod(image_shape))} "
            f"numeric pixel columns, the schema has {len(features)} feature columns."
        )
    for col in (task_col, split_col):
        if col not in cohort.schema.group:
            raise MetamedValueError(
                f"{cohort.name}: '{col}' is not a group column.{did_you_mean(col, cohort.schema.group)}"
            )
    frame = cohort.frame
    splits = frame[split_col].astype(str).to_numpy()
    unknown = sorted(set(splits) - set(IMAGE_SPLITS))
    if unknown:
        raise MetamedValueError(
            f"{cohort.name}: split column '{split_col}' holds {unknown}; expected "
            f"{', '.join(IMAGE_SPLITS)} (MedMNIST's official splits)."
        )
    X = frame[list(features)].to_numpy(dtype=np.float32)
    y = frame[cohort.schema.outcome].to_numpy(dtype=np.float32)
    tasks = frame[task_col].astype(str).to_numpy()
    names = tuple(sorted(set(tasks)))
    by_split: dict[str, dict[str, Task]] = {s: {} for s in IMAGE_SPLITS}
    outcome = cohort.schema.outcome_type
    for name in names:
        for split in IMAGE_SPLITS:
            rows = np.flatnonzero((tasks == name) & (splits == split))
            if len(rows):
                by_split[split][name] = Task(name, X[rows], y[rows], outcome)
    return ImageTasks(names, image_shape, by_split["train"], by_split["val"], by_split["test"])
