"""Molecular features from SMILES: Morgan (ECFP) fingerprints and a few descriptors, cached.

One row per molecule, computed with RDKit (``pip install 'metamed[chem]'``) and cached on
disk: the cache file is named by the sha256 of the SMILES list, the settings, RDKit's
version and this module's format version, so a second run on the same molecules reads
the file (seconds, even for MUV's 93,087 molecules) and any change of settings or
molecules computes afresh instead of reading a stale matrix.

* ``radius`` and ``n_bits``: the Morgan fingerprint's radius (2 = ECFP4) and length.
* ``counts``: how often each hashed substructure occurs (capped at 255) instead of 0/1.
* ``descriptors``: ``True`` appends :data:`DESCRIPTORS` (molecular weight, logP, TPSA,
  ...); ``"all"`` appends every 2D descriptor RDKit has (``Descriptors.descList``, 217 in
  RDKit 2026.09).  Their scales differ by orders of magnitude; :func:`standardise_columns`
  (the ten) and :func:`quantile_scale_columns` (all of them, some heavy-tailed) scale them
  with statistics of the molecules a caller names (the meta-train molecules), never all.

The cache directory is ``cache_dir`` when given, else ``METAMED_CACHE_DIR``, else
``~/.cache/metamed``; files are written to a temporary name and renamed, so a killed run
never leaves a truncated cache file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metamed.errors import MetamedTypeError, MetamedValueError

__all__ = [
    "CACHE_DIR_ENV",
    "DESCRIPTORS",
    "FingerprintSettings",
    "MolecularFeatures",
    "featurise",
    "default_cache_dir",
    "descriptor_names",
    "quantile_scale_columns",
    "standardise_columns",
]

#: Environment variable naming the feature cache directory.
CACHE_DIR_ENV = "METAMED_CACHE_DIR"

#: Physico-chemical descriptors (RDKit ``Descriptors`` function names), in column order:
#: size, lipophilicity, polarity and the hydrogen-bond counts of Lipinski's rule of five,
#: flexibility, rings and saturation.
DESCRIPTORS: tuple[str, ...] = (
    "MolWt",
    "MolLogP",
    "TPSA",
    "NumHDonors",
    "NumHAcceptors",
    "NumRotatableBonds",
    "RingCount",
    "NumAromaticRings",
    "FractionCSP3",
    "HeavyAtomCount",
)

#: Bumped whenever the cached matrix for the same settings would change.
_FORMAT_VERSION = 1
#: Counts above this are stored as this (uint8); no substructure of a drug-like molecule
#: occurs more often.
_MAX_COUNT = 255


@dataclass(frozen=True)
class FingerprintSettings:
    """What :func:`featurise` computes.

    Parameters
    ----------
    radius : int, default 2
        Morgan radius (2 is ECFP4, 3 is ECFP6); 0-6.
    n_bits : int, default 2048
        Fingerprint length, 64-16384.
    counts : bool, default False
        Substructure counts instead of presence bits.
    descriptors : bool or "all", default False
        ``True``: append the :data:`DESCRIPTORS` columns (a descriptor that is not a
        finite float32 is an error).  ``"all"``: append every RDKit 2D descriptor; a value
        RDKit cannot compute (partial charges of some elements) or past float32 (``Ipc`` of
        large molecules) is stored as NaN, missing, because over 217 descriptors many
        molecules have one and refusing them would drop whole assays' worth.
    """

    radius: int = 2
    n_bits: int = 2048
    counts: bool = False
    descriptors: bool | str = False

    def __post_init__(self) -> None:
        for name, low, high in (("radius", 0, 6), ("n_bits", 64, 16384)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise MetamedTypeError(
                    f"FingerprintSettings: {name} must be an integer, got {value!r}."
                )
            if not low <= value <= high:
                raise MetamedValueError(
                    f"FingerprintSettings: {name} must be in [{low}, {high}], got {value}."
                )
        if not isinstance(self.counts, bool):
            raise MetamedTypeError(
                f"FingerprintSettings: counts must be True or False, got {self.counts!r}."
            )
        if not isinstance(self.descriptors, bool) and self.descriptors != "all":
            raise MetamedTypeError(
                "FingerprintSettings: descriptors must be True, False or \"all\", got "
                f"{self.descriptors!r}."
            )


@dataclass(frozen=True, eq=False)
class MolecularFeatures:
    """The features of a list of molecules, row ``i`` for ``smiles[i]``.

    Attributes
    ----------
    X : ndarray of shape (n_molecules, n_features), float32
        Fingerprint columns first, then the descriptors (unscaled).
    settings : FingerprintSettings
    columns : list of str
        ``fp_0 ...`` (or ``count_0 ...``), then the descriptor names.
    cache_file : Path
        Where the matrix is cached.
    from_cache : bool
        Whether it was read from the cache rather than computed.
    """

    X: np.ndarray
    settings: FingerprintSettings
    columns: list[str]
    cache_file: Path
    from_cache: bool

    @property
    def fingerprint_columns(self) -> slice:
        return slice(0, self.settings.n_bits)


def _rdkit() -> tuple[Any, Any, Any, Any]:
    try:
        from rdkit import Chem, rdBase
        from rdkit.Chem import Descriptors, rdFingerprintGenerator
    except ImportError as exc:
        raise MetamedValueError(
            "Molecular features need RDKit, which is not installed; install it with "
            "pip install 'metamed[chem]' (or pip install rdkit)."
        ) from exc
    return Chem, rdBase, Descriptors, rdFingerprintGenerator


def default_cache_dir() -> Path:
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "metamed"


def _cache_key(smiles: Sequence[str], settings: FingerprintSettings, rdkit_version: str) -> str:
    digest = hashlib.sha256()
    header = {"format": _FORMAT_VERSION, "rdkit": rdkit_version, **asdict(settings)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for text in smiles:
        digest.update(text.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def descriptor_names(settings: FingerprintSettings) -> list[str]:
    """The descriptor columns ``settings`` appends, in order (RDKit's names)."""
    if settings.descriptors == "all":
        return [name for name, _ in _rdkit()[2].descList]
    return list(DESCRIPTORS) if settings.descriptors else []


def _compute(smiles: Sequence[str], settings: FingerprintSettings) -> dict[str, np.ndarray]:
    chem, rdbase, descriptors, generators = _rdkit()
    generator = generators.GetMorganGenerator(radius=settings.radius, fpSize=settings.n_bits)
    fp = np.zeros((len(smiles), settings.n_bits), dtype=np.uint8)
    if settings.descriptors == "all":
        functions = [function for _, function in descriptors.descList]
    else:
        functions = [getattr(descriptors, name) for name in descriptor_names(settings)]
    desc = np.zeros((len(smiles), len(functions)), np.float32)
    with rdbase.BlockLogs():
        for i, text in enumerate(smiles):
            mol = chem.MolFromSmiles(text)
            if mol is None:
                raise MetamedValueError(
                    f"RDKit cannot parse SMILES #{i} {text!r}; drop it before featurising "
                    "(the moleculenet loader drops and counts such molecules)."
                )
            if settings.counts:
                counts = generator.GetCountFingerprintAsNumPy(mol)
                fp[i] = np.minimum(counts, _MAX_COUNT)
            else:
                fp[i] = generator.GetFingerprintAsNumPy(mol)
            if settings.descriptors == "all":
                desc[i] = _missing_as_nan([_or_nan(f, mol) for f in functions])
            elif settings.descriptors:
                desc[i] = _finite_descriptors([f(mol) for f in functions], i, text)
    # Bits pack eight to a byte: MUV's 93,087 x 2048 fingerprints are 24 MB on disk.
    packed = fp if settings.counts else np.packbits(fp, axis=1)
    return {"fingerprints": packed, "descriptors": desc}


def _finite_descriptors(values: list[float], i: int, text: str) -> list[float]:
    """``values`` if every descriptor is a finite float32; else a named error.

    A NaN or infinite descriptor (or one past float32's range, which the cast makes
    infinite) would survive into the cache and turn every standardised column it touches
    into NaN, so the training loss of every method silently becomes NaN.
    """
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array) | (np.abs(array) > np.finfo(np.float32).max)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise MetamedValueError(
            f"RDKit gives descriptor {DESCRIPTORS[j]} = {array[j]!r} for SMILES #{i} {text!r}, "
            "which is not a finite float32; drop the molecule or featurise without "
            "descriptors (descriptors = false)."
        )
    return values


def _or_nan(function: Callable[[Any], float], mol: Any) -> float:
    """One descriptor of ``mol``, NaN where RDKit raises (as ``CalcMolDescriptors`` does)."""
    try:
        return float(function(mol))
    except Exception:  # RDKit raises many types for a descriptor it cannot compute
        return float("nan")


def _missing_as_nan(values: list[float]) -> np.ndarray:
    """``values`` as float32 with every non-finite or out-of-range value as NaN (missing)."""
    array = np.asarray(values, dtype=np.float64)
    array[~np.isfinite(array) | (np.abs(array) > np.finfo(np.float32).max)] = np.nan
    return array.astype(np.float32)


def _write_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, fingerprints=arrays["fingerprints"], descriptors=arrays["descriptors"])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def featurise(
    smiles: Sequence[str],
    settings: FingerprintSettings | None = None,
    cache_dir: str | Path | None = None,
) -> MolecularFeatures:
    """Features of ``smiles`` (one row each, in order), read from the cache when there.

    Parameters
    ----------
    smiles : sequence of str
        SMILES that RDKit parses (the moleculenet loader's canonical SMILES).
    settings : FingerprintSettings, optional
        Defaults: ECFP4 (radius 2), 2048 bits, no counts, no descriptors.
    cache_dir : path-like, optional
        Defaults to ``METAMED_CACHE_DIR`` or ``~/.cache/metamed``.

    Returns
    -------
    MolecularFeatures

    Raises
    ------
    MetamedValueError
        RDKit is missing, or a SMILES does not parse (named).
    """
    if isinstance(smiles, str) or not all(isinstance(s, str) for s in smiles):
        raise MetamedTypeError("featurise: smiles must be a list of SMILES strings.")
    settings = settings or FingerprintSettings()
    _, rdbase, _, _ = _rdkit()
    key = _cache_key(smiles, settings, rdbase.rdkitVersion)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / "molecules" / f"{key}.npz"
    from_cache = path.is_file()
    if from_cache:
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
    else:
        arrays = _compute(smiles, settings)
        _write_atomically(path, arrays)
    fp = arrays["fingerprints"]
    if not settings.counts:
        fp = np.unpackbits(fp, axis=1, count=settings.n_bits)
    X = np.concatenate([fp.astype(np.float32), arrays["descriptors"]], axis=1)
    prefix = "count" if settings.counts else "fp"
    columns = [f"{prefix}_{i}" for i in range(settings.n_bits)]
    columns += descriptor_names(settings)
    return MolecularFeatures(X, settings, columns, path, from_cache)


def standardise_columns(X: np.ndarray, columns: slice, fit_rows: np.ndarray) -> np.ndarray:
    """``X`` with ``columns`` scaled to mean 0, SD 1 over ``fit_rows`` only (a copy).

    The statistics come from the rows a caller may see (the meta-train molecules), so
    held-out molecules never move them.  A constant column is centred and left unscaled.
    """
    out = np.array(X, dtype=np.float32, copy=True)
    part = out[fit_rows, columns].astype(np.float64)
    mean = part.mean(axis=0)
    sd = part.std(axis=0)
    sd[sd == 0] = 1.0
    out[:, columns] = ((out[:, columns] - mean) / sd).astype(np.float32)
    return out


#: Quantiles :func:`quantile_scale_columns` interpolates between (101: percentiles).
_QUANTILES = 101


def quantile_scale_columns(X: np.ndarray, columns: slice, fit_rows: np.ndarray) -> np.ndarray:
    """``X`` with ``columns`` mapped through their empirical CDF over ``fit_rows`` (a copy).

    Each column becomes its percentile rank among the fitted rows, centred and scaled to
    unit variance ((u - 0.5) * sqrt(12)), so a heavy-tailed descriptor (``Ipc`` spans 1 to
    1e36 on Tox21) ends up on the same bounded scale as the others; a z-score would squash
    all but a few molecules to one value.  A missing (NaN) value becomes 0, the fitted
    median.  Held-out molecules never move the quantiles; a value beyond the fitted range
    takes the nearest end.  This is the idea of Chemprop's normalised RDKit features
    (a CDF fitted per descriptor), with empirical instead of fitted distributions.
    """
    out = np.array(X, dtype=np.float32, copy=True)
    block = out[:, columns].astype(np.float64)
    levels = np.linspace(0.0, 1.0, _QUANTILES)
    for j in range(block.shape[1]):
        fitted = block[fit_rows, j]
        fitted = fitted[np.isfinite(fitted)]
        column = block[:, j]
        if len(fitted) == 0 or fitted.min() == fitted.max():
            block[:, j] = 0.0  # nothing to rank by: every molecule at the median
            continue
        edges = np.quantile(fitted, levels)
        # Ties (a count that is 0 for half the molecules) share the middle of their rank
        # range: interpolate from both sides and average.
        up = np.interp(column, edges, levels)
        down = 1.0 - np.interp(-column, -edges[::-1], levels)
        scaled = ((up + down) / 2 - 0.5) * np.sqrt(12.0)
        block[:, j] = np.where(np.isfinite(column), scaled, 0.0)
    out[:, columns] = block.astype(np.float32)
    return out
