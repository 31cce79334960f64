"""Benchmark suites: one benchmark per dataset under a shared setting, and one results page.

A suite is a TOML file (the shipped ones live in ``runs/suites/``; ``metamed benchmark
--suite rare-conditions`` runs ``rare-conditions.toml``, ``--suite path.toml`` any other)::

    title = "Rare conditions: ..."
    goal_k = 10                      # the page says whether a meta-learner wins at this K
    shots = [5, 10, 20, 50]          # defaults for every dataset
    draws = 10
    seed = 0

    [[methods]]                      # as in a benchmark spec: name, params, label
    name = "metapred"

    [overrides]                      # optional, as in a benchmark spec
    meta_iterations = 200

    [[datasets]]
    title = "Diabetes-130: ..."
    dataset = "diabetes-130"
    options = {}                     # the dataset's options
    n_common = 200                   # the rare-conditions rule (metamed.tasks.RareRule)
    min_query = 20                   # optional: min_query, min_per_class, val_fraction
    shots = [5, 10, 20]              # optional: this dataset's own shots / draws
    within = 0.2                     # optional (numeric outcome): the page adds the share
                                     # predicted within 20 % of the observed value (IWPC)
    params = { fomaml = { inner_lr = 0.01 } }  # optional: hyperparameters for this
                                     # dataset only, as --param sets them (by label or
                                     # learner name); part of its run's recorded config

A suite (or one dataset) may set ``split``: ``"rare"`` (the default, above), ``"sites"``
(the new-site rule, :class:`~metamed.tasks.SiteRule`: keys ``min_query``,
``min_per_class``, ``folds``, ``train_sites``, ``part_col``, ``train_part``,
``test_part``), or a benchmark's ``"auto"``, ``"loso"``, ``"random"``; and ``sampler`` and ``recalibrate`` as
in a benchmark spec.  A dataset entry may add ``methods`` of its own (its clinical
score) to the suite's, and name its ``folder`` (one dataset run twice, e.g. for two
outcomes).

A suite file that says ``protocol = "molecules"`` (the shipped ``molecules.toml``) runs
MoleculeNet collections under the literature's few-shot protocol instead: its format and
run folders are described in :mod:`metamed.runs.molecules`; one that says ``protocol =
"imaging"`` (the shipped ``imaging.toml``) runs the few-shot MedMNIST settings of
:mod:`metamed.runs.imaging`.  Both are read, checked, resumed and paged through the same
``read_suite`` / ``run_suite`` and CLI flags.

Each dataset becomes a :class:`~metamed.evaluation.spec.BenchmarkSpec` with its split
and runs into ``out/<folder>/`` (a run folder of its own: resumable,
written all or nothing); the page, ``out/<suite>.md`` (and ``page`` if given), is written
last from those folders' tables.  Every dataset and option is checked, and every output
place, before the first one starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from metamed.data.registry import dataset_folder, get_source
from metamed.errors import (
    DataNotFoundError,
    MetamedError,
    MetamedTypeError,
    MetamedValueError,
    did_you_mean,
)
from metamed.evaluation.metrics import IWPC_TOLERANCE
from metamed.evaluation.protocol import Progress, empty_decisions
from metamed.evaluation.spec import BenchmarkSpec, check_keys
from metamed.learners import GUARDS
from metamed.outputs import check_output_place, staged_output
from metamed.report.suite_page import (
    SuiteSection,
    suite_markdown,
    threshold_accuracy,
    within_tolerance,
)
from metamed.runs.benchmark import run_spec
from metamed.runs.executors import Executor, SerialExecutor
from metamed.runs.imaging import ImagingSuite, ImagingSuiteOutputs, run_imaging_suite
from metamed.runs.molecules import MoleculeSuite, MoleculeSuiteOutputs, run_molecule_suite
from metamed.runs.run_folder import JOBS_DIR, RunFolder, peak_memory_mib
from metamed.runs.timing import Stopwatch, record_cost
from metamed.threads import single_threaded

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "PROTOCOLS", "SUITES", "Suite", "SuiteDataset", "SuiteOutputs", "read_suite", "run_suite",
]  # fmt: skip

#: What a suite file's ``protocol`` may say: clinical task episodes (the default), the
#: MoleculeNet few-shot protocol (:mod:`metamed.runs.molecules`) or the MedMNIST one
#: (:mod:`metamed.runs.imaging`).
PROTOCOLS: tuple[str, ...] = ("episodes", "molecules", "imaging")

#: The suites shipped with metamed, by name (files in ``metamed/runs/suites/``).
SUITES: tuple[str, ...] = ("rare-conditions", "sites", "molecules", "imaging")

_SUITE_KEYS = (
    "title",
    "goal_k",
    "shots",
    "draws",
    "seed",
    "methods",
    "overrides",
    "datasets",
    "intro",
    "split",
    "sampler",
    "recalibrate",
)
#: The rule fields a dataset entry may give, by split.
_RULE_KEYS = {
    "rare": ("n_common", "min_query", "min_per_class", "val_fraction"),
    "sites": (
        "min_query", "min_per_class", "folds", "train_sites", "part_col", "train_part",
        "test_part",
    ),  # fmt: skip
}
_DATASET_KEYS = (
    "title", "dataset", "options", "n_common", "min_query", "min_per_class", "val_fraction",
    "shots", "draws", "notes", "split", "folds", "train_sites", "part_col", "train_part",
    "test_part",
    "methods", "folder", "accuracy", "params", "within",
)  # fmt: skip


@dataclass(frozen=True)
class SuiteDataset:
    """One dataset of a suite: its title, its benchmark spec, and notes for the page."""

    title: str
    spec: BenchmarkSpec
    notes: tuple[str, ...] = ()
    #: the run's folder inside the suite's (default: the dataset's name)
    folder_name: str | None = None
    #: the page also gives accuracy at P >= 0.5 per site (FLamby's way, for its anchors)
    accuracy: bool = False
    #: the page also gives the share of predictions within this relative tolerance of
    #: the observed value (a numeric outcome; IWPC's 0.2 for a warfarin dose)
    within: float | None = None

    @property
    def folder(self) -> str:
        assert self.spec.data.dataset is not None  # a suite names registered datasets
        return self.folder_name or self.spec.data.dataset


@dataclass(frozen=True)
class Suite:
    """A named list of benchmarks and what the page says about them."""

    name: str
    title: str
    datasets: tuple[SuiteDataset, ...]
    goal_k: int | None = None
    intro: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> Suite:
        check_keys(data, _SUITE_KEYS, f"suite {name}")
        for required in ("title", "methods", "datasets"):
            if required not in data:
                raise MetamedValueError(f"suite {name} has no '{required}'; add it.")
        if not isinstance(data["datasets"], list) or not data["datasets"]:
            raise MetamedTypeError(f"suite {name}: datasets must be a list of [[datasets]] tables.")
        shared = {
            k: data[k]
            for k in ("shots", "draws", "seed", "overrides", "sampler", "recalibrate")
            if k in data
        }
        methods = data["methods"]
        entries = []
        for index, entry in enumerate(data["datasets"]):
            where = f"suite {name}, datasets[{index}]"
            if not isinstance(entry, Mapping):
                raise MetamedTypeError(f"{where} must be a table.")
            check_keys(entry, _DATASET_KEYS, where)
            split = str(entry.get("split", data.get("split", "rare")))
            if "dataset" not in entry or (split == "rare" and "n_common" not in entry):
                raise MetamedValueError(f"{where} needs dataset and n_common.")
            given = [k for k in (*_RULE_KEYS["rare"], *_RULE_KEYS["sites"]) if k in entry]
            misplaced = [k for k in given if k not in _RULE_KEYS.get(split, ())]
            if misplaced:
                raise MetamedValueError(
                    f"{where}: {', '.join(misplaced)} belong(s) to another split than "
                    f'"{split}"; drop it or set split.'
                )
            rule = {k: entry[k] for k in given}
            extra = entry.get("methods", [])
            if not isinstance(extra, list):
                raise MetamedTypeError(f"{where}: methods must be a list of [[methods]] tables.")
            spec = BenchmarkSpec.from_dict(
                {
                    **shared,
                    **{k: entry[k] for k in ("shots", "draws") if k in entry},
                    "data": {
                        "dataset": entry["dataset"],
                        "options": dict(entry.get("options", {})),
                    },
                    # the suite's methods, then this dataset's own (its clinical score)
                    "methods": [*methods, *extra],
                    "split": split,
                    **({split: rule} if split in _RULE_KEYS else {}),
                }
            )
            spec = _with_dataset_params(spec, entry.get("params", {}), where)
            title = str(entry.get("title", entry["dataset"]))
            notes = tuple(str(n) for n in entry.get("notes", ()))
            folder = entry.get("folder")
            within = entry.get("within")
            if within is not None and (
                isinstance(within, bool) or not isinstance(within, (int, float)) or not 0 < within < 1
            ):
                raise MetamedValueError(
                    f"{where}: within must be a relative tolerance between 0 and 1 (0.2: "
                    f"within 20 % of the observed value), got {within!r}."
                )
            entries.append(
                SuiteDataset(
                    title, spec, notes, None if folder is None else str(folder),
                    bool(entry.get("accuracy", False)),
                    None if within is None else float(within),
                )  # fmt: skip
            )
        folders = [e.folder for e in entries]
        repeated = sorted({f for f in folders if folders.count(f) > 1})
        if repeated:
            raise MetamedValueError(
                f"suite {name} lists dataset '{repeated[0]}' twice; each dataset runs into its own "
                "folder, so list it once, or give each entry its own folder."
            )
        goal = data.get("goal_k")
        return cls(
            name, str(data["title"]), tuple(entries), None if goal is None else int(goal),
            tuple(str(line) for line in data.get("intro", ())),
        )  # fmt: skip


@dataclass(frozen=True)
class SuiteOutputs:
    out_dir: Path
    page: Path
    sections: tuple[SuiteSection, ...]


def _with_dataset_params(spec: BenchmarkSpec, params: Any, where: str) -> BenchmarkSpec:
    """``spec`` with a dataset entry's own hyperparameters (``params = { fomaml = {
    inner_lr = 0.01 } }``), as ``--param`` sets them: by label or learner name, every
    name and value checked here, before any dataset runs."""
    if not isinstance(params, Mapping) or not all(isinstance(v, Mapping) for v in params.values()):
        raise MetamedTypeError(
            f"{where}: params must be a table of method tables, e.g. "
            f"params = {{ fomaml = {{ inner_lr = 0.01 }} }}; got {params!r}."
        )
    if not params:
        return spec
    try:
        spec = spec.with_params(params, source=f"{where}: params")
        learners = spec.learners()
        for method in spec.methods:  # values too (a learner checks them at meta_fit)
            if method.label in params or method.name in params:
                learners[method.id]._validate_params()
    except MetamedError as error:
        message = str(error)
        if not message.startswith(where):
            message = f"{where}: params: {message}"
        raise type(error)(message) from None
    return spec


def read_suite(name_or_path: str | os.PathLike[str]) -> Suite | MoleculeSuite | ImagingSuite:
    """A shipped suite by name (:data:`SUITES`), or a suite TOML file by path.

    ``protocol = "molecules"`` in the file makes a :class:`~metamed.runs.molecules.MoleculeSuite`
    (the MoleculeNet protocol), ``protocol = "imaging"`` an
    :class:`~metamed.runs.imaging.ImagingSuite`; without it (``"episodes"``) a :class:`Suite`.
    """
    text_name = str(name_or_path)
    if text_name in SUITES:
        text = resources.files("metamed.runs").joinpath(f"suites/{text_name}.toml").read_text()
        name = text_name
    else:
        path = Path(name_or_path)
        if path.suffix != ".toml":
            known = list(SUITES)
            raise MetamedValueError(
                f"Unknown suite '{text_name}'.{did_you_mean(text_name, known)} Known suites: "
                f"{', '.join(known)}; or give the path of a suite .toml file."
            )
        try:
            text = path.read_text()
        except OSError as error:
            raise DataNotFoundError(f"--suite {path}: cannot read it ({error.strerror}).") from None
        name = path.stem
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MetamedValueError(f"suite {name} is not valid TOML: {error}.") from None
    protocol = data.pop("protocol", "episodes")
    if protocol == "molecules":  # the MoleculeNet protocol: fixed assay splits, fingerprints
        return MoleculeSuite.from_dict(name, {**data, "protocol": protocol})
    if protocol == "imaging":  # MedMNIST: official splits, K images per class
        return ImagingSuite.from_dict(name, data)
    if protocol != "episodes":
        raise MetamedValueError(
            f"suite {name}: unknown protocol '{protocol}'.{did_you_mean(str(protocol), PROTOCOLS)} "
            f"Known: {', '.join(PROTOCOLS)} (the default)."
        )
    return Suite.from_dict(name, data)


def run_suite(
    suite: Suite | MoleculeSuite | ImagingSuite,
    out: str | os.PathLike[str],
    *,
    data_dir: str | Path | None = None,
    page: str | os.PathLike[str] | None = None,
    executor: Executor | None = None,
    force: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
) -> SuiteOutputs | MoleculeSuiteOutputs | ImagingSuiteOutputs:
    """Run every dataset of ``suite`` into ``out/<dataset>/``, then write the page.

    Every dataset's options, data files and output place are checked before the first
    run starts.  ``command`` is what the page says regenerates it.  A molecules or
    imaging suite runs in this process (``executor`` must be None or serial), its cells
    recorded for ``resume`` (:func:`~metamed.runs.molecules.run_molecule_suite`,
    :func:`~metamed.runs.imaging.run_imaging_suite`); the imaging suite keeps the
    command's thread count (``--threads``): convolutions, unlike the other suites' tiny
    MLPs, are work enough for more than one thread on a machine that has them free.
    """
    if isinstance(suite, (MoleculeSuite, ImagingSuite)):
        if executor is not None and not isinstance(executor, SerialExecutor):
            raise MetamedValueError(
                f"suite {suite.name} runs in one process; drop --executor and --jobs."
            )
    if isinstance(suite, ImagingSuite):
        return run_imaging_suite(
            suite, out, data_dir=data_dir, page=page, force=force, resume=resume,
            progress=progress, command=command,
        )  # fmt: skip
    if isinstance(suite, MoleculeSuite):
        with single_threaded():
            return run_molecule_suite(
                suite, out, data_dir=data_dir, page=page, force=force, resume=resume,
                progress=progress, command=command,
            )  # fmt: skip
    out_dir = check_output_place(out, merge=True)
    places: dict[str, Path] = {}
    for entry in suite.datasets:
        name = entry.spec.data.dataset or ""
        get_source(name).resolve_options(entry.spec.data.options)  # "did you mean" errors
        dataset_folder(name, data_dir)  # every file present
        places[entry.folder] = RunFolder.check(out_dir / entry.folder, resume=resume, force=force)
    command = command or f"metamed benchmark --suite {suite.name} --out {out}"

    def write(done: list[SuiteSection]) -> SuiteOutputs:
        # after each dataset: a run stopped later still leaves a page for what finished
        return _write_page(suite, out_dir, done, command, page)

    with single_threaded():
        sections = _run_each(suite, places, data_dir, executor, force, resume, progress, write)
    return write(sections)


def _run_each(
    suite: Suite,
    places: dict[str, Path],
    data_dir: str | Path | None,
    executor: Executor | None,
    force: bool,
    resume: bool,
    progress: Progress | None,
    on_section: Callable[[list[SuiteSection]], object],
) -> list[SuiteSection]:
    sections: list[SuiteSection] = []
    for entry in suite.datasets:
        continued = resume and (places[entry.folder] / JOBS_DIR).is_dir()
        watch = Stopwatch()
        outputs = run_spec(
            entry.spec, places[entry.folder], data_dir=data_dir, executor=executor,
            force=force, resume=resume, progress=progress,
        )  # fmt: skip
        cost = record_cost(places[entry.folder].parent, entry.folder, watch.stop(), continued)
        config = json.loads(outputs.config_json.read_text())
        split = config.get("config", config).get("split_rule", {})
        decisions = (
            pd.read_csv(outputs.decisions_csv)
            if outputs.decisions_csv.is_file()
            else empty_decisions()
        )
        predictions = (
            pd.read_parquet(outputs.predictions_parquet)
            if entry.accuracy or entry.within is not None
            else None
        )
        accuracy = threshold_accuracy(predictions) if predictions is not None and entry.accuracy else None
        within = (
            within_tolerance(predictions, entry.within)
            if predictions is not None and entry.within is not None
            else None
        )
        sections.append(
            SuiteSection(
                title=entry.title,
                results=pd.read_parquet(outputs.results_parquet),
                baselines=entry.spec.baselines,
                split=split,
                seconds=cost.wall_s,
                peak_memory_mib=peak_memory_mib(),
                cost=cost.describe(),
                folder=entry.folder,
                notes=entry.notes,
                decisions=decisions,
                guards=[m.id for m in entry.spec.methods if m.name in GUARDS],
                accuracy=accuracy,
                within=within,
                tolerance=entry.within if entry.within is not None else IWPC_TOLERANCE,
            )
        )
        on_section(sections)
    return sections


def _write_page(
    suite: Suite,
    out_dir: Path,
    sections: list[SuiteSection],
    command: str,
    page: str | os.PathLike[str] | None,
) -> SuiteOutputs:
    where = Path(page).parent if page is not None else out_dir
    sections = [
        dataclasses.replace(
            s, report=os.path.relpath(out_dir / s.folder / "report.html", where.resolve())
        )
        if where.resolve() != out_dir.resolve()
        else dataclasses.replace(s, report=f"{s.folder}/report.html")
        for s in sections
    ]
    pending = [e.title for e in suite.datasets[len(sections) :]]
    text = suite_markdown(
        suite.title, command, sections, intro=suite.intro, goal_k=suite.goal_k, pending=pending
    )
    with staged_output(out_dir, merge=True) as staging:
        (staging / f"{suite.name}.md").write_text(text)
    page_path = out_dir / f"{suite.name}.md"
    if page is not None:
        Path(page).write_text(text)
        page_path = Path(page)
    return SuiteOutputs(out_dir, page_path, tuple(sections))
