"""The MoleculeNet few-shot protocol (Meta-MGNN, PAR, GS-Meta, Pin-Tuning).

Fixed assay splits, stated as in the papers, in the column order of the MoleculeNet
files (:func:`~metamed.data.datasets.moleculenet.assay_names`):

* Tox21: meta-train on the first 9 assays, meta-test on SR-HSE, SR-MMP, SR-p53;
* SIDER: the first 21 side-effect classes / the last 6;
* MUV: the first 12 assays / the last 5;
* ToxCast ``literature``: the first 450 endpoints / the last 167 (the papers' 450 / 167,
  taken in the file's column order: their code's exact endpoint list is not part of the
  data here, so this is that split's *size*, not a verified copy of its members);
  ``provider:<P>``: every endpoint of assay provider ``P`` (``ATG``, ``NVS``, ``BSK``,
  ...) held out, all others meta-train, so no test endpoint shares a provider with
  training.
* ``validation`` (any collection): the literature's meta-train assays only, the last as
  many of them as the literature tests on held out as validation tasks (Tox21: meta-train
  on the first 6, validate on NR-PPAR-gamma, SR-ARE, SR-ATAD5).  The literature's test
  assays take no part, so features and settings chosen on it are chosen without them.

An episode of a meta-test assay is a support set of K actives and K inactives
(:func:`~metamed.tasks.sample_k_per_class`; K = 1, 5, 10) and a query set of *every
other* labelled molecule of the assay.  Scores per episode: ROC-AUC, and delta-AUPRC
(AUPRC minus the query set's active rate, FS-Mol's metric: 0 is chance whatever the hit
rate).  Episodes come from a generator seeded by (seed, assay, K, draw), so every
method sees the same support and query molecules.  The summary averages each draw over
the test assays (the papers' number) and gives a 95 % bootstrap interval over draws:
the spread from which molecules were measured, on these test assays (with three test
assays, as in Tox21, an interval over assays would mean little).

Meta-training sees only the meta-train assays' labels; the molecules themselves are
shared between assays (a Tox21 molecule is measured in most assays), as in the
literature.  Descriptor columns, when present, are standardised with statistics of the
meta-train assays' molecules only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort
from metamed.data.datasets.moleculenet import assay_names, molecules_of
from metamed.errors import MetamedValueError, did_you_mean
from metamed.evaluation.bootstrap import bootstrap_ci
from metamed.evaluation.metrics import auprc, auroc
from metamed.evaluation.protocol import MIN_VAL_ROWS, episode_rng
from metamed.learners.base import MetaLearner
from metamed.tasks import Task, TaskSet, TaskSplit, hold_out_rows, sample_k_per_class

__all__ = [
    "AssayTasks",
    "LITERATURE_SPLITS",
    "MoleculeProtocolConfig",
    "MoleculeResult",
    "MoleculeTasks",
    "assay_split",
    "delta_auprc",
    "molecule_task_split",
    "molecule_tasks",
    "run_molecule_protocol",
    "score_molecule_method",
    "summarise_molecules",
    "training_label_features",
]

#: Collection -> number of meta-train assays (the first ones); the rest are meta-test.
LITERATURE_SPLITS: dict[str, int] = {"tox21": 9, "sider": 21, "muv": 12, "toxcast": 450}

Progress = Callable[[str], None]


def delta_auprc(y: np.ndarray, p: np.ndarray) -> float:
    """AUPRC minus the active rate of ``y``: how far above chance (FS-Mol, Stanley et al. 2021)."""
    return float(auprc(y, p) - np.mean(y))


def assay_split(cohort: Cohort, collection: str, split: str = "literature") -> TaskSplit:
    """The fixed meta-train / meta-test assays of ``collection`` (see the module docstring).

    Parameters
    ----------
    cohort : Cohort
        A ``moleculenet`` cohort of that collection.
    collection : {"tox21", "sider", "muv", "toxcast"}
    split : str, default "literature"
        ``"literature"``, ``"validation"``, or for ToxCast ``"provider:<P>"``.
    """
    assays = assay_names(cohort)
    if collection not in LITERATURE_SPLITS:
        raise MetamedValueError(
            f"No few-shot split for collection '{collection}'."
            f"{did_you_mean(collection, LITERATURE_SPLITS)} Known: {', '.join(LITERATURE_SPLITS)}."
        )
    if split == "literature":
        n_train = LITERATURE_SPLITS[collection]
        if len(assays) <= n_train:
            raise MetamedValueError(
                f"{cohort.name}: the literature split trains on {n_train} assays, the cohort "
                f"has {len(assays)}; load the full '{collection}' collection."
            )
        return TaskSplit(train=tuple(assays[:n_train]), val=(), test=tuple(assays[n_train:]))
    if split == "validation":
        n_train = LITERATURE_SPLITS[collection]
        n_val = len(assays) - n_train
        if n_val < 1 or n_val >= n_train:
            raise MetamedValueError(
                f"{cohort.name}: the validation split holds out {n_val} of the literature's "
                f"{n_train} meta-train assays; load the full '{collection}' collection."
            )
        kept = assays[:n_train]
        return TaskSplit(
            train=tuple(kept[: n_train - n_val]), val=(), test=tuple(kept[n_train - n_val :])
        )
    if split.startswith("provider:") and collection == "toxcast":
        provider = split.split(":", 1)[1]
        providers = sorted({a.split("_", 1)[0] for a in assays})
        if provider not in providers:
            raise MetamedValueError(
                f"ToxCast has no assay provider '{provider}'.{did_you_mean(provider, providers)} "
                f"Providers: {', '.join(providers)}."
            )
        test = tuple(a for a in assays if a.split("_", 1)[0] == provider)
        train = tuple(a for a in assays if a not in set(test))
        return TaskSplit(train=train, val=(), test=test)
    hint = ", or provider:<P> (e.g. provider:ATG)" if collection == "toxcast" else ""
    raise MetamedValueError(
        f"Unknown split '{split}' for {collection}; use literature or validation{hint}."
    )


def molecule_tasks(
    taskset: TaskSet,
    names: Sequence[str],
    X: np.ndarray,
    molecule_row: dict[str, int],
    max_rows: int | None = None,
    rng: np.random.Generator | None = None,
) -> list[Task]:
    """One :class:`Task` per assay: the features of its labelled molecules and their labels.

    ``max_rows`` caps each task at that many rows, drawn per class in proportion (a
    seeded ``rng``), so that 450 ToxCast training assays fit in memory; None keeps all.
    """
    rows_of, labels_of = _assay_rows(taskset, names, molecule_row, max_rows, rng)
    return [
        Task(name, X[idx], y) for name, idx, y in zip(names, rows_of, labels_of, strict=True)
    ]


def _assay_rows(
    taskset: TaskSet,
    names: Sequence[str],
    molecule_row: dict[str, int],
    max_rows: int | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per assay: the feature-matrix rows of its labelled molecules and their labels."""
    frame = taskset.cohort.frame
    # The columns once, not once per assay: on ToxCast (617 assays, 1.2 million rows)
    # converting them per assay took 50 s of a 157 s run.
    labels = frame[taskset.cohort.schema.outcome].to_numpy(dtype=np.float32)
    all_smiles = frame["smiles"].to_numpy()
    rows_of, labels_of = [], []
    for name in names:
        rows = taskset.rows(name)
        if max_rows is not None and len(rows) > max_rows:
            if rng is None:
                raise MetamedValueError("molecule_tasks: max_rows needs an rng to sample rows.")
            y_all = labels[rows]
            keep = []
            for label in (0, 1):
                members = rows[y_all == label]
                n = max(1, int(round(max_rows * len(members) / len(rows))))
                keep.append(rng.choice(members, min(n, len(members)), replace=False))
            rows = np.sort(np.concatenate(keep))
        smiles = all_smiles[rows]
        rows_of.append(np.fromiter((molecule_row[s] for s in smiles), np.int64, len(rows)))
        labels_of.append(labels[rows])
    return rows_of, labels_of


class AssayTasks(Sequence[Task]):
    """Test assays as tasks built when asked for, one at a time, and not kept.

    ToxCast's last 167 endpoints hold up to about 8,000 measured molecules each; as
    float32 fingerprint rows all at once they took a run past 10 GB (and it was killed).
    Scoring needs one assay at a time, so each task is cut from the shared feature
    matrix when it is reached (milliseconds) and dropped after.
    """

    def __init__(
        self, names: Sequence[str], X: np.ndarray, rows: list[np.ndarray], y: list[np.ndarray]
    ) -> None:
        self.names, self._X, self._rows, self._y = list(names), X, rows, y

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int | slice) -> Any:  # one Task, or a list for a slice
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return Task(self.names[i], self._X[self._rows[i]], self._y[i])

    def labels(self) -> list[tuple[str, np.ndarray]]:
        """(name, labels) of every assay, without building the feature rows."""
        return list(zip(self.names, self._y, strict=True))


@dataclass(frozen=True)
class MoleculeProtocolConfig:
    """Support sizes (K per class), draws per (assay, K), seed, and the training-side caps."""

    shots: tuple[int, ...] = (1, 5, 10)
    draws: int = 20
    seed: int = 0
    #: Rows kept per meta-train assay (drawn per class in proportion); None keeps all.
    max_train_rows: int | None = 2048
    #: Share of each meta-train assay's rows held out for early stopping (the literature
    #: splits have no validation assays); 0 turns it off.
    val_rows_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not self.shots or any(int(k) < 1 for k in self.shots):
            raise MetamedValueError(f"shots must be positive integers, got {self.shots}.")
        if self.draws < 1:
            raise MetamedValueError(f"draws must be >= 1, got {self.draws}.")
        if self.max_train_rows is not None and self.max_train_rows < 10:
            raise MetamedValueError(f"max_train_rows must be >= 10, got {self.max_train_rows}.")


@dataclass
class MoleculeResult:
    """``results``: one row per (method, assay, k, draw, metric); timings in seconds."""

    results: pd.DataFrame
    fit_seconds: dict[str, float] = field(default_factory=dict)
    adapt_seconds: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def _check_test_assays(tasks: AssayTasks, shots: Sequence[int]) -> None:
    k = max(shots)
    for name, y in tasks.labels():
        n_active = int(y.sum())
        n_inactive = len(y) - n_active
        if min(n_active, n_inactive) < k + 1:
            raise MetamedValueError(
                f"Test assay '{name}' has {n_active} actives and {n_inactive} inactives; "
                f"K={k} per class needs {k + 1} of each. Use smaller --shots."
            )


@dataclass(frozen=True)
class MoleculeTasks:
    """One collection's tasks under a split: what every method meta-trains and is scored on."""

    train: list[Task]
    val: list[Task] | None
    #: built one assay at a time when read (:class:`AssayTasks`)
    test: AssayTasks
    #: the protocol, the assays and the number of molecules (for config.json and the page)
    config: dict


def training_label_features(cohort: Cohort, train_assays: Sequence[str]) -> np.ndarray:
    """Each molecule's labels on the meta-train assays, as GS-Meta's molecule-property graph.

    Two columns per meta-train assay, (active, inactive): an untested pair is (0, 0), so
    "not measured" is never read as "inactive".  Built from the ``train_assays`` rows
    only, so no test assay's label can reach a feature.  Rows follow
    :func:`~metamed.data.datasets.moleculenet.molecules_of` ``(cohort)``.
    """
    smiles = molecules_of(cohort)
    molecule_row = {s: i for i, s in enumerate(smiles)}
    column = {a: j for j, a in enumerate(train_assays)}
    frame = cohort.frame
    known = frame[frame["assay"].isin(column)]
    rows = known["smiles"].map(molecule_row).to_numpy(np.int64)
    cols = 2 * known["assay"].map(column).to_numpy(np.int64)
    label = known[cohort.schema.outcome].to_numpy(np.float32)
    out = np.zeros((len(smiles), 2 * len(train_assays)), dtype=np.float32)
    out[rows, cols + (label == 0)] = 1.0  # column 2j: active on assay j, 2j + 1: inactive
    return out


def _mask_own_assay(tasks: list[Task], train_assays: Sequence[str], first: int) -> list[Task]:
    """Blank each meta-train task's own assay in its label features (else the target is an input)."""
    out = []
    for task in tasks:
        j = first + 2 * list(train_assays).index(task.name)
        X = task.X.copy()
        X[:, j : j + 2] = 0.0
        out.append(Task(task.name, X, task.y))
    return out


def molecule_task_split(
    cohort: Cohort,
    X: np.ndarray,
    split: TaskSplit,
    config: MoleculeProtocolConfig,
    descriptor_columns: slice | None = None,
    aux_labels: bool = False,
    descriptor_scaling: str = "standard",
) -> MoleculeTasks:
    """The meta-train, early-stopping and test tasks of ``split``, checked for every K.

    Parameters
    ----------
    cohort : Cohort
        A ``moleculenet`` cohort.
    X : ndarray of shape (n_molecules, n_features)
        Features of :func:`~metamed.data.datasets.moleculenet.molecules_of` ``(cohort)``,
        row for row.
    split : TaskSplit
        From :func:`assay_split`.
    descriptor_columns : slice, optional
        Columns of ``X`` to scale with the meta-train molecules' statistics.
    aux_labels : bool, default False
        Append :func:`training_label_features` (the GS-Meta setting: more information
        than the fingerprints alone).  A meta-train task's own assay is blanked in them.
    descriptor_scaling : {"standard", "quantile"}, default "standard"
        How the descriptor columns are scaled: z-scores (:func:`standardise_columns`, for
        the ten well-behaved descriptors) or percentile ranks
        (:func:`quantile_scale_columns`, for all of RDKit's, some heavy-tailed, with
        missing values).
    """
    if descriptor_scaling not in ("standard", "quantile"):
        raise MetamedValueError(
            f"descriptor_scaling must be 'standard' or 'quantile', got {descriptor_scaling!r}."
        )
    smiles = molecules_of(cohort)
    if len(X) != len(smiles):
        raise MetamedValueError(
            f"X has {len(X)} rows but {cohort.name} has {len(smiles)} molecules; featurise "
            "molecules_of(cohort), in that order."
        )
    molecule_row = {s: i for i, s in enumerate(smiles)}
    taskset = TaskSet(cohort, "assay")
    if descriptor_columns is not None:
        from metamed.data.molecules import quantile_scale_columns, standardise_columns

        scale = quantile_scale_columns if descriptor_scaling == "quantile" else standardise_columns
        train_smiles = pd.unique(taskset.frames(list(split.train))["smiles"])
        fit_rows = np.array([molecule_row[s] for s in train_smiles])
        X = scale(X, descriptor_columns, fit_rows)
    first_aux = X.shape[1]
    if aux_labels:
        X = np.hstack([X, training_label_features(cohort, split.train)])
    test = AssayTasks(split.test, X, *_assay_rows(taskset, split.test, molecule_row))
    _check_test_assays(test, config.shots)
    train = molecule_tasks(
        taskset, split.train, X, molecule_row, config.max_train_rows,
        np.random.default_rng([config.seed, 2]),
    )  # fmt: skip
    if aux_labels:
        train = _mask_own_assay(train, split.train, first_aux)
    val: list[Task] | None = None
    if config.val_rows_fraction > 0:
        fit_part, val_part = hold_out_rows(
            train, config.val_rows_fraction, np.random.default_rng([config.seed, 1])
        )
        train = [
            fit if len(v) >= MIN_VAL_ROWS else whole
            for fit, v, whole in zip(fit_part, val_part, train, strict=True)
        ]
        val = [v for v in val_part if len(v) >= MIN_VAL_ROWS] or None
    run = {
        **asdict(config),
        "train_assays": list(split.train),
        "test_assays": list(split.test),
        "n_molecules": len(smiles),
        "aux_labels": aux_labels,
    }
    return MoleculeTasks(train, val, test, run)


def score_molecule_method(
    name: str,
    template: MetaLearner,
    tasks: MoleculeTasks,
    config: MoleculeProtocolConfig,
    dataset: str,
    progress: Progress | None = None,
) -> MoleculeResult:
    """Meta-train a clone of ``template`` on ``tasks.train``, score it on every episode.

    Episodes depend only on (seed, assay, K, draw), so each method, scored alone, sees the
    same support and query molecules as every other.
    """
    learner = template.clone()
    start = time.perf_counter()
    learner.meta_fit(tasks.train, val_tasks=tasks.val)
    fit_seconds = time.perf_counter() - start
    if progress is not None:
        progress(f"{dataset}: meta-trained {name} in {fit_seconds:.1f} s")
    start = time.perf_counter()
    rows: list[dict] = []
    for task in tasks.test:
        for k in config.shots:
            for draw in range(config.draws):
                support_idx, query_idx = sample_k_per_class(
                    task, k, episode_rng(config.seed, task.name, k, draw)
                )
                model = learner.adapt(task.subset(support_idx))
                query = task.subset(query_idx)
                p = model.predict_proba(query.X)  # type: ignore[attr-defined]
                for metric, value in (
                    ("roc_auc", auroc(query.y, p)),
                    ("delta_auprc", delta_auprc(query.y, p)),
                ):
                    rows.append(
                        {
                            "method": name,
                            "dataset": dataset,
                            "task": task.name,
                            "k": k,
                            "draw": draw,
                            "metric": metric,
                            "value": float(value),
                        }
                    )
    adapt_seconds = time.perf_counter() - start
    if progress is not None:
        progress(f"{dataset}: scored {name} in {adapt_seconds:.1f} s")
    return MoleculeResult(
        pd.DataFrame(rows), {name: fit_seconds}, {name: adapt_seconds}, tasks.config
    )


def run_molecule_protocol(
    cohort: Cohort,
    X: np.ndarray,
    split: TaskSplit,
    methods: dict[str, MetaLearner],
    config: MoleculeProtocolConfig,
    dataset: str,
    descriptor_columns: slice | None = None,
    progress: Progress | None = None,
) -> MoleculeResult:
    """Meta-train each method on ``split.train`` assays and score it on ``split.test``.

    :func:`molecule_task_split`, then :func:`score_molecule_method` per method (each
    ``methods`` learner, unfitted, is cloned).
    """
    if not methods:
        raise MetamedValueError("No methods to evaluate; pass at least one method name.")
    tasks = molecule_task_split(cohort, X, split, config, descriptor_columns)
    results = [
        score_molecule_method(name, template, tasks, config, dataset, progress)
        for name, template in methods.items()
    ]
    return MoleculeResult(
        pd.concat([r.results for r in results], ignore_index=True),
        {m: s for r in results for m, s in r.fit_seconds.items()},
        {m: s for r in results for m, s in r.adapt_seconds.items()},
        tasks.config,
    )


def summarise_molecules(results: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Mean over test assays per draw, then mean over draws with a 95 % bootstrap CI.

    Returns
    -------
    DataFrame
        ``dataset, method, k, metric, mean, ci_low, ci_high, n_draws, n_assays``.
    """
    out = []
    keys = ["dataset", "method", "k", "metric"]
    for key, cell in results.groupby(keys, sort=True):
        per_draw = cell.groupby("draw")["value"].mean()
        ci = bootstrap_ci(per_draw.to_numpy(), seed=seed, cell=("molecules", *key))
        out.append(
            {
                **dict(zip(keys, key, strict=True)),
                "mean": ci.mean,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "n_draws": ci.n_tasks,
                "n_assays": int(cell["task"].nunique()),
            }
        )
    return pd.DataFrame(out)
