"""MedMNIST loader and the acquisition corruptions: a self-made fixture and the real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metamed.data.datasets import medmnist
from metamed.data.images import CORRUPTIONS, corrupt
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError
from metamed.tasks import image_tasks


@pytest.fixture
def tiny_folder(tiny_medmnist: Path) -> Path:
    return tiny_medmnist


def _load(folder: Path, **options: object):
    spec = get_source("medmnist")
    return spec.loader(folder, **spec.resolve_options(options))


def test_rows_keep_the_official_splits_and_pixels(tiny_folder: Path) -> None:
    cohort = _load(tiny_folder, sets=("breastmnist",))
    frame = cohort.frame
    assert list(frame["split"]) == ["train"] * 6 + ["val"] * 2 + ["test"] * 4
    with np.load(tiny_folder / "breastmnist_28.npz") as raw:
        pixels = frame[medmnist.pixel_columns()].to_numpy()[8:]  # the test split
        np.testing.assert_allclose(pixels, raw["test_images"].reshape(4, -1) / 255.0, atol=1e-7)
        # BreastMNIST's labels are flipped so that 1 is the finding (malignant).
        np.testing.assert_array_equal(frame["label"].to_numpy()[8:], 1 - raw["test_labels"][:, 0])
    assert "modified" not in cohort.provenance


def test_pneumonia_is_marked_modified(tiny_folder: Path) -> None:
    cohort = _load(tiny_folder)
    assert "subsampled" in cohort.provenance["modified"]
    assert set(cohort.frame["task"]) == {"breastmnist", "pneumoniamnist"}


def test_corruptions_are_pseudo_sites_of_the_same_images(tiny_folder: Path) -> None:
    first = _load(tiny_folder, corruptions=("none", "speckle", "blur"))
    again = _load(tiny_folder, corruptions=("none", "speckle", "blur"))
    assert first.frame.equals(again.frame)  # seeded: the same cohort on every load
    tasks = image_tasks(first)
    assert tasks.names == (
        "breastmnist", "breastmnist/blur", "breastmnist/speckle",
        "pneumoniamnist", "pneumoniamnist/blur", "pneumoniamnist/speckle",
    )  # fmt: skip
    clean, noisy = tasks.test["breastmnist"], tasks.test["breastmnist/speckle"]
    np.testing.assert_array_equal(clean.y, noisy.y)
    assert not np.allclose(clean.X, noisy.X)
    assert tasks.image_shape == (1, 28, 28)


@pytest.mark.parametrize("shape", [(4, 28, 28), (4, 8, 8, 8)], ids=["2d", "3d"])
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_works_image_by_image(name: str, shape) -> None:
    images = np.random.default_rng(3).random(shape, dtype=np.float32)
    out = corrupt(images, name, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    changed = images.copy()
    changed[0] = 1.0 - changed[0]
    again = corrupt(changed, name, np.random.default_rng(0))
    # Changing one image moves no other image's pixels.
    np.testing.assert_array_equal(again[1:], out[1:])
    if name == "none":
        np.testing.assert_array_equal(out, images)
    else:
        assert not np.allclose(out, images)


def test_unknown_corruption_and_split_are_refused(tiny_folder: Path) -> None:
    with pytest.raises(MetamedValueError, match="Did you mean 'blur'"):
        get_source("medmnist").resolve_options({"corruptions": ("blurr",)})
    with pytest.raises(MetamedValueError, match="(?i)did you mean 'test'"):
        image_tasks(_load(tiny_folder)).split("tset")


def test_a_table_cohort_is_not_an_image_cohort() -> None:
    cohort = load_dataset("synthetic")
    with pytest.raises(MetamedValueError, match="not an image cohort"):
        image_tasks(cohort)


def test_real_files_keep_medmnist_split_sizes(data_dir: Path, need_dataset) -> None:
    need_dataset("medmnist-subset")
    tasks = image_tasks(load_dataset("medmnist", data_dir))
    sizes = {
        name: tuple(len(tasks.split(s)[name]) for s in ("train", "val", "test"))
        for name in tasks.names
    }
    assert sizes == {"breastmnist": (546, 78, 156), "pneumoniamnist": (3882, 524, 624)}
    # 1 = the finding: 42 malignant of 156 breast test images (0 = malignant officially).
    assert int(tasks.test["breastmnist"].y.sum()) == 42
    assert int(tasks.test["pneumoniamnist"].y.sum()) == 390


def test_volumes_load_on_their_own_with_3d_corruptions(tiny_folder: Path) -> None:
    cohort = _load(tiny_folder, sets=("adrenalmnist3d",), corruptions=("none", "resolution"))
    tasks = image_tasks(cohort)
    assert tasks.image_shape == (1, 28, 28, 28)
    assert tasks.names == ("adrenalmnist3d", "adrenalmnist3d/resolution")
    with np.load(tiny_folder / "adrenalmnist3d_28.npz") as raw:
        np.testing.assert_allclose(
            tasks.test["adrenalmnist3d"].X, raw["test_images"].reshape(4, -1) / 255.0, atol=1e-7
        )
    low = tasks.test["adrenalmnist3d/resolution"].X.reshape(4, 28, 28, 28)
    # 2 x 2 x 2 blocks: every voxel of a block holds the block's mean.
    assert np.all(low[:, 0::2, 0::2, 0::2] == low[:, 1::2, 1::2, 1::2])
    assert cohort.provenance["positive_class"] == {"adrenalmnist3d": "hyperplasia"}
    with pytest.raises(MetamedValueError, match="mix 2-D images and 3-D volumes"):
        _load(tiny_folder, sets=("breastmnist", "adrenalmnist3d"))


def test_real_volumes_keep_medmnist_split_sizes(data_dir: Path, need_dataset) -> None:
    need_dataset("medmnist-subset")
    tasks = image_tasks(load_dataset("medmnist", data_dir, sets=("adrenalmnist3d",)))
    task = "adrenalmnist3d"
    assert [len(tasks.split(s)[task]) for s in ("train", "val", "test")] == [1188, 98, 298]
    assert int(tasks.test[task].y.sum()) == 69  # hyperplasia, MedMNIST's label 1
    assert set(np.unique(tasks.test[task].X)) <= {0.0, 1.0}  # shape masks


def test_size_64_loads_the_64_cubed_volumes_and_only_for_adrenalmnist3d(tiny_folder: Path) -> None:
    cohort = _load(tiny_folder, sets=("adrenalmnist3d",), size=64)
    assert cohort.provenance["image_shape"] == [1, 64, 64, 64]
    columns = medmnist.pixel_columns(64, 3)
    assert len(columns) == 64**3 and columns[-1] == "px_262143"
    with np.load(tiny_folder / "adrenalmnist3d_64.npz") as raw:
        np.testing.assert_array_equal(
            cohort.frame[columns[:500]].to_numpy()[-4:], raw["test_images"].reshape(4, -1)[:, :500] / 255
        )
    assert image_tasks(cohort).image_shape == (1, 64, 64, 64)
    with pytest.raises(MetamedValueError, match="breastmnist has no 64-px copy.*size=28"):
        _load(tiny_folder, sets=("breastmnist",), size=64)
    with pytest.raises(MetamedValueError, match="Did you mean"):
        get_source("medmnist").resolve_options({"size": 65})
