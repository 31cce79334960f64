"""The molecules suite: MoleculeNet few-shot benchmark -> run folder and a results page.

``metamed benchmark --suite molecules`` loads each collection, featurises its molecules
(RDKit fingerprints, cached), runs the few-shot protocol
(:mod:`metamed.evaluation.molecules`) for every method, and writes ``results.csv``,
``summary.csv``, ``config.json`` and ``molecules.md`` (our numbers beside the published
anchors under the same split, with times) to the run folder; ``--page`` copies the page
to e.g. ``docs/results/molecules.md``.  Every number on the page comes from this run
except the anchors, which are quoted from the papers and labelled so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from metamed.data.cohort import Cohort
from metamed.data.datasets.moleculenet import molecules_of
from metamed.data.molecules import FingerprintSettings, featurise
from metamed.errors import MetamedValueError
from metamed.evaluation.molecules import (
    LITERATURE_SPLITS,
    MoleculeProtocolConfig,
    assay_split,
    run_molecule_protocol,
    summarise_molecules,
)
from metamed.outputs import check_output_place, staged_output
from metamed.runs.benchmark import make_methods

__all__ = [
    "ANCHORS",
    "MOLECULE_METHODS",
    "MoleculeSuite",
    "SuiteOutputs",
    "molecules_page",
    "run_molecule_suite",
]

#: The suite's methods: meta-learners on fingerprints, pooled multi-task + fine-tune, and
#: the support-only baselines.
MOLECULE_METHODS: tuple[str, ...] = (
    "protonet", "maml", "anil", "pooled-finetune", "local-rf", "local-knn", "local-logreg",
)  # fmt: skip

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
#: FS-Mol (a different dataset: ChEMBL assays, 16 support molecules, not balanced).
FSMOL_PROTONET_DELTA_AUPRC = 0.211

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MoleculeSuite:
    """What the suite runs."""

    collections: tuple[str, ...] = ("tox21", "sider")
    methods: tuple[str, ...] = MOLECULE_METHODS
    split: str = "literature"
    fingerprints: FingerprintSettings = field(default_factory=FingerprintSettings)
    protocol: MoleculeProtocolConfig = field(default_factory=MoleculeProtocolConfig)
    #: Learner settings that override the defaults where a learner has them.
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [c for c in self.collections if c not in LITERATURE_SPLITS]
        if unknown or not self.collections:
            raise MetamedValueError(
                f"Unknown collection(s) {', '.join(unknown) or '(none given)'}; the molecules "
                f"suite runs {', '.join(LITERATURE_SPLITS)}."
            )


@dataclass(frozen=True)
class SuiteOutputs:
    out_dir: Path
    summary: pd.DataFrame
    page: str


def run_molecule_suite(
    suite: MoleculeSuite,
    load: Callable[[str], Cohort],
    out: Path,
    cache_dir: Path | None = None,
    command: str = "metamed benchmark --suite molecules",
    progress: Progress | None = None,
    force: bool = False,
) -> SuiteOutputs:
    """Run ``suite`` and write its run folder.

    Parameters
    ----------
    load : callable
        ``load(collection) -> Cohort`` (``load_dataset("moleculenet", collection=...)``).
    out : Path
        Run folder, checked before any work (see :mod:`metamed.outputs`).
    command : str
        The command line that regenerates the run, printed on the page.
    """
    out = check_output_place(out, force=force)
    methods = make_methods(suite.methods, suite.protocol.seed, suite.overrides)
    results, timings, configs = [], [], {}
    for collection in suite.collections:
        start = time.perf_counter()
        cohort = load(collection)
        loaded = time.perf_counter() - start
        split = assay_split(cohort, collection, suite.split)
        start = time.perf_counter()
        features = featurise(molecules_of(cohort), suite.fingerprints, cache_dir)
        featurised = time.perf_counter() - start
        descriptors = (
            slice(suite.fingerprints.n_bits, None) if suite.fingerprints.descriptors else None
        )
        result = run_molecule_protocol(
            cohort, features.X, split, methods, suite.protocol, collection, descriptors, progress
        )
        results.append(result.results)
        cached = " (from cache)" if features.from_cache else " (computed, now cached)"
        timings += [
            {"collection": collection, "step": "load and clean", "seconds": loaded},
            {"collection": collection, "step": f"featurise{cached}", "seconds": featurised},
            *(
                {"collection": collection, "step": f"meta-train {m}", "seconds": s}
                for m, s in result.fit_seconds.items()
            ),
            *(
                {"collection": collection, "step": f"adapt + score {m}", "seconds": s}
                for m, s in result.adapt_seconds.items()
            ),
        ]
        configs[collection] = {
            **result.config,
            "cleaning": cohort.provenance.get("molecules", {}),
            "dataset": cohort.provenance.get("dataset"),
        }
    table = pd.concat(results, ignore_index=True)
    summary = summarise_molecules(table, seed=suite.protocol.seed)
    timing = pd.DataFrame(timings)
    page = molecules_page(summary, timing, suite, configs, command)
    config = {
        "suite": {
            "collections": list(suite.collections),
            "methods": list(suite.methods),
            "split": suite.split,
            "fingerprints": asdict(suite.fingerprints),
            "protocol": asdict(suite.protocol),
            "overrides": suite.overrides,
        },
        "collections": {
            c: {k: v for k, v in cfg.items() if k != "cleaning"}
            | {"cleaning": _short_cleaning(cfg["cleaning"])}
            for c, cfg in configs.items()
        },
        "timings": timing.to_dict(orient="records"),
        "command": command,
    }
    with staged_output(out) as staging:
        table.to_csv(staging / "results.csv", index=False)
        summary.to_csv(staging / "summary.csv", index=False)
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str))
        (staging / "molecules.md").write_text(page)
    return SuiteOutputs(out, summary, page)


def _short_cleaning(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("assays",)}



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


def _verdicts(summary: pd.DataFrame, collection: str, shots: Sequence[int]) -> list[str]:
    lines = []
    for k in shots:
        best = _best(summary, collection, k)
        if best is None:
            continue
        method, ours = best
        for (coll, name, paper), values in ANCHORS.items():
            if coll != collection or k not in values:
                continue
            diff = ours - values[k]
            word = "above" if diff > 0 else "below"
            lines.append(
                f"- K = {k}: our best on fingerprints, {method} at {ours:.1f}, is "
                f"{abs(diff):.1f} points {word} {name} ({values[k]:.2f}, {paper})."
            )
    return lines


def molecules_page(
    summary: pd.DataFrame,
    timing: pd.DataFrame,
    suite: MoleculeSuite,
    configs: dict[str, dict],
    command: str,
) -> str:
    """The results page in Markdown: our numbers beside the anchors, verdicts and times."""
    fp = suite.fingerprints
    proto = suite.protocol
    shots = sorted(proto.shots)
    kind = "counts" if fp.counts else "bits"
    lines = [
        "# Few-shot molecular property prediction on MoleculeNet",
        "",
        f"Regenerate: `{command}`",
        "",
        "Every number below comes from that command's run folder (`summary.csv`, "
        "`results.csv`, `config.json`) except the **anchors**, which are quoted from the "
        "papers (graph neural networks, most with self-supervised pretraining; we did not "
        "run them).",
        "",
        f"- Features: Morgan/ECFP fingerprints, radius {fp.radius}, {fp.n_bits} {kind}"
        + (
            ", plus 10 RDKit descriptors (standardised on meta-train molecules)"
            if fp.descriptors
            else ""
        )
        + ".",
        f"- Episodes: support = K actives + K inactives (K = {', '.join(map(str, shots))}), query "
        f"= every other labelled molecule of the assay; {proto.draws} draws per (assay, K), seed "
        f"{proto.seed}. Meta-train assays capped at {proto.max_train_rows} molecules each "
        f"(drawn per class in proportion), {proto.val_rows_fraction:.0%} of them held out for "
        "early stopping.",
        "- Scores: ROC-AUC (%) per test assay, averaged over the test assays in each draw; "
        "mean over draws with a 95 % bootstrap interval over draws (which molecules were "
        "measured, on these test assays). delta-AUPRC = AUPRC minus the query set's active "
        "rate (0 = chance).",
        f"- Split: `{suite.split}`"
        + (
            " (Tox21 9 / 3 with SR-HSE, SR-MMP, SR-p53 held out; SIDER 21 / 6; MUV 12 / 5; "
            "ToxCast the first 450 / last 167 endpoints in the file's column order)."
            if suite.split == "literature"
            else "."
        ),
        "",
    ]
    for collection in suite.collections:
        cfg = configs[collection]
        clean = cfg["cleaning"]
        lines += [
            f"## {collection}",
            "",
            f"{cfg['n_molecules']:,} molecules ({clean.get('unparsable', 0)} unparsable SMILES "
            f"dropped, {clean.get('conflicts', 0)} conflicting cells dropped); "
            f"{len(cfg['train_assays'])} meta-train assays, {len(cfg['test_assays'])} test "
            f"assays: {', '.join(cfg['test_assays'][:8])}"
            + (" ..." if len(cfg["test_assays"]) > 8 else "")
            + ".",
            "",
            *_method_table(summary, collection, suite.methods, shots, "roc_auc", "ROC-AUC (%)"),
        ]
        for (coll, name, paper), values in ANCHORS.items():
            if coll == collection:
                cells = [f"{values[k]:.2f}" if k in values else "-" for k in shots]
                lines.append(f"| *anchor: {name}, {paper}* | " + " | ".join(cells) + " |")
        lines += [
            "",
            *_method_table(
                summary, collection, suite.methods, shots, "delta_auprc", "delta-AUPRC"
            ),
        ]
        verdicts = _verdicts(summary, collection, shots)
        lines += ["", "Against the anchors:", "", *(verdicts or ["- no anchor at these K."]), ""]
    lines += [
        f"FS-Mol's ProtoNet reaches delta-AUPRC {FSMOL_PROTONET_DELTA_AUPRC} with 16 support "
        "molecules (Stanley et al. 2021): a different dataset (ChEMBL assays, unbalanced "
        "supports), so it is a scale for delta-AUPRC, not a comparison.",
        "",
        "## Times (seconds, this machine)",
        "",
    ]
    lines += ["| collection | step | seconds |", "|---|---|---|"]
    for _, row in timing.iterrows():
        lines.append(f"| {row['collection']} | {row['step']} | {row['seconds']:.1f} |")
    lines.append("")
    return "\n".join(lines)
