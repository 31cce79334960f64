"""MoleculeNet Tox21, ToxCast, SIDER, ClinTox and MUV: few-shot molecular property sets.

SMILES strings with binary labels for many assays or endpoints each (an empty cell
means "not tested"): Tox21 (7,831 molecules x 12 tasks), ToxCast (8,576 x 617), SIDER
(1,427 drugs x 27 side-effect organ classes), ClinTox (1,478 x 2) and MUV (93,087 x 17,
24-30 actives per task).  Each assay column is a task, as in the few-shot molecular
literature (Meta-MGNN, PAR).

Spec only, no loader yet.  A loader must decide: the featurisation of SMILES (RDKit or
another encoder) and what to do with SMILES that fail to parse (drop them and record
how many); that the unit is a molecule, not a patient, and one molecule carries labels
for many tasks.  SIDER is CC BY-NC-SA 4.0 (non-commercial).  Bump ``SPEC.version`` with
any change to the data it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="moleculenet",
    version=1,
    title="MoleculeNet Tox21, ToxCast, SIDER, ClinTox, MUV",
    description=(
        "SMILES with binary labels for many assays / endpoints; each assay is a task "
        "(few-shot molecular property prediction)."
    ),
    licence=(
        "mixed: public domain (Tox21, ToxCast, MUV), CC BY-NC-SA 4.0 (SIDER), none stated (ClinTox)"
    ),
    citation=(
        "Wu Z, Ramsundar B, Feinberg EN, et al. MoleculeNet: a benchmark for molecular "
        "machine learning. Chem Sci 2018;9:513-530."
    ),
    homepage="https://moleculenet.org",
    folder="moleculenet",
    files=read_files(__package__, "moleculenet.files.json"),
)
