"""The molecules suite: the MoleculeNet few-shot benchmark as a suite file -> run folders and a page.

``metamed benchmark --suite molecules`` reads ``runs/suites/molecules.toml`` (any suite
file with ``protocol = "molecules"`` runs here: ``--suite path.toml``)::

    title = "Few-shot molecular property prediction on MoleculeNet"
    protocol = "molecules"           # this module's protocol, not the clinical one
    shots = [1, 5, 10]               # K actives + K inactives per support set
    draws = 10
    seed = 0
    split = "literature"             # or, for ToxCast, "provider:<P>"
    fingerprints = { radius = 2, n_bits = 2048, counts = false, descriptors = false }
                                     # descriptors: true (10 RDKit descriptors) or "all"
    max_train_rows = 2048            # optional (MoleculeProtocolConfig)
    val_rows_fraction = 0.2          # optional
    intro = ["..."]                  # optional prose at the top of the page

    [overrides]                      # optional, as in a benchmark spec
    n_iterations = 300

    [[methods]]                      # as in a benchmark spec: name, params, label
    name = "protonet"

    [[datasets]]
    collection = "tox21"
    split = "literature"             # optional: this collection's own split
    folder = "tox21"                 # optional: its folder in --out (default: collection,
                                     #   plus the provider for a provider split)
    draws = 3                        # optional: this collection's own draws per (assay, K)
    max_train_rows = 512             # optional: its own cap on rows per meta-train assay
    fingerprints = { descriptors = true }  # optional: this entry's own features (give it
                                     #   its own folder); unnamed settings are the suite's
    notes = ["..."]                  # optional prose under its section

Each collection is loaded, featurised (RDKit fingerprints, cached) and cut by its split
(:mod:`metamed.evaluation.molecules`), then each method is one *cell*: meta-train on the
training assays, adapt and score on every episode of the test assays.  A finished cell is
recorded in ``out/<folder>/jobs`` (:class:`~metamed.runs.run_folder.RunFolder`), so
``--resume`` redoes no finished (collection, method) cell; a cell's key holds its
method's hyperparameters, so a changed method is redone and an added one is run.  The
page, ``out/molecules.md`` (and ``--page``), is rewritten after every cell from the
records: a run stopped early leaves a page for what finished, the rest listed as pending.
Every number on it comes from the run except the anchors, quoted from the papers and
labelled so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from metamed.data.cohort import Cohort
from metamed.data.datasets.moleculenet import molecules_of
from metamed.data.molecules import FingerprintSettings, descriptor_names, featurise
from metamed.data.registry import dataset_folder, get_source, load_dataset
from metamed.device import device_kind, device_name
from metamed.errors import MetamedTypeError, MetamedValueError, did_you_mean
from metamed.evaluation.bootstrap import bootstrap_ci
from metamed.evaluation.molecules import (
    LITERATURE_SPLITS,
    MoleculeProtocolConfig,
    assay_split,
    molecule_task_split,
    score_molecule_method,
    summarise_molecules,
)
from metamed.evaluation.protocol import Progress
from metamed.evaluation.spec import BenchmarkSpec, DataSpec, MethodSpec, check_keys
from metamed.learners import BASELINES
from metamed.learners.base import MetaLearner
from metamed.outputs import staged_output
from metamed.runs.run_folder import (
    CellCounter,
    RunFolder,
    cell_key,
    check_suite_places,
    write_suite_page,
)

__all__ = [
    "ANCHORS",
    "MOLECULE_METHODS",
    "MoleculeCollection",
    "MoleculeSuite",
    "MoleculeSuiteOutputs",
    "molecules_page",
    "run_molecule_suite",
]

#: The default methods: meta-learners on fingerprints, pooled multi-task + fine-tune, and
#: the support-only baselines.
MOLECULE_METHODS: tuple[str, ...] = (
    "protonet", "maml", "anil", "pooled-finetune", "local-rf", "local-knn", "local-logreg",
)  # fmt: skip
#: The baselines that see the support set alone (no meta-training data).
SUPPORT_ONLY: tuple[str, ...] = ("local-rf", "local-knn", "local-logreg", "local-gbm")

#: Published ROC-AUC (%) under the same assay splits: (collection, method, paper) ->
#: {K: value}.  Graph neural networks, most with self-supervised pretraining; quoted, not run.
ANCHORS: dict[tuple[str, str, str], dict[int, float]] = {
    ("tox21", "ProtoNet (graph)", "Guo et al. 2021, Meta-MGNN"): {10: 74.98, 1: 65.58},
    ("tox21", "MAML (graph)", "Guo et al. 2021, Meta-MGNN"): {10: 80.21, 1: 75.74},
    ("tox21", "Pre-PAR", "Wang et al. 2021, PAR"): {10: 84.93, 1: 83.01},
    ("tox21", "GS-Meta", "Zhuang et al. 2023"): {10: 86.67},
    ("sider", "Pre-PAR", "Wang et al. 2021, PAR"): {10: 78.08, 1: 74.46},
    ("muv", "Pre-PAR", "Wang et al. 2021, PAR"): {10: 69.96, 1: 66.94},
}
#: Anchors whose inputs hold each molecule's meta-train assay labels (GS-Meta's
#: molecule-property graph): compared with an ``aux_labels`` entry, and only that.
LABEL_ANCHORS: frozenset[str] = frozenset({"GS-Meta"})
#: The issue's accuracy goal: Tox21 10-shot ROC-AUC (%) with fingerprints.
TOX21_GOAL = 80.0
#: The issue's scale goal: ToxCast's 617 endpoints meta-trained and scored in 15 minutes.
TOXCAST_GOAL_SECONDS = 15 * 60
#: FS-Mol (a different dataset: ChEMBL assays, 16 support molecules, not balanced).
FSMOL_PROTONET_DELTA_AUPRC = 0.211

Loader = Callable[[str], Cohort]

_SUITE_KEYS = (
    "title", "protocol", "intro", "shots", "draws", "seed", "split", "fingerprints",
    "max_train_rows", "val_rows_fraction", "overrides", "methods", "datasets",
)  # fmt: skip
_DATASET_KEYS = (
    "collection", "split", "folder", "notes", "draws", "fingerprints", "max_train_rows",
    "aux_labels",
)  # fmt: skip
_FINGERPRINT_KEYS = ("radius", "n_bits", "counts", "descriptors")


@dataclass(frozen=True)
class MoleculeCollection:
    """One collection of the suite under one split, run into ``out/<folder>``."""

    collection: str
    split: str = "literature"
    folder_name: str | None = None
    notes: tuple[str, ...] = ()
    #: draws per (assay, K) for this collection (None: the suite's)
    draws: int | None = None
    #: this entry's features (None: the suite's)
    fingerprints: FingerprintSettings | None = None
    #: this entry's cap on rows per meta-train assay (None: the suite's)
    max_train_rows: int | None = None
    #: the GS-Meta setting: each molecule's meta-train assay labels as extra features
    #: (more information than fingerprints alone; see ``training_label_features``)
    aux_labels: bool = False

    def __post_init__(self) -> None:
        if self.draws is not None and (isinstance(self.draws, bool) or int(self.draws) < 1):
            raise MetamedValueError(f"draws of {self.collection} must be >= 1, got {self.draws}.")
        if self.max_train_rows is not None and int(self.max_train_rows) < 10:
            raise MetamedValueError(
                f"max_train_rows of {self.collection} must be >= 10, got {self.max_train_rows}."
            )
        if self.collection not in LITERATURE_SPLITS:
            raise MetamedValueError(
                f"Unknown collection '{self.collection}'."
                f"{did_you_mean(self.collection, LITERATURE_SPLITS)} The molecules suite runs "
                f"{', '.join(LITERATURE_SPLITS)}."
            )
        provider = self.split.startswith("provider:") and len(self.split) > len("provider:")
        known = self.split in ("literature", "validation")
        if not known and not (provider and self.collection == "toxcast"):
            hint = ", or provider:<P> (e.g. provider:ATG)" if self.collection == "toxcast" else ""
            raise MetamedValueError(
                f"Unknown split '{self.split}' for {self.collection}; use literature or "
                f"validation{hint}."
            )

    @property
    def folder(self) -> str:
        if self.folder_name is not None:
            return self.folder_name
        base = (
            self.collection
            if self.split == "literature"
            else f"{self.collection}-{self.split.split(':', 1)[1].lower()}"
        )
        return f"{base}-auxlabels" if self.aux_labels else base

    @property
    def title(self) -> str:
        title = self.collection if self.split == "literature" else f"{self.collection} ({self.split})"
        if self.fingerprints is not None:
            title += f", {_features_text(self.fingerprints)}"
        if self.aux_labels:
            title += ", with the meta-train assay labels (GS-Meta setting)"
        return title


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise MetamedTypeError(f"{where} must be true or false, got {value!r}.")
    return value


def _default_methods() -> tuple[MethodSpec, ...]:
    return tuple(MethodSpec(m) for m in MOLECULE_METHODS)


@dataclass(frozen=True)
class MoleculeSuite:
    """What the suite runs: collections, methods, fingerprints and the protocol."""

    collections: tuple[MoleculeCollection, ...]
    methods: tuple[MethodSpec, ...] = field(default_factory=_default_methods)
    fingerprints: FingerprintSettings = field(default_factory=FingerprintSettings)
    protocol: MoleculeProtocolConfig = field(default_factory=MoleculeProtocolConfig)
    #: Learner settings that override the defaults where a learner has them.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    name: str = "molecules"
    title: str = "Few-shot molecular property prediction on MoleculeNet"
    intro: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.collections:
            raise MetamedValueError(f"suite {self.name} lists no collection; add [[datasets]].")
        folders = [c.folder for c in self.collections]
        repeated = sorted({f for f in folders if folders.count(f) > 1})
        if repeated:
            raise MetamedValueError(
                f"suite {self.name} runs two entries into folder '{repeated[0]}'; give each "
                "its own folder."
            )
        self.learners()  # method names, params and overrides checked before any work

    def learners(self) -> dict[str, MetaLearner]:
        """Unfitted learners by method id, seeded from the protocol's seed."""
        spec = BenchmarkSpec(
            DataSpec(), self.methods, seed=self.protocol.seed, overrides=dict(self.overrides)
        )
        return spec.learners()

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> MoleculeSuite:
        """A suite from its TOML tables (see the module docstring)."""
        check_keys(data, _SUITE_KEYS, f"suite {name}")
        if not isinstance(data.get("datasets"), list) or not data["datasets"]:
            raise MetamedTypeError(f"suite {name}: datasets must be a list of [[datasets]] tables.")
        split = str(data.get("split", "literature"))
        fingerprints = data.get("fingerprints", {})
        if not isinstance(fingerprints, Mapping):
            raise MetamedTypeError(f"suite {name}: fingerprints must be a table of settings.")
        check_keys(fingerprints, _FINGERPRINT_KEYS, "fingerprints")
        collections = []
        for index, entry in enumerate(data["datasets"]):
            where = f"suite {name}, datasets[{index}]"
            if not isinstance(entry, Mapping) or "collection" not in entry:
                raise MetamedValueError(f"{where} must be a table with a collection.")
            check_keys(entry, _DATASET_KEYS, where)
            folder = entry.get("folder")
            own = entry.get("fingerprints")
            if own is not None:
                if not isinstance(own, Mapping) or folder is None:
                    raise MetamedValueError(
                        f"{where}: fingerprints must be a table of settings, and an entry "
                        "with its own fingerprints needs its own folder = \"...\"."
                    )
                check_keys(own, _FINGERPRINT_KEYS, f"{where}, fingerprints")
            collections.append(
                MoleculeCollection(
                    str(entry["collection"]), str(entry.get("split", split)),
                    None if folder is None else str(folder),
                    tuple(str(n) for n in entry.get("notes", ())),
                    None if "draws" not in entry else int(entry["draws"]),
                    None if own is None else FingerprintSettings(**{**fingerprints, **own}),
                    None if "max_train_rows" not in entry else int(entry["max_train_rows"]),
                    _flag(entry.get("aux_labels", False), f"{where}, aux_labels"),
                )  # fmt: skip
            )
        protocol = {
            k: data[k]
            for k in ("shots", "draws", "seed", "max_train_rows", "val_rows_fraction")
            if k in data
        }
        if "shots" in protocol:
            protocol["shots"] = tuple(int(k) for k in protocol["shots"])
        methods = data.get("methods")
        return cls(
            collections=tuple(collections),
            methods=(
                tuple(MethodSpec.from_dict(m) for m in methods)
                if methods is not None
                else _default_methods()
            ),
            fingerprints=FingerprintSettings(**dict(fingerprints)),
            protocol=MoleculeProtocolConfig(**protocol),
            overrides=dict(data.get("overrides", {})),
            name=name,
            title=str(data.get("title", cls.title)),
            intro=tuple(str(line) for line in data.get("intro", ())),
        )


@dataclass(frozen=True)
class MoleculeSuiteOutputs:
    out_dir: Path
    page: Path
    summary: pd.DataFrame
    text: str


@dataclass
class _Section:
    """One collection's finished cells, read back from its run folder."""

    entry: MoleculeCollection
    results: pd.DataFrame
    timings: list[dict]
    config: dict

    @property
    def seconds(self) -> float:
        """Every step's time, summed (the Times table's total)."""
        return sum(row["seconds"] for row in self.timings)


def run_molecule_suite(
    suite: MoleculeSuite,
    out: str | os.PathLike[str],
    *,
    data_dir: str | Path | None = None,
    page: str | os.PathLike[str] | None = None,
    force: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
    cache_dir: Path | None = None,
    load: Loader | None = None,
) -> MoleculeSuiteOutputs:
    """Run every cell of ``suite`` not yet recorded, rewriting the page after each.

    Parameters
    ----------
    out : path
        The suite's folder; each collection runs into ``out/<folder>/``.  Every folder,
        the data files and ``page`` are checked before any work.
    load : callable, optional
        ``load(collection) -> Cohort``; default ``load_dataset("moleculenet", data_dir,
        collection=...)`` (tests pass self-made collections).
    command : str
        The command line that regenerates the run, printed on the page.
    """
    out_dir, places = check_suite_places(
        out, [e.folder for e in suite.collections], page, resume=resume, force=force
    )
    if load is None:
        for entry in suite.collections:
            get_source("moleculenet").resolve_options({"collection": entry.collection})
        dataset_folder("moleculenet", data_dir)  # every file present

        def load(collection: str) -> Cohort:
            return load_dataset("moleculenet", data_dir, collection=collection)

    learners = suite.learners()
    command = command or f"metamed benchmark --suite {suite.name} --out {out}"
    sections: list[_Section] = []
    counter = CellCounter(progress, len(suite.collections) * len(learners))

    def write(current: _Section | None) -> MoleculeSuiteOutputs:
        done = [*sections, *([current] if current is not None else [])]
        return _write_page(suite, out_dir, done, command, page)

    for entry in suite.collections:
        section = _run_collection(
            suite, entry, learners, places[entry.folder], load, cache_dir, force, resume,
            counter, lambda s: write(s),
        )  # fmt: skip
        sections.append(section)
    return write(None)


def _run_collection(
    suite: MoleculeSuite,
    entry: MoleculeCollection,
    learners: dict[str, MetaLearner],
    place: Path,
    load: Loader,
    cache_dir: Path | None,
    force: bool,
    resume: bool,
    counter: CellCounter,
    on_cell: Callable[[_Section], object],
) -> _Section:
    protocol = suite.protocol
    if entry.draws is not None:
        protocol = dataclasses.replace(protocol, draws=entry.draws)
    if entry.max_train_rows is not None:
        protocol = dataclasses.replace(protocol, max_train_rows=entry.max_train_rows)
    start = time.perf_counter()
    cohort = load(entry.collection)
    loaded = time.perf_counter() - start
    split = assay_split(cohort, entry.collection, entry.split)
    fingerprints = entry.fingerprints or suite.fingerprints
    start = time.perf_counter()
    features = featurise(molecules_of(cohort), fingerprints, cache_dir)
    featurised = time.perf_counter() - start
    descriptors = slice(fingerprints.n_bits, None) if fingerprints.descriptors else None
    scaling = "quantile" if fingerprints.descriptors == "all" else "standard"
    start = time.perf_counter()
    tasks = molecule_task_split(
        cohort, features.X, split, protocol, descriptors, entry.aux_labels, scaling
    )
    built = time.perf_counter() - start
    cached = " (from cache)" if features.from_cache else " (computed, now cached)"
    config = {
        **tasks.config,
        "collection": entry.collection,
        "split": entry.split,
        "test_assay_counts": {name: [int(y.sum()), len(y)] for name, y in tasks.test.labels()},
        "cleaning": {
            k: v for k, v in cohort.provenance.get("molecules", {}).items() if k != "assays"
        },
        "dataset": cohort.provenance.get("dataset"),
        "fingerprints": asdict(fingerprints),
    }
    section = _Section(
        entry,
        pd.DataFrame(),
        [
            {"collection": entry.folder, "step": "load and clean", "seconds": loaded},
            {"collection": entry.folder, "step": f"featurise{cached}", "seconds": featurised},
            {"collection": entry.folder, "step": "build tasks", "seconds": built},
        ],
        config,
    )
    identity = {
        "suite": "molecules",
        "collection": entry.collection,
        "split": entry.split,
        "aux_labels": entry.aux_labels,
        "data": cohort.provenance,
        "fingerprints": asdict(fingerprints),
        "protocol": asdict(protocol),
    }
    replace = force and place.is_dir() and any(place.iterdir())
    tables = []
    device = device_kind()  # --device: not part of the cells' keys, one device a folder
    if resume:
        RunFolder.check_device(place, device)
    with RunFolder.open(place, identity, resume=resume, replace=replace, device=device) as folder:
        for method, learner in learners.items():
            key = cell_key(method, learner)
            recorded = folder.cell(key)
            if recorded is None:
                result = score_molecule_method(
                    method, learner, tasks, protocol, entry.folder, counter.say
                )
                info = {
                    "fit_seconds": result.fit_seconds[method],
                    "adapt_seconds": result.adapt_seconds[method],
                    "device": device_name(),
                }
                folder.record_cell(key, result.results, info)
                recorded = (result.results, info)
            else:
                counter.say(f"{entry.folder}: {method} recorded already (resumed)")
            table, info = recorded
            tables.append(table)
            section.results = pd.concat(tables, ignore_index=True)
            section.timings += [
                {"collection": entry.folder, "step": f"meta-train {method}",
                 "seconds": info["fit_seconds"]},
                {"collection": entry.folder, "step": f"adapt + score {method}",
                 "seconds": info["adapt_seconds"]},
            ]  # fmt: skip
            counter.done += 1
            on_cell(section)
        summary = summarise_molecules(section.results, seed=protocol.seed)
        with staged_output(place, merge=not folder.deferred) as staging:
            folder.write_into(staging)
            section.results.to_csv(staging / "results.csv", index=False)
            summary.to_csv(staging / "summary.csv", index=False)
            (staging / "config.json").write_text(
                json.dumps(
                    {**config, "methods": {m: cell_key(m, lr) for m, lr in learners.items()},
                     "timings": section.timings},
                    indent=2, default=str,
                )  # fmt: skip
            )
    return section


def _write_page(
    suite: MoleculeSuite,
    out_dir: Path,
    sections: list[_Section],
    command: str,
    page: str | os.PathLike[str] | None,
) -> MoleculeSuiteOutputs:
    results = [s.results for s in sections if len(s.results)]
    table = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    summary = summarise_molecules(table, seed=suite.protocol.seed) if len(table) else table
    text = molecules_page(suite, sections, summary, command)
    page_path = write_suite_page(out_dir, suite.name, text, {"summary.csv": summary}, page)
    return MoleculeSuiteOutputs(out_dir, page_path, summary, text)


def _features_text(fp: FingerprintSettings) -> str:
    kind = "counts" if fp.counts else "bits"
    text = f"Morgan/ECFP fingerprints, radius {fp.radius}, {fp.n_bits} {kind}"
    if fp.descriptors == "all":
        text += (
            f", plus all {len(descriptor_names(fp))} RDKit 2D descriptors (percentile ranks "
            "among meta-train molecules)"
        )
    elif fp.descriptors:
        text += ", plus 10 RDKit descriptors (standardised on meta-train molecules)"
    return text


def _method_table(summary, collection, methods, shots, metric: str, title: str) -> list[str]:
    """One metric's Markdown table: a row per method, a column per K."""
    lines = [
        f"{title}, mean over test assays [95 % CI over draws]:",
        "",
        "| method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
        "|---|" + "---|" * len(shots),
    ]
    for method in methods:
        cells = [_cell(summary, collection, method, k, metric) for k in shots]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _cell(summary: pd.DataFrame, collection: str, method: str, k: int, metric: str) -> str:
    row = summary[
        (summary["dataset"] == collection)
        & (summary["method"] == method)
        & (summary["k"] == k)
        & (summary["metric"] == metric)
    ]
    if row.empty:
        return "-"
    r = row.iloc[0]
    scale, digits = (100.0, 1) if metric == "roc_auc" else (1.0, 3)
    return (
        f"{r['mean'] * scale:.{digits}f} [{r['ci_low'] * scale:.{digits}f}, "
        f"{r['ci_high'] * scale:.{digits}f}]"
    )


def _best(summary: pd.DataFrame, collection: str, k: int) -> tuple[str, float] | None:
    rows = summary[
        (summary["dataset"] == collection) & (summary["k"] == k) & (summary["metric"] == "roc_auc")
    ]
    if rows.empty:
        return None
    top = rows.sort_values("mean", ascending=False).iloc[0]
    return str(top["method"]), float(top["mean"]) * 100


def _features_words(entry: MoleculeCollection) -> str:
    """How an entry's inputs read in a sentence: "on fingerprints", ..."""
    if entry.aux_labels:
        return "with the meta-train assay labels"
    if entry.fingerprints is not None and entry.fingerprints.descriptors:
        return "on fingerprints and descriptors"
    if entry.fingerprints is not None and entry.fingerprints.counts:
        return "on fingerprint counts"
    return "on fingerprints"


def _compared_anchors(entry: MoleculeCollection) -> dict[tuple[str, str, str], dict[int, float]]:
    """The anchors an entry is set against: those using the same information.

    An ``aux_labels`` entry sees the meta-train assay labels, as GS-Meta does, so it
    is compared with GS-Meta alone; the others are compared with every anchor of their
    collection (GS-Meta included: it is the number a user would quote).
    """
    return {
        key: values
        for key, values in ANCHORS.items()
        if key[0] == entry.collection and (not entry.aux_labels or key[1] in LABEL_ANCHORS)
    }


def _verdicts(summary: pd.DataFrame, entry: MoleculeCollection, shots: Sequence[int]) -> list[str]:
    lines = []
    for k in shots:
        best = _best(summary, entry.folder, k)
        if best is None:
            continue
        method, ours = best
        for (_, name, paper), values in _compared_anchors(entry).items():
            if k not in values:
                continue
            diff = ours - values[k]
            word = "above" if diff > 0 else "below"
            lines.append(
                f"- K = {k}: our best {_features_words(entry)}, {method} at {ours:.1f}, is "
                f"{abs(diff):.1f} points {word} {name} ({values[k]:.2f}, {paper})."
            )
    return lines


def _fingerprint_sections(sections: Sequence[_Section], collection: str) -> list[_Section]:
    """The finished literature-split sections of ``collection`` without the label inputs."""
    return [
        s
        for s in sections
        if s.entry.collection == collection
        and s.entry.split == "literature"
        and not s.entry.aux_labels
        and len(s.results)
    ]


def _best_of(
    sections: Sequence[_Section], summary: pd.DataFrame, k: int
) -> tuple[_Section, str, float] | None:
    """The best (section, method, ROC-AUC %) at ``k`` over ``sections``, by mean."""
    found = [
        (section, *best)
        for section in sections
        if (best := _best(summary, section.entry.folder, k)) is not None
    ]
    return max(found, key=lambda item: item[2]) if found else None


def _tox21_goal_line(sections: Sequence[_Section], summary: pd.DataFrame) -> list[str]:
    """The issue's goal, Tox21 10-shot ROC-AUC >= 80 with fingerprints, met or missed by how much."""
    best = _best_of(_fingerprint_sections(sections, "tox21"), summary, 10)
    if best is None:
        return []
    section, method, ours = best
    gap = ours - TOX21_GOAL
    verdict = f"met, by {gap:.1f} points" if gap >= 0 else f"missed by {-gap:.1f} points"
    return [
        f"**Goal (Tox21 10-shot ROC-AUC >= {TOX21_GOAL:.0f} with fingerprints): {verdict}.** "
        f"The best 10-shot mean on the literature split without the meta-train assay labels "
        f"is {method} at {ours:.1f}, {_features_words(section.entry)} (section "
        f'"{section.entry.title}").',
        "",
    ]


def _fingerprints_against_graphs(sections: Sequence[_Section], summary: pd.DataFrame) -> list[str]:
    """Where fingerprints win and lose against the graph-network anchors, one line per K."""
    lines = []
    for collection in dict.fromkeys(s.entry.collection for s in sections):
        own = _fingerprint_sections(sections, collection)
        anchors = {
            key[1]: values
            for key, values in ANCHORS.items()
            if key[0] == collection and key[1] not in LABEL_ANCHORS
        }
        for k in sorted({k for values in anchors.values() for k in values}):
            best = _best_of(own, summary, k)
            if best is None:
                continue
            section, method, ours = best
            above = [f"{n} {v[k]:.2f}" for n, v in anchors.items() if k in v and ours > v[k]]
            below = [f"{n} {v[k]:.2f}" for n, v in anchors.items() if k in v and ours <= v[k]]
            lines.append(
                f"- {collection}, K = {k}: our best, {method} at {ours:.1f} "
                f"{_features_words(section.entry)}, "
                + "; ".join(
                    part
                    for part in (
                        f"beats {', '.join(above)}" if above else "",
                        f"loses to {', '.join(below)}" if below else "",
                    )
                    if part
                )
                + "."
            )
    if not lines:
        return []
    return [
        "Fingerprints against the graph networks, plainly (our best mean on the literature "
        "split, fingerprints with or without descriptors, against each graph anchor without "
        "the meta-train assay labels):",
        "",
        *lines,
        "",
    ]


def _per_draw(results: pd.DataFrame, method: str, k: int) -> pd.Series:
    """ROC-AUC per draw (mean over the test assays), the unit the summary bootstraps."""
    cell = results[
        (results["method"] == method) & (results["k"] == k) & (results["metric"] == "roc_auc")
    ]
    return cell.groupby("draw")["value"].mean()


def _paired(results: pd.DataFrame, a: str, b: str, k: int, seed: int) -> str:
    """``a`` minus ``b`` in ROC-AUC points on the same episodes, with its 95 % CI and word."""
    diff = (_per_draw(results, a, k) - _per_draw(results, b, k)).dropna() * 100
    ci = bootstrap_ci(diff.to_numpy(), seed=seed, cell=("paired", a, b, k))
    word = "wins" if ci.low > 0 else "loses" if ci.high < 0 else "tie"
    return f"{ci.mean:+.1f} [{ci.low:+.1f}, {ci.high:+.1f}] {word}"


def _meta_learner_lines(
    section: _Section, methods: dict[str, str], shots: Sequence[int], seed: int
) -> list[str]:
    """Each meta-learner against pooled-finetune and the best support-only baseline, paired,
    led by one plain line per K for the best meta-learner."""
    results = section.results
    ran = set(results["method"]) if len(results) else set()
    meta = [m for m, name in methods.items() if name not in BASELINES and m in ran]
    pooled = [m for m, name in methods.items() if name == "pooled-finetune" and m in ran]
    local = [m for m, name in methods.items() if name in SUPPORT_ONLY and m in ran]
    if not meta or not (pooled or local):
        return []

    def best(candidates: list[str], k: int) -> str:
        return max(candidates, key=lambda m: _per_draw(results, m, k).mean())

    def references(k: int) -> list[str]:
        return [*pooled[:1], *([best(local, k)] if local else [])]

    lines = [
        "Meta-learners against the baselines: ROC-AUC difference in points on the same "
        "episodes, mean over draws [95 % CI over draws]; *wins* / *loses* where the interval "
        "excludes 0, *tie* otherwise. The best support-only baseline is chosen per K by its "
        "mean.",
        "",
    ]
    for k in shots:
        top = best(meta, k)
        lines.append(
            f"- K = {k}: the best meta-learner, {top} ({_per_draw(results, top, k).mean() * 100:.1f}), "
            + "; ".join(f"against {b}: {_paired(results, top, b, k, seed)}" for b in references(k))
            + "."
        )
    lines += [
        "",
        "| meta-learner | K | vs " + (pooled[0] if pooled else "-") + " | vs best support-only |",
        "|---|---|---|---|",
    ]
    for method in meta:
        for k in shots:
            against_pooled = _paired(results, method, pooled[0], k, seed) if pooled else "-"
            against_local = "-"
            if local:
                b = best(local, k)
                against_local = f"{_paired(results, method, b, k, seed)} ({b})"
            lines.append(f"| {method} | {k} | {against_pooled} | {against_local} |")
    return [*lines, ""]


def molecules_page(
    suite: MoleculeSuite,
    sections: Sequence[_Section],
    summary: pd.DataFrame,
    command: str,
) -> str:
    """The results page in Markdown: our numbers beside the anchors, verdicts and times."""
    fp = suite.fingerprints
    proto = suite.protocol
    shots = sorted(proto.shots)
    learners = suite.learners()
    methods = {m: learner.name for m, learner in learners.items()}
    finished = {s.entry.folder for s in sections if set(s.results.get("method", ())) >= set(methods)}
    pending = [e.title for e in suite.collections if e.folder not in finished]
    lines = [f"# {suite.title}", ""]
    if suite.intro:
        lines += [*suite.intro, ""]
    if pending:
        lines += [
            f"**Not finished in this run:** {', '.join(pending)} (rerun the command with "
            "`--resume` to continue; finished cells are not redone).",
            "",
        ]
    lines += [
        f"Regenerate: `{command}`",
        "",
        "Every number below comes from that command's run folders (`summary.csv`, "
        "`results.csv`, `config.json` per collection) except the **anchors**, which are "
        "quoted from the papers (graph neural networks, most with self-supervised "
        "pretraining; we did not run them).",
        "",
        f"- Features: {_features_text(fp)} (an entry with its own says so in its title).",
        f"- Episodes: support = K actives + K inactives (K = {', '.join(map(str, shots))}), query "
        f"= every other labelled molecule of the assay; {proto.draws} draws per (assay, K), seed "
        f"{proto.seed}. Meta-train assays capped at {proto.max_train_rows} molecules each "
        f"(drawn per class in proportion), {proto.val_rows_fraction:.0%} of them held out for "
        "early stopping.",
        "- Scores: ROC-AUC (%) per test assay, averaged over the test assays in each draw; "
        "mean over draws with a 95 % bootstrap interval over draws (which molecules were "
        "measured, on these test assays). delta-AUPRC = AUPRC minus the query set's active "
        "rate (0 = chance).",
        "- Splits: `literature` is Tox21 9 / 3 with SR-HSE, SR-MMP, SR-p53 held out; SIDER "
        "21 / 6; MUV 12 / 5; ToxCast the first 450 / last 167 endpoints in the file's column "
        "order. `provider:<P>` holds out every ToxCast endpoint of assay provider P. "
        "`validation` uses the literature's meta-train assays only, the last as many of them "
        "as the literature tests on held out (Tox21: 6 / 3, validating on NR-PPAR-gamma, "
        "SR-ARE, SR-ATAD5): features and settings are chosen there, never on the test assays.",
        "- Methods: " + ", ".join(f"`{m}`" for m in methods) + (
            "; settings overridden for every method that has them: "
            + ", ".join(f"{k} = {v}" for k, v in suite.overrides.items())
            if suite.overrides
            else "; every learner at its default settings"
        )
        + " (config.json lists each method's hyperparameters).",
        "",
    ]
    lines += _tox21_goal_line(sections, summary)
    lines += _fingerprints_against_graphs(sections, summary)
    for section in sections:
        lines += _section_lines(section, summary, list(methods), methods, shots, proto.seed)
    lines += [
        f"FS-Mol's ProtoNet reaches delta-AUPRC {FSMOL_PROTONET_DELTA_AUPRC} with 16 support "
        "molecules (Stanley et al. 2021): a different dataset (ChEMBL assays, unbalanced "
        "supports), so it is a scale for delta-AUPRC, not a comparison.",
        "",
        "## Times (seconds, this machine)",
        "",
        "Meta-train and adapt + score times are those of the run that computed each cell "
        "(a resumed run reads them from the records); the total is their sum with this run's "
        "load, featurise (from the fingerprint cache where the row says so) and task-building "
        "times.",
        "",
        "| collection | step | seconds |",
        "|---|---|---|",
    ]
    for section in sections:
        for row in section.timings:
            lines.append(f"| {row['collection']} | {row['step']} | {row['seconds']:.1f} |")
        lines.append(f"| {section.entry.folder} | **total** | **{section.seconds:.1f}** |")
    lines.append("")
    for section in sections:
        if section.entry.collection == "toxcast" and finished >= {section.entry.folder}:
            total = section.seconds
            gap = total - TOXCAST_GOAL_SECONDS
            verdict = (
                f"within the goal by {-gap:.0f} s" if gap <= 0 else f"the goal missed by {gap:.0f} s"
            )
            slowest = max(section.timings, key=lambda row: row["seconds"])
            n_assays = len(section.config["train_assays"]) + len(section.config["test_assays"])
            lines.append(
                f"- {section.entry.title}: all {n_assays} endpoints loaded, featurised, cut "
                f"into tasks, meta-trained and scored for every method in {total:.0f} s on one thread "
                f"against the issue's {TOXCAST_GOAL_SECONDS // 60} minutes on 2 cores: "
                f"{verdict}; the longest step is {slowest['step']} ({slowest['seconds']:.0f} s)."
            )
    if any(s.entry.collection == "toxcast" for s in sections):
        lines += [
            "",
            "These are wall-clock seconds of steps run on a machine shared with other jobs, "
            "so they are upper bounds of a quiet run.",
            "",
        ]
    return "\n".join(lines)


def _section_lines(
    section: _Section,
    summary: pd.DataFrame,
    method_ids: list[str],
    methods: dict[str, str],
    shots: Sequence[int],
    seed: int,
) -> list[str]:
    cfg = section.config
    clean = cfg["cleaning"]
    folder = section.entry.folder
    counts = cfg["test_assay_counts"]
    rates = [a / n for a, n in counts.values()]
    test = list(cfg["test_assays"])
    lines = [
        f"## {section.entry.title}",
        "",
        f"{cfg['n_molecules']:,} molecules ({clean.get('unparsable', 0)} unparsable SMILES "
        f"dropped, {clean.get('conflicts', 0)} conflicting cells dropped); "
        f"{len(cfg['train_assays'])} meta-train assays, {len(test)} test assays: "
        f"{', '.join(test[:8])}" + (" ..." if len(test) > 8 else "") + ". Test assays "
        f"hold {min(a for a, _ in counts.values())} to {max(a for a, _ in counts.values())} "
        f"actives each (active rate {min(rates):.2%} to {max(rates):.2%}); every episode's "
        "support holds exactly K of each class"
        + (f"; {section.entry.draws} draws per (assay, K)" if section.entry.draws else "")
        + (
            f"; meta-train assays capped at {section.entry.max_train_rows} molecules each"
            if section.entry.max_train_rows
            else ""
        )
        + ".",
        "",
        *_method_table(summary, folder, method_ids, shots, "roc_auc", "ROC-AUC (%)"),
    ]
    if section.entry.split == "literature":
        for (_, name, paper), values in _compared_anchors(section.entry).items():
            cells = [f"{values[k]:.2f}" if k in values else "-" for k in shots]
            lines.append(f"| *anchor: {name}, {paper}* | " + " | ".join(cells) + " |")
    lines += [
        "",
        *_method_table(summary, folder, method_ids, shots, "delta_auprc", "delta-AUPRC"),
        "",
        *_meta_learner_lines(section, methods, shots, seed),
    ]
    if section.entry.split == "literature":
        verdicts = _verdicts(summary, section.entry, shots)
        lines += ["Against the anchors:", "", *(verdicts or ["- no anchor at these K."]), ""]
    if section.entry.notes:
        lines += [*section.entry.notes, ""]
    return lines
