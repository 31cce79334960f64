"""MedMNIST v2 subset: BreastMNIST, PneumoniaMNIST (modified copy), AdrenalMNIST3D.

Three small two-class medical imaging sets in MedMNIST's ``.npz`` layout
(``train_images``, ``train_labels``, ``val_*``, ``test_*``, uint8): breast ultrasound
(28 px; 0 = malignant, 1 = normal or benign), paediatric chest X-ray (28 px; 0 = normal,
1 = pneumonia) and adrenal gland shape masks from abdominal CT (28^3 and 64^3 voxels;
0 = normal, 1 = hyperplasia).  The PneumoniaMNIST copy is **modified**: its training
split was subsampled (3,882 of the official 4,708 images); say so wherever results on
it appear.  The AdrenalMNIST3D files are byte-identical to the official ones.

Spec only, no loader yet.  Images, not patient tables: a loader must decide how an
image set becomes tasks (one task per set, or per class split) and keep MedMNIST's
official splits.  Bump ``SPEC.version`` with any change to the data it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="medmnist",
    version=1,
    title="MedMNIST v2 subset: BreastMNIST, PneumoniaMNIST (modified), AdrenalMNIST3D",
    description=(
        "Two-class medical images in MedMNIST's npz layout with official splits: breast "
        "ultrasound, paediatric chest X-ray (train split subsampled), adrenal CT masks "
        "(28^3 and 64^3)."
    ),
    licence="CC BY 4.0",
    citation=(
        "Yang J, Shi R, Wei D, et al. MedMNIST v2 - A large-scale lightweight benchmark for "
        "2D and 3D biomedical image classification. Sci Data 2023;10:41. Al-Dhabyani W, et "
        "al. Dataset of breast ultrasound images. Data Brief 2020;28:104863. Kermany DS, et "
        "al. Identifying medical diagnoses and treatable diseases by image-based deep "
        "learning. Cell 2018;172(5):1122-1131."
    ),
    homepage="https://medmnist.com",
    folder="medmnist-subset",
    files=read_files(__package__, "medmnist.files.json"),
)
