"""MedMNIST v2 subset: BreastMNIST, PneumoniaMNIST (modified copy) at 28 px, AdrenalMNIST3D at 28^3 or 64^3.

Three small two-class medical imaging sets in MedMNIST's ``.npz`` layout
(``train_images``, ``train_labels``, ``val_*``, ``test_*``, uint8): breast ultrasound
(BreastMNIST, 780 images), paediatric chest X-ray (PneumoniaMNIST, 5,030 images here),
both 2-D, and adrenal gland shape masks from abdominal CT (AdrenalMNIST3D, 1,584 volumes
of 28^3 voxels, byte-identical to the official file; 0 = normal, 1 = hyperplasia).  The
sets of one cohort must share a shape: the 2-D sets load together (the default), the
3-D set on its own (``sets=("adrenalmnist3d",)``).  ``size=64`` loads AdrenalMNIST3D's
64^3 copy (byte-identical to the official 64-px file) instead of the 28^3 one: 262,144
voxel columns a row, about 1 GiB of float32 per copy of the 1,584 volumes, so every
corruption asked for adds another (``docs/datasets/medmnist.md`` gives what a run
costs); the 64-px 2-D files are not obtainable here, so the 2-D sets exist at 28 px
only.  Every file, the 64^3 one included, is verified by its sha256 before loading, and
the size is one of the options a cohort's provenance records (so a run folder, whose
identity holds the provenance, keeps the two sizes apart).  The official files are in MedMNIST's Zenodo record 10519652 (v3; 6496656, v2);
these copies are the public GitHub files named in ``medmnist.files.json``, which is what
``metamed data fetch medmnist`` downloads (the Zenodo BreastMNIST and PneumoniaMNIST
files have other bytes: a re-save and the unmodified set).

**The PneumoniaMNIST copy is modified**: its training split was subsampled (3,882 of the
official 4,708 images: 388 normal of 1,214, all 3,494 pneumonia); validation and test
are the official splits.  Every result on it must say so (``provenance["modified"]``
does, for the reports).

How the loader builds the cohort, and why:

- One row per image, in file order within each official split (train, val, test), the
  sets in the order of the ``sets`` option.  Features are the 784 pixels (``px_000`` to
  ``px_783``, row-major; a volume's 21,952 voxels ``px_00000`` to ``px_21951``, at 64^3
  ``px_000000`` to ``px_262143``) as
  intensities in [0, 1] (uint8 / 255; the adrenal masks are 0 or 1).  Nothing is imputed or
  scaled per pixel: a convolution shares its weights across positions, which per-pixel
  standardisation would undo; the imaging tasks read these values directly
  (:func:`metamed.tasks.image_tasks`).
- Labels: 1 is the finding.  PneumoniaMNIST's labels are kept (0 normal, 1 pneumonia).
  BreastMNIST's official labels are 0 malignant, 1 normal or benign; the loader flips
  them (1 = malignant), so that in every set the positive class is the pathology a
  few-shot model must find.  AUROC is unchanged by the flip (MedMNIST's published AUC of
  0.901 still compares).
- MedMNIST's official splits are kept in the group column ``split`` (train / val / test);
  nothing is re-split.  ``image`` is the image's index within its split in the file
  (for tracing a row back to its image).
- ``corruptions`` adds, for each chosen acquisition corruption
  (:mod:`metamed.data.images`), a copy of every image under it: the pseudo-sites of the
  acquisition-shift task.  ``task`` is ``"<set>"`` for the images as published and
  ``"<set>/<corruption>"`` otherwise; ``dataset`` and ``corruption`` are group columns
  too.  Speckle noise is seeded per (set, split) from ``CORRUPTION_SEED``, so the cohort
  is the same on every load.
- No column is dropped for leakage: the files hold images and labels only.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.images import CORRUPTIONS, corrupt
from metamed.data.registry import DatasetSpec, Option, load_dataset, read_files
from metamed.errors import MetamedValueError

__all__ = [
    "CORRUPTION_SEED",
    "IMAGE_SETS",
    "IMAGE_SHAPES",
    "SIZES",
    "MODIFIED_NOTE",
    "OFFICIAL_SPLITS",
    "SPEC",
    "image_shape",
    "load_medmnist",
    "pixel_columns",
]

#: The sets the loader reads: set name -> (file, labels are flipped so 1 = finding).
IMAGE_SETS: dict[str, tuple[str, bool]] = {
    "breastmnist": ("breastmnist_28.npz", True),
    "pneumoniamnist": ("pneumoniamnist_28_modified.npz", False),
    "adrenalmnist3d": ("adrenalmnist3d_28.npz", False),
}

#: Image sides the loader reads (``size``); 64 only for the sets with a file here.
SIZES: tuple[int, ...] = (28, 64)

#: The files of the other sizes: (set, size) -> file.
_SIZED_FILES: dict[tuple[str, int], str] = {("adrenalmnist3d", 64): "adrenalmnist3d_64.npz"}

#: The sets loaded when none are named: the 2-D ones.
DEFAULT_SETS: tuple[str, ...] = ("breastmnist", "pneumoniamnist")

#: The finding (label 1) of each set.
POSITIVE_CLASS: dict[str, str] = {
    "breastmnist": "malignant", "pneumoniamnist": "pneumonia", "adrenalmnist3d": "hyperplasia",
}  # fmt: skip

#: MedMNIST's official splits, in file order.
OFFICIAL_SPLITS = ("train", "val", "test")

#: Seed of the speckle noise (one generator per set, split and corruption derives from it).
CORRUPTION_SEED = 20231

#: What every result on PneumoniaMNIST must say.
MODIFIED_NOTE = (
    "PneumoniaMNIST here is a modified copy: its training split is subsampled (3,882 of the "
    "official 4,708 images); validation and test splits are the official ones."
)

IMAGE_SIDE = 28

#: (channels, *spatial) of one image of each set at 28 px: what a network must read.
IMAGE_SHAPES: dict[str, tuple[int, ...]] = {
    "breastmnist": (1, IMAGE_SIDE, IMAGE_SIDE),
    "pneumoniamnist": (1, IMAGE_SIDE, IMAGE_SIDE),
    "adrenalmnist3d": (1, IMAGE_SIDE, IMAGE_SIDE, IMAGE_SIDE),
}


def _file(name: str, size: int) -> str:
    """The file of set ``name`` at ``size`` px, or a metamed error where there is none."""
    if size == IMAGE_SIDE:
        return IMAGE_SETS[name][0]
    if (name, size) not in _SIZED_FILES:
        have = sorted(n for n, s in _SIZED_FILES if s == size)
        raise MetamedValueError(
            f"medmnist: {name} has no {size}-px copy here (the 64-px 2-D files are not "
            f"obtainable; see SOURCE.md); size={size} loads only {', '.join(have)}. Use "
            f"size={IMAGE_SIDE} for {name}."
        )
    return _SIZED_FILES[(name, size)]


def image_shape(name: str, size: int = IMAGE_SIDE) -> tuple[int, ...]:
    """(channels, *spatial) of one image of set ``name`` at ``size`` px (checked: a size
    the set has no file of is an error)."""
    _file(name, size)
    return (1, *[int(size)] * (len(IMAGE_SHAPES[name]) - 1))


def pixel_columns(side: int = IMAGE_SIDE, dims: int = 2) -> list[str]:
    """Names of the pixel feature columns of a ``side`` x ``side`` image (``dims`` = 3: a
    ``side``^3 volume), row-major."""
    n = side**dims
    width = len(str(n - 1))
    return [f"px_{i:0{width}d}" for i in range(n)]


def _labels(values: np.ndarray, flip: bool) -> np.ndarray:
    y = np.asarray(values).reshape(-1).astype(np.int64)
    return 1 - y if flip else y


def _noise_rng(name: str, split: str, corruption: str) -> np.random.Generator:
    # crc32 of the names, not hash(): stable across processes (PYTHONHASHSEED).
    key = zlib.crc32(f"{name}/{split}/{corruption}".encode())
    return np.random.default_rng(np.random.SeedSequence([CORRUPTION_SEED, key]))


def _load(
    folder: Path, *, sets: tuple[str, ...], corruptions: tuple[str, ...], size: int = IMAGE_SIDE
) -> Cohort:
    shapes = {image_shape(name, size) for name in sets}
    if len(shapes) > 1:
        raise MetamedValueError(
            f"medmnist: sets {', '.join(sets)} mix 2-D images and 3-D volumes; one cohort "
            "holds one shape. Load adrenalmnist3d on its own (sets=('adrenalmnist3d',))."
        )
    shape = shapes.pop()
    columns = pixel_columns(size, len(shape) - 1)
    files = {}
    for name in sets:
        with np.load(folder / _file(name, size)) as arrays:
            files[name] = {s: (arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in OFFICIAL_SPLITS}
    # One float32 array filled in place (no concatenated copies): at 64^3 one copy of
    # AdrenalMNIST3D's volumes is already 1.6 GiB.
    n_rows = len(corruptions) * sum(len(y) for splits in files.values() for _, y in splits.values())
    pixels = np.empty((n_rows, len(columns)), dtype=np.float32)
    meta: list[pd.DataFrame] = []
    row = 0
    for name in sets:
        flip = IMAGE_SETS[name][1]
        for corruption in corruptions:
            task = name if corruption == "none" else f"{name}/{corruption}"
            for split, (images, labels) in files[name].items():
                block = images.astype(np.float32) / 255.0
                block = corrupt(block, corruption, _noise_rng(name, split, corruption))
                pixels[row : row + len(block)] = block.reshape(len(block), -1)
                row += len(block)
                meta.append(
                    pd.DataFrame(
                        {
                            "task": task,
                            "dataset": name,
                            "corruption": corruption,
                            "split": split,
                            "image": np.arange(len(block), dtype=np.int64),
                            "label": _labels(labels, flip),
                        }
                    )
                )
    frame = pd.DataFrame(pixels, columns=columns, copy=False)
    for col, values in pd.concat(meta, ignore_index=True).items():
        frame[col] = values
    schema = Schema(
        outcome="label",
        numeric=tuple(columns),
        group=("task", "dataset", "corruption", "split", "image"),
    )
    provenance: dict[str, object] = {
        "source": "MedMNIST v2 (Zenodo record 10519652), copies named in medmnist.files.json",
        "image_shape": list(shape),
        "positive_class": {name: POSITIVE_CLASS[name] for name in sets},
    }
    if "pneumoniamnist" in sets:
        provenance["modified"] = MODIFIED_NOTE
    return Cohort("medmnist", frame, schema, provenance)


SPEC = DatasetSpec(
    name="medmnist",
    version=1,
    title="MedMNIST v2 subset: BreastMNIST, PneumoniaMNIST (modified), AdrenalMNIST3D",
    description=(
        "Two-class medical images with MedMNIST's official splits: breast ultrasound and "
        "paediatric chest X-ray (train split subsampled) at 28 px, loaded one row per image "
        "(784 pixels in [0, 1]; 1 = the finding); tasks: the sets, optionally under seeded "
        "acquisition corruptions (pseudo-sites). Adrenal CT shape masks at 28^3 (21,952 "
        "voxels a row, or 64^3 with size=64; loaded on their own)."
    ),
    licence="CC BY 4.0",
    citation=(
        "Yang J, Shi R, Wei D, et al. MedMNIST v2 - A large-scale lightweight benchmark for "
        "2D and 3D biomedical image classification. Sci Data 2023;10:41. Al-Dhabyani W, et "
        "al. Dataset of breast ultrasound images. Data Brief 2020;28:104863. Kermany DS, et "
        "al. Identifying medical diagnoses and treatable diseases by image-based deep "
        "learning. Cell 2018;172(5):1122-1131."
    ),
    homepage="https://medmnist.com (official files: https://zenodo.org/records/10519652)",
    folder="medmnist-subset",
    files=read_files(__package__, "medmnist.files.json"),
    options=(
        Option(
            "sets",
            DEFAULT_SETS,
            "the image sets in the cohort (each one task per corruption); the 2-D sets "
            "by default, adrenalmnist3d (28^3 volumes) on its own",
            choices=tuple(IMAGE_SETS),
            multiple=True,
        ),
        Option(
            "size",
            IMAGE_SIDE,
            "image side in pixels (voxels): 28, or 64 for adrenalmnist3d's 64^3 copy (the "
            "only 64-px file here; about 1 GiB of float32 per copy of its volumes)",
            choices=SIZES,
        ),
        Option(
            "corruptions",
            ("none",),
            "acquisition corruptions, each a copy of every image (pseudo-sites); 'none' = as published",
            choices=tuple(CORRUPTIONS),
            multiple=True,
        ),
    ),
    loader=_load,
    n_patients=5810,
    n_tasks=2,
)


def load_medmnist(data_dir: str | Path | None = None, **options: object) -> Cohort:
    """Load the 2-D MedMNIST subset (5,810 images, one task per set by default).

    Same as ``load_dataset("medmnist", data_dir, **options)``.

    Parameters
    ----------
    data_dir : path-like, optional
        The data directory holding ``medmnist-subset/``, or that folder itself.
        Defaults to the ``METAMED_DATA_DIR`` environment variable.
    **options
        ``sets`` (default both 2-D sets), ``corruptions`` (default ``("none",)``) and
        ``size`` (28; 64 for AdrenalMNIST3D's 64^3 copy).

    Returns
    -------
    Cohort
        One row per image (and corruption); group columns ``task``, ``dataset``,
        ``corruption``, ``split`` (MedMNIST's official split) and ``image``.
        PneumoniaMNIST's training split is a subsample (``provenance["modified"]``).
    """
    return load_dataset("medmnist", data_dir, **options)
