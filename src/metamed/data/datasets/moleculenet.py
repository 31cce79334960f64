"""MoleculeNet Tox21, SIDER, MUV and ToxCast: one task per assay, one row per measured cell.

SMILES strings with binary labels for many assays or endpoints each, as assembled by
MoleculeNet (Wu et al. 2018) and distributed in chemprop's ``data/`` folder: Tox21
(7,831 molecules x 12 assays), SIDER (1,427 drugs x 27 side-effect organ classes), MUV
(93,087 x 17, 24-30 actives per assay) and ToxCast (8,576 x 617 endpoints).  Each assay
column is a task, as in the few-shot molecular literature (Meta-MGNN, PAR, GS-Meta).
ClinTox (2 tasks) is listed and verified but not loaded: two tasks are no few-shot
benchmark.

Option ``collection`` (default ``tox21``): which of the four files forms the cohort.

The cohort is *long*: one row per labelled (molecule, assay) cell, columns ``smiles``
(canonical SMILES), ``assay`` (the group column: one task per assay) and ``active``
(0/1, the outcome).  It has no feature columns: molecules are featurised from their
SMILES by :mod:`metamed.data.molecules` (RDKit fingerprints), once per molecule, not per
row.  Rows are ordered by assay (in the file's column order, :func:`assay_names`) and
then by canonical SMILES.

What this loader does to the raw values, and why:

* An empty cell means "not tested", never "inactive": it becomes no row at all.  Reading
  it as 0 would invent thousands of negatives (MUV is 99.8 % empty).
* SMILES are parsed with RDKit and rewritten in RDKit's canonical form (no salt
  stripping, no neutralisation: the file's molecule, written one way), so that one
  molecule spelled two ways is one molecule.  SMILES that RDKit cannot parse are
  dropped and counted (``provenance["molecules"]["unparsable"]``, with the first few).
* Molecules that become the same canonical SMILES are merged: their labels for each
  assay are combined.  Where they disagree (one measured active, another inactive for
  the same assay) the cell is *not* resolved by a vote: it is dropped (untested) and
  listed in ``provenance["molecules"]["conflicts"]`` (SMILES, assay, labels seen).
* Labels must be 0 or 1; anything else is refused (the file is not what it should be).

RDKit (``pip install 'metamed[chem]'``) is imported only when a MoleculeNet cohort is
loaded.  Bump ``SPEC.version`` with any change to the cohort the loader builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.registry import DatasetSpec, Option, load_dataset, read_files
from metamed.errors import MetamedValueError
from metamed.outcomes import BINARY

__all__ = [
    "COLLECTIONS",
    "MOLECULENET_SCHEMA",
    "SPEC",
    "assay_names",
    "canonical_smiles",
    "load_moleculenet",
    "molecules_of",
    "read_collection",
]

#: Collection name -> file in the dataset folder.
COLLECTIONS: dict[str, str] = {
    "tox21": "tox21.csv",
    "sider": "sider.csv",
    "muv": "muv.csv.gz",
    "toxcast": "toxcast.csv.gz",
}

#: How many unparsable SMILES and conflicting cells the provenance lists by name (all
#: are counted).
MAX_LISTED = 20

MOLECULENET_SCHEMA = Schema(outcome="active", group=("assay",), outcome_type=BINARY)

_INSTALL_HINT = "install RDKit: pip install 'metamed[chem]' (or pip install rdkit)"


def _rdkit_chem() -> Any:
    try:
        from rdkit import Chem
    except ImportError as exc:  # an optional dependency: say how to get it
        raise MetamedValueError(
            f"Reading MoleculeNet needs RDKit, which is not installed; {_INSTALL_HINT}."
        ) from exc
    return Chem


def canonical_smiles(smiles: list[str]) -> list[str | None]:
    """RDKit's canonical SMILES of each string, ``None`` where RDKit cannot parse it.

    RDKit's own parse errors (printed to stderr by default) are silenced: the count of
    failures is what the loader reports.
    """
    chem = _rdkit_chem()
    from rdkit import rdBase

    out: list[str | None] = []
    with rdBase.BlockLogs():
        for text in smiles:
            mol = chem.MolFromSmiles(text) if isinstance(text, str) and text else None
            out.append(None if mol is None else chem.MolToSmiles(mol))
    return out


def read_collection(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read one MoleculeNet CSV into the long cohort table and a report of the cleaning.

    Parameters
    ----------
    path : path-like
        A file whose first column is ``smiles`` and every other column one assay
        (0, 1 or empty).

    Returns
    -------
    frame : DataFrame
        Columns ``smiles``, ``assay``, ``active``; one row per labelled cell.
    report : dict
        ``rows`` (molecules in the file), ``unparsable`` (count) and
        ``unparsable_smiles`` (the first few), ``molecules`` (distinct canonical
        molecules kept), ``merged`` (file rows folded into another's molecule),
        ``conflicts`` (count) and ``conflicting_cells`` (the first few), ``assays``
        (names in file order) and ``labelled_cells``.
    """
    path = Path(path)
    raw = pd.read_csv(path, dtype=str)  # labels as written, for the message below
    if raw.columns[0] != "smiles" or raw.shape[1] < 2:
        raise MetamedValueError(
            f"{path.name}: expected a first column 'smiles' and one column per assay, found "
            f"columns {', '.join(map(str, raw.columns[:5]))}. Re-fetch it: "
            "metamed data fetch moleculenet --dest DIR"
        )
    assays = [str(c) for c in raw.columns[1:]]
    labels = raw[assays].apply(pd.to_numeric, errors="coerce")
    bad = labels.notna() & ~labels.isin([0, 1]) | labels.isna() & raw[assays].notna()
    if bad.to_numpy().any():
        col = assays[int(np.flatnonzero(bad.any(axis=0).to_numpy())[0])]
        value = raw[col][bad[col]].iloc[0]
        raise MetamedValueError(
            f"{path.name}: assay '{col}' holds {value!r}; labels must be 0, 1 or empty "
            "(untested). Re-fetch the file: metamed data fetch moleculenet --dest DIR"
        )

    canonical = pd.Series(canonical_smiles(raw["smiles"].tolist()), index=raw.index)
    parsed = canonical.notna()
    unparsable = [str(s) for s in raw["smiles"][~parsed]]
    long = (
        labels[parsed.to_numpy()]
        .assign(smiles=canonical[parsed])
        .melt(id_vars="smiles", var_name="assay", value_name="active")
        .dropna(subset=["active"])
    )
    # One molecule written twice: both spellings' labels for an assay meet here.
    per_cell = long.groupby(["smiles", "assay"], sort=False)["active"].agg(["min", "max"])
    conflict = per_cell["min"] != per_cell["max"]
    conflicts = [
        {"smiles": smiles, "assay": assay, "labels": [0, 1]}
        for smiles, assay in per_cell.index[conflict.to_numpy()]
    ]
    kept = per_cell[~conflict.to_numpy()].reset_index()
    order = {name: i for i, name in enumerate(assays)}
    kept = kept.assign(_order=kept["assay"].map(order)).sort_values(
        ["_order", "smiles"], kind="stable"
    )
    frame = pd.DataFrame(
        {
            "smiles": kept["smiles"].to_numpy(dtype=object),
            "assay": kept["assay"].to_numpy(dtype=object),
            "active": kept["min"].to_numpy().astype(np.int64),
        }
    )
    n_molecules = int(canonical[parsed].nunique())
    report = {
        "rows": len(raw),
        "unparsable": len(unparsable),
        "unparsable_smiles": unparsable[:MAX_LISTED],
        "molecules": n_molecules,
        "merged": int(parsed.sum()) - n_molecules,
        "conflicts": len(conflicts),
        "conflicting_cells": conflicts[:MAX_LISTED],
        "assays": assays,
        "labelled_cells": len(frame),
    }
    return frame, report


def assay_names(cohort: Cohort) -> list[str]:
    """The cohort's assays in the order of the file's columns (the literature's splits
    are stated in that order: "the first 9 Tox21 assays")."""
    return list(cohort.provenance["molecules"]["assays"])


def molecules_of(cohort: Cohort) -> list[str]:
    """The distinct canonical SMILES of the cohort, sorted (the featurisation's row order)."""
    return sorted(pd.unique(cohort.frame["smiles"]))


def _load(folder: Path, *, collection: str) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the verified files."""
    frame, report = read_collection(folder / COLLECTIONS[collection])
    return Cohort(
        name=f"moleculenet-{collection}",
        frame=frame,
        schema=MOLECULENET_SCHEMA,
        provenance={
            "source": f"MoleculeNet {collection} ({COLLECTIONS[collection]}, chemprop data/)",
            "cleaning": (
                "empty cell = untested (no row); SMILES canonicalised with RDKit; "
                f"{report['unparsable']} unparsable SMILES dropped; {report['merged']} rows "
                f"merged into an identical molecule; {report['conflicts']} conflicting "
                "(molecule, assay) cells dropped"
            ),
            "molecules": report,
        },
    )


SPEC = DatasetSpec(
    name="moleculenet",
    version=1,
    title="MoleculeNet Tox21, ToxCast, SIDER, ClinTox, MUV",
    description=(
        "SMILES with binary labels for many assays / endpoints; each assay is a task "
        "(few-shot molecular property prediction). Option collection: tox21 (12 assays), "
        "sider (27), muv (17), toxcast (617)."
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
    options=(
        Option(
            "collection",
            "tox21",
            "which MoleculeNet file forms the cohort (each assay one task)",
            choices=tuple(COLLECTIONS),
        ),
    ),
    loader=_load,
    n_patients=None,
    n_tasks=12,
)


def load_moleculenet(data_dir: str | Path | None = None, **options: object) -> Cohort:
    """Load one MoleculeNet collection as a long cohort (one row per measured cell).

    Same as ``load_dataset("moleculenet", data_dir, **options)``.

    Parameters
    ----------
    data_dir : path-like, optional
        The data directory holding ``moleculenet/``, or that folder itself.  Defaults to
        the ``METAMED_DATA_DIR`` environment variable.
    **options
        ``collection``: ``tox21`` (default), ``sider``, ``muv`` or ``toxcast``.

    Returns
    -------
    Cohort
        Named ``"moleculenet-<collection>"``; ``provenance["molecules"]`` counts the
        unparsable SMILES, merged duplicates and conflicting cells.
    """
    return load_dataset("moleculenet", data_dir, **options)
