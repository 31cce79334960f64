"""Dataset registry: specs, checked loading and provenance.  It knows no dataset.

A dataset is one module (``metamed.data.datasets.<name>``, or a module of your own) that
declares a :class:`DatasetSpec`: name, version, licence, citation, homepage, the files
with their sha256 and public origin, the options its loader accepts with their defaults,
and the loader.  The module registers the spec with :func:`register_dataset`; this
module never imports a dataset module (a test checks it), so a dataset depends on the
registry and never the other way round.

:func:`load_dataset` is the one way in: it looks the name up ("did you mean" when
unknown), checks the options (unknown names and values are refused with "did you
mean"), checks that every file is present and matches its sha256 (each file is hashed
once), calls the loader with the verified folder and the full set of options, and
stamps the cohort's provenance with the dataset's name, version, options and checksums.

Versions.  ``DatasetSpec.version`` is an integer, starting at 1.  Bump it whenever a
change alters the cohort built for an existing set of options: cleaning, labels, column
roles, row order, or the files read.  Adding an option whose default keeps the old
cohort needs no bump.  With the version and options in every cohort's provenance, two
results are on the same data exactly when name, version, options and checksums agree.

The data directory is ``data_dir`` when given, else the ``METAMED_DATA_DIR``
environment variable.  Dataset files are never shipped with metamed: fetch them with
``metamed data fetch <name> --dest DIR``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from metamed.data.cohort import Cohort
from metamed.errors import (
    ChecksumError,
    DataNotFoundError,
    MetamedTypeError,
    MetamedValueError,
    UnknownNameError,
    did_you_mean,
    unknown_name,
)

__all__ = [
    "DATA_DIR_ENV",
    "DATASETS",
    "DataFile",
    "DatasetSpec",
    "Option",
    "dataset_folder",
    "dataset_names",
    "fetch_command",
    "get_source",
    "load_dataset",
    "read_files",
    "register_dataset",
    "resolve_data_dir",
    "sha256_file",
    "verify",
]

#: Environment variable naming the directory that holds one folder per dataset.
DATA_DIR_ENV = "METAMED_DATA_DIR"

#: ``loader(folder, **options) -> Cohort``: ``folder`` holds the verified files (``None``
#: for a dataset without files); every declared option is passed, defaults filled in.
Loader = Callable[..., Cohort]


class DataFile(NamedTuple):
    """One file of a dataset.

    Attributes
    ----------
    name : str
        Path relative to the dataset folder.
    sha256 : str
        Hex digest of the file.
    size_bytes : int
        Size of the file.
    url : str or None
        Public download URL of exactly these bytes (what ``metamed data fetch`` uses), or
        ``None`` when the file was repackaged (e.g. gzip-compressed) and no public
        byte-identical copy exists.
    origin : str
        Where the content comes from and what was changed, in words (always given).
    """

    name: str
    sha256: str
    size_bytes: int
    url: str | None = None
    origin: str = ""


@dataclass(frozen=True)
class Option:
    """One option a dataset's loader accepts.

    Parameters
    ----------
    name : str
        Keyword of :func:`load_dataset`.
    default : object
        Value used when the option is not given.
    help : str
        One line: what the option chooses.
    choices : tuple, optional
        The accepted values (with ``multiple``, the accepted items).  ``None`` leaves the
        check to the loader (e.g. numbers with a range).
    multiple : bool, default False
        The value is a non-empty collection of ``choices`` (a single string counts as one
        item); it reaches the loader as a tuple in the order of ``choices``, so that
        ``("va", "cleveland")`` and ``("cleveland", "va")`` build the same cohort.
    """

    name: str
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    multiple: bool = False

    def __post_init__(self) -> None:
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.multiple and not self.choices:
            raise MetamedValueError(f"Option '{self.name}': multiple=True needs choices.")

    def check(self, value: Any, dataset: str) -> Any:
        """``value`` in canonical form; a value outside ``choices`` gets "did you mean"."""
        if self.choices is None:
            return value
        if not self.multiple or isinstance(value, str):
            items = [value]
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
        else:
            raise MetamedTypeError(
                f"Dataset '{dataset}': option {self.name} takes a list of values from "
                f"{_listing(self.choices)}, got {value!r}."
            )
        for item in items:
            if item not in self.choices:
                raise MetamedValueError(
                    f"Dataset '{dataset}': option {self.name}={item!r} is not one of "
                    f"{_listing(self.choices)}.{did_you_mean(str(item), map(str, self.choices))}"
                )
        if not self.multiple:
            return value
        if not items:
            raise MetamedValueError(
                f"Dataset '{dataset}': option {self.name} needs at least one of "
                f"{_listing(self.choices)}."
            )
        return tuple(c for c in self.choices if c in items)


def _listing(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) for v in values)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything metamed knows about one dataset.

    Parameters
    ----------
    name : str
        Short name used on the command line (``uci-heart``).
    version : int
        Version of the cohort the loader builds; see the module docstring for when to
        bump it.
    title, description : str
        One-line title and a short description (tasks, outcome).
    licence, citation, homepage : str
        Terms of use, how to cite, where to read more.
    folder : str
        Folder of the files under the data directory (empty for no files).
    files : tuple of DataFile
    options : tuple of Option
        What :func:`load_dataset` accepts as keyword options, with defaults.
    loader : callable or None
        ``loader(folder, **options) -> Cohort``; ``None`` while metamed cannot load the
        dataset yet (it is still listed, fetched and verified).
    n_patients, n_tasks : int or None
        Size of the cohort with the default options (``None`` where not yet known).
    """

    name: str
    version: int
    title: str
    description: str
    licence: str
    citation: str
    homepage: str
    folder: str = ""
    files: tuple[DataFile, ...] = ()
    options: tuple[Option, ...] = ()
    loader: Loader | None = field(default=None, compare=False, repr=False)
    n_patients: int | None = None
    n_tasks: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(DataFile(*f) for f in self.files))
        object.__setattr__(self, "options", tuple(self.options))
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise MetamedValueError(
                f"Dataset '{self.name}': version must be an integer >= 1, got {self.version!r}."
            )
        if self.files and not self.folder:
            raise MetamedValueError(f"Dataset '{self.name}' lists files but no folder.")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise MetamedValueError(f"Dataset '{self.name}' declares an option twice: {names}.")

    @property
    def loadable(self) -> bool:
        """Whether :func:`load_dataset` can build a cohort from this dataset."""
        return self.loader is not None

    @property
    def size_bytes(self) -> int:
        """Total size of the dataset's files."""
        return sum(f.size_bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the loader, as JSON-ready values (``metamed datasets --json``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "loader"}
        out["files"] = [f._asdict() for f in self.files]
        out["options"] = [asdict(o) for o in self.options]
        out["loadable"] = self.loadable
        out["size_bytes"] = self.size_bytes
        return out

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option with its value: ``given`` checked, defaults filled in.

        Raises
        ------
        UnknownNameError
            An option the dataset does not declare ("did you mean" the closest).
        MetamedValueError
            A value outside the option's choices ("did you mean" the closest).
        """
        declared = {o.name: o for o in self.options}
        for key in given:
            if key not in declared:
                known = (
                    f" Its options: {', '.join(declared)} (`metamed datasets {self.name}`)."
                    if declared
                    else " It takes no options."
                )
                raise UnknownNameError(
                    f"Dataset '{self.name}' has no option '{key}'."
                    f"{did_you_mean(key, declared)}{known}"
                )
        return {
            name: option.check(given[name], self.name) if name in given else option.default
            for name, option in declared.items()
        }


def read_files(package: str, resource: str) -> tuple[DataFile, ...]:
    """Read a dataset's file list from a JSON file shipped next to its module.

    The JSON holds ``{"files": [{"name", "bytes", "sha256", "url"?, "origin"?}, ...]}``
    and optionally a top-level ``"origin"`` used for files that give none.  Checksums
    live in these data files, not in code, so that updating a file is a one-line diff.
    """
    text = resources.files(package).joinpath(resource).read_text("utf-8")
    where = f"{package}/{resource}"
    try:
        table = json.loads(text)
        default_origin = table.get("origin", "")
        files = []
        for entry in table["files"]:
            unknown = set(entry) - {"name", "bytes", "sha256", "url", "origin"}
            if unknown:
                raise KeyError(f"unknown keys {sorted(unknown)}")
            digest = str(entry["sha256"])
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"sha256 of {entry['name']} is not 64 lowercase hex digits")
            files.append(
                DataFile(
                    name=str(entry["name"]),
                    sha256=digest,
                    size_bytes=int(entry["bytes"]),
                    url=entry.get("url"),
                    origin=str(entry.get("origin", default_origin)),
                )
            )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise MetamedValueError(f"{where}: not a valid file list ({exc}).") from exc
    return tuple(files)


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so that large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def fetch_command(name: str) -> str:
    """The shell command that downloads dataset ``name``."""
    return f"metamed data fetch {name} --dest DIR"


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` (the dataset modules call this on import).

    Raises
    ------
    MetamedValueError
        The name is taken and ``replace`` is False.
    """
    if spec.name in DATASETS and not replace:
        raise MetamedValueError(
            f"A dataset named '{spec.name}' is already registered; pass replace=True to "
            "swap it (for example to attach a loader to a listed dataset)."
        )
    DATASETS[spec.name] = spec
    return spec


def dataset_names() -> list[str]:
    """Names of all registered datasets, sorted."""
    return sorted(DATASETS)


def get_source(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; an unknown name gets a "did you mean" error."""
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name]


def resolve_data_dir(data_dir: str | Path | None = None, name: str = "<name>") -> Path:
    """``data_dir`` if given, else ``$METAMED_DATA_DIR``; error naming both when neither is set."""
    if data_dir is None:
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        if not env:
            raise DataNotFoundError(
                f"No data directory: data_dir was not given and {DATA_DIR_ENV} is not set. "
                f"Download the dataset with `{fetch_command(name)}`, then set "
                f"{DATA_DIR_ENV}=DIR (or pass data_dir=DIR / --data-dir DIR)."
            )
        data_dir = env
    return Path(data_dir).expanduser()


def dataset_folder(name: str, data_dir: str | Path | None = None) -> Path:
    """Folder holding dataset ``name``'s files, checked to exist with every file present.

    ``data_dir`` may be the data directory (holding one folder per dataset) or the
    dataset folder itself.
    """
    spec = get_source(name)
    root = resolve_data_dir(data_dir, name)
    folder = root / spec.folder
    if not folder.is_dir() and root.name == spec.folder and root.is_dir():
        folder = root
    hint = (
        f"Download it with `{fetch_command(name)}` and pass that DIR as data_dir "
        f"(or set {DATA_DIR_ENV}=DIR)."
    )
    if not folder.is_dir():
        raise DataNotFoundError(
            f"Dataset '{name}': folder '{spec.folder}' not found in {root}. {hint}"
        )
    absent = [f.name for f in spec.files if not (folder / f.name).is_file()]
    if absent:
        raise DataNotFoundError(
            f"Dataset '{name}': {len(absent)} of {len(spec.files)} file(s) missing in "
            f"{folder}: {', '.join(absent)}. {hint}"
        )
    return folder


def _verified_checksums(spec: DatasetSpec, folder: Path) -> dict[str, str]:
    """Hash every file of ``spec`` in ``folder`` once; refuse any that differs."""
    digests: dict[str, str] = {}
    for item in spec.files:
        path = folder / item.name
        digest = sha256_file(path)
        if digest != item.sha256:
            raise ChecksumError(
                f"Dataset '{spec.name}': file '{item.name}' has sha256 {digest}, expected "
                f"{item.sha256} ({item.size_bytes} bytes published, {path.stat().st_size} "
                "bytes found). The file is corrupted or a different version: delete it and "
                f"run `{fetch_command(spec.name)}`."
            )
        digests[item.name] = digest
    return digests


def verify(name: str, data_dir: str | Path | None = None) -> dict[str, str]:
    """Check every file of dataset ``name`` against its published sha256.

    Returns
    -------
    dict
        File name -> sha256 (all matching).

    Raises
    ------
    DataNotFoundError
        A file is missing.
    ChecksumError
        A file's sha256 differs from the spec (the message says which and how to fix).
    """
    spec = get_source(name)
    if not spec.files:
        return {}
    return _verified_checksums(spec, dataset_folder(name, data_dir))


def load_dataset(name: str, data_dir: str | Path | None = None, **options: Any) -> Cohort:
    """Load a registered dataset as a :class:`~metamed.data.Cohort`.

    Parameters
    ----------
    name : str
        Registered name, e.g. ``"uci-heart"`` or ``"synthetic"``.
    data_dir : path-like, optional
        Directory holding one folder per dataset, or the dataset's folder itself;
        defaults to ``$METAMED_DATA_DIR``.  Not needed for datasets without files.
    **options
        The dataset's options (``metamed datasets NAME`` lists them); the others keep
        their defaults.

    Returns
    -------
    Cohort
        Its provenance holds ``dataset`` (``name``, ``version``, ``options`` with every
        value used), ``checksums`` (file name -> verified sha256), ``licence``,
        ``citation`` and ``homepage``, next to what the loader records itself.

    Raises
    ------
    UnknownNameError
        ``name`` is not registered, or an option is not one the dataset declares.
    MetamedValueError
        An option value is not one of its choices, or the dataset is listed but metamed
        has no loader for it yet.
    DataNotFoundError
        The data directory, the dataset folder or one of its files is missing; the
        message names ``metamed data fetch <name> --dest DIR`` and ``METAMED_DATA_DIR``.
    ChecksumError
        A file differs from its published sha256.
    """
    spec = get_source(name)
    if spec.loader is None:
        loadable = ", ".join(n for n in dataset_names() if DATASETS[n].loadable)
        raise MetamedValueError(
            f"Dataset '{name}' is listed (files and checksums known) but metamed cannot load "
            f"it yet. Loadable datasets: {loadable}. To use its files now, build a cohort "
            "with metamed.data.cohort_from_table(...) from your own extract."
        )
    chosen = spec.resolve_options(options)  # cheap checks before hashing any file
    folder = dataset_folder(name, data_dir) if spec.files else None
    checksums = _verified_checksums(spec, folder) if folder is not None else {}
    cohort = spec.loader(folder, **chosen)
    provenance = {
        **cohort.provenance,
        "licence": spec.licence,
        "citation": spec.citation,
        "homepage": spec.homepage,
        "dataset": {"name": spec.name, "version": spec.version, "options": chosen},
        "checksums": checksums,
    }
    return replace(cohort, provenance=provenance)
