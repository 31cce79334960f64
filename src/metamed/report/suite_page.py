"""The Markdown results page of a benchmark suite run over several datasets.

A suite (e.g. ``metamed benchmark --suite rare-conditions``) runs one benchmark per
dataset; this module only words what those runs measured: for each dataset its split
(counts and the rule), time and peak memory, each method's mean [95% CI] per K for the
page's metrics, and the paired verdicts against the best baseline.  Numbers come from the
results tables handed in; fixed text (anchors from the literature) is passed in by the
caller and printed as quoted, never computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metamed.evaluation.bootstrap import bootstrap_ci
from metamed.evaluation.guard_record import guard_breaches, guard_record
from metamed.evaluation.metrics import IWPC_TOLERANCE, get_metric
from metamed.evaluation.protocol import empty_decisions
from metamed.report.markdown import summary_markdown
from metamed.report.verdicts import judged

__all__ = [
    "GUARD_GOAL", "SuiteSection", "goal_sentence", "guard_goal_lines", "guard_verdicts",
    "suite_markdown", "threshold_accuracy", "within_tolerance",
]  # fmt: skip

#: FLamby's accuracy: a patient is predicted positive when P(y = 1) >= 0.5.
ACCURACY_THRESHOLD = 0.5


@dataclass(frozen=True)
class SuiteSection:
    """What one dataset's run of a suite measured."""

    title: str
    results: pd.DataFrame
    baselines: Sequence[str]
    #: the split rule and counts, printed as given (e.g. ``RareSplit.to_dict()``)
    split: Mapping[str, Any]
    seconds: float
    peak_memory_mib: float
    #: where the run's files are, relative to the suite's folder
    folder: str
    notes: Sequence[str] = field(default_factory=tuple)
    #: the guard methods' decisions (``decisions.csv``); empty when no guard ran
    decisions: pd.DataFrame = field(default_factory=empty_decisions)
    #: the guard methods (their own record; not judged as meta-learners)
    guards: Sequence[str] = field(default_factory=tuple)
    #: :func:`threshold_accuracy` of the run's predictions, where the page quotes accuracy
    accuracy: pd.DataFrame | None = None
    #: :func:`within_tolerance` of the run's predictions (a numeric outcome: IWPC's dose)
    within: pd.DataFrame | None = None
    #: the tolerance of ``within`` (0.2: within 20 % of the observed value)
    tolerance: float = IWPC_TOLERANCE
    #: the run's HTML report, as the page links it (relative to the page)
    report: str | None = None
    #: wall and CPU time and the load, summed over resumed invocations
    #: (``metamed.runs.timing.RunCost.describe``); None: ``seconds`` alone
    cost: str | None = None

    @property
    def held_out(self) -> str:
        """What one held-out task is, in the page's words."""
        return "held-out site" if self.split.get("kind") == "sites" else "rare cohort"

    @property
    def meta_learners(self) -> list[str]:
        """Methods judged against the best baseline: neither baselines nor guards."""
        methods = [str(m) for m in dict.fromkeys(self.results["method"])]
        return [m for m in methods if m not in self.baselines and m.split("+")[0] not in self.guards]


def threshold_accuracy(predictions: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Accuracy at P(y = 1) >= 0.5, FLamby's way: per held-out site, then the mean over sites.

    Each site's accuracy is averaged over its draws first (FLamby scores each test
    site's whole set once; here each draw's query set is the site minus its support),
    and the interval is the bootstrap over sites.  Columns ``method, k, mean, ci_low,
    ci_high, n_tasks``.
    """
    hit = (predictions["y_pred"] >= ACCURACY_THRESHOLD) == (predictions["y_true"] >= 0.5)
    return _share_per_site(predictions.assign(hit=hit), "accuracy", seed)


def within_tolerance(
    predictions: pd.DataFrame, tolerance: float = IWPC_TOLERANCE, seed: int = 0
) -> pd.DataFrame:
    """Share of patients whose prediction is within ``tolerance`` of the observed value
    (:func:`~metamed.evaluation.metrics.within_share`; the IWPC's accuracy at 0.2), per
    held-out site and then over sites, as :func:`threshold_accuracy`."""
    hit = (predictions["y_pred"] - predictions["y_true"]).abs() <= tolerance * predictions[
        "y_true"
    ]
    return _share_per_site(predictions.assign(hit=hit), f"within@{tolerance:g}", seed)


def _share_per_site(predictions: pd.DataFrame, name: str, seed: int) -> pd.DataFrame:
    """Mean of the 0/1 column ``hit`` per episode, per site (over its draws), then over
    sites with a bootstrap interval; methods in the order they ran."""
    episode = predictions.groupby(["method", "k", "task", "draw"], sort=False)["hit"].mean()
    per_site = episode.groupby(["method", "k", "task"], sort=False).mean()
    rows = []
    for (method, k), values in per_site.groupby(["method", "k"], sort=False):
        ci = bootstrap_ci(values.to_numpy(), seed=seed, cell=(name, method, k))
        rows.append({"method": method, "k": int(np.asarray(k)), "mean": ci.mean,
                     "ci_low": ci.low, "ci_high": ci.high, "n_tasks": ci.n_tasks})  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "k", "mean", "ci_low", "ci_high", "n_tasks"])


def goal_sentence(
    sections: Sequence[SuiteSection], metric: str, k: int, numeric_metric: str = "rmse"
) -> str:
    """Whether some meta-learner beats the best baseline at ``k`` with a CI excluding 0:
    in ``metric`` on a binary outcome, in ``numeric_metric`` on a numeric one."""
    wins: list[str] = []
    labels: list[str] = []
    for section in sections:
        methods = section.meta_learners
        baselines = [b for b in section.baselines if b in set(section.results["method"])]
        present = set(section.results["metric"])
        chosen = metric if metric in present else numeric_metric
        if not methods or not baselines or chosen not in present:
            continue
        label = get_metric(chosen).label
        table = judged(section.results, methods, baselines, chosen)
        table = table[table["k"] == k]
        if len(table) and label not in labels:
            labels.append(label)
        for row in table.to_dict("records"):
            if row["judgement"] in ("better", "leaning better"):
                wins.append(
                    f"{row['method']} on {section.title} ({row['difference']:+.3f} {label} vs "
                    f"{row['baseline']}, 95% CI [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}])"
                )
    if not labels:
        return f"No meta-learner was compared with a baseline at K={k}."
    binary, numeric = get_metric(metric).label, get_metric(numeric_metric).label
    said = (
        f"{binary} on a binary outcome, {numeric} on a numeric one"
        if set(labels) == {binary, numeric}
        else ", ".join(labels)
    )
    if not wins:
        return (
            f"**No meta-learner beats the best baseline at K={k} on any dataset** "
            f"({said}, paired on the same episodes: no meta-learner's 95% CI of the difference "
            "excludes 0 in the meta-learner's favour)."
        )
    return (
        f"At K={k} a meta-learner beats the best baseline ({said}, 95% CI excluding 0): "
        + "; ".join(wins)
        + "."
    )


def _skipped_words(counts: Mapping[str, int]) -> str:
    return ", ".join(
        f"{n} {key.removeprefix('skipped_').replace('_', ' ')}"
        for key, n in counts.items()
        if key.startswith("skipped_")
    )


def _site_split_lines(split: Mapping[str, Any]) -> list[str]:
    counts, rule = split.get("counts", {}), split.get("rule", {})
    k_max = max(split.get("shots", [0]))
    held = (
        "each held out in turn (leave-one-site-out)"
        if not rule.get("folds")
        else f"held out in {rule['folds']} seeded groups"
    )
    lines = [
        f"Rule: a site is evaluated when it has at least max(K) + {rule.get('min_query')} = "
        f"{k_max + int(rule.get('min_query', 0))} patients and {rule.get('min_per_class')} of "
        f"each class; evaluated sites are {held}, every other site meta-trains."
    ]
    if rule.get("part_col"):
        lines.append(
            f"Meta-training uses the rows with {rule['part_col']} = {rule['train_part']} of "
            f"the other sites; a held-out site is scored on its {rule['part_col']} = "
            f"{rule['test_part']} rows (an independent cohort)."
        )
    skipped = _skipped_words(counts)
    lines.append(
        f"Sites: {counts.get('evaluated', 0)} evaluated in {counts.get('splits', 0)} splits, "
        f"{counts.get('skipped', 0)} not evaluated{f' ({skipped})' if skipped else ''}; the "
        "run folder's config.json lists each with its reason."
    )
    return lines


def _split_lines(split: Mapping[str, Any]) -> list[str]:
    if split.get("kind") == "sites":
        return _site_split_lines(split)
    counts = split.get("counts", {})
    rule = split.get("rule", {})
    lines = []
    if rule:
        lines.append(
            "Rule: common (meta-train / meta-val) = at least "
            f"{rule.get('n_common')} patients; rare (meta-test) = fewer, with at least "
            f"max(K) + {rule.get('min_query')} patients and {rule.get('min_per_class')} of each "
            f"class; {rule.get('val_fraction', 0):.0%} of the common cohorts are meta-val."
        )
    if counts:
        skipped = _skipped_words(counts)
        lines.append(
            f"Cohorts: {counts.get('common_train', 0)} meta-train, {counts.get('common_val', 0)} "
            f"meta-val, {counts.get('rare_test', 0)} rare meta-test, {counts.get('skipped', 0)} "
            f"skipped{f' ({skipped})' if skipped else ''}."
        )
    return lines


def suite_markdown(
    title: str,
    command: str,
    sections: Sequence[SuiteSection],
    *,
    intro: Sequence[str] = (),
    metrics: Sequence[str] = ("auroc", "auprc", "brier", "ece", "calibration_slope"),
    verdict_metrics: Sequence[str] = ("auroc", "auprc", "brier"),
    goal_k: int | None = None,
    numeric_metrics: Sequence[str] = ("rmse", "mae", "r2"),
    numeric_verdict_metrics: Sequence[str] = ("rmse", "mae"),
    pending: Sequence[str] = (),
) -> str:
    """The whole page: title, the regenerating command, ``intro`` lines, goal, sections.

    Each section has the mean [95% CI over held-out tasks] of every metric in ``metrics``
    (``numeric_metrics`` for a numeric outcome) per method and K, each meta-learner's
    paired comparison with the best baseline (chosen per K) for every metric in
    ``verdict_metrics`` (``numeric_verdict_metrics``), with ``goal_k`` a plain sentence
    per section on whether any meta-learner beat the best baseline at ``goal_k`` or
    above, the guard's record where a guard ran, and accuracy where it was asked for.
    ``pending`` names the datasets of the suite not run (yet): a page written while the
    suite runs, or after it was stopped, says so at the top.
    """
    parts = [f"# {title}", "", "Regenerated by:", "", "```bash", command, "```", ""]
    if pending:
        parts += [
            f"**Incomplete: {len(pending)} of {len(sections) + len(pending)} datasets have no "
            "results on this page** (the run had not reached them; the same command with "
            f"`--resume` continues it): {'; '.join(pending)}.",
            "",
        ]
    parts += [*intro, ""] if intro else []
    if goal_k is not None:
        goal = goal_sentence(sections, metrics[0], goal_k, numeric_metrics[0])
        parts += ["## Goal", "", goal, ""]
        records = {
            s.title: _guard_record(s.decisions, _judged_metrics(s, verdict_metrics,
                                                                numeric_verdict_metrics))
            for s in sections if len(s.decisions)
        }  # fmt: skip
        if records:
            parts += guard_goal_lines(records)
    for section in sections:
        parts += [f"## {section.title}", ""]
        parts += [f"- {line}" for line in _split_lines(section.split)]
        ks = ", ".join(str(k) for k in sorted(section.results["k"].unique()))
        draws = section.results["draw"].nunique()
        parts += [f"- K = {ks}; {draws} support draws per {section.held_out} and K."]
        report = f"; [HTML report]({section.report})" if section.report else ""
        cost = section.cost or f"{section.seconds:.0f} s"
        parts += [
            f"- Time: {cost}, meta-training and scoring every method; peak "
            f"resident memory of the run so far: {section.peak_memory_mib:.0f} MiB.",
            f"- Files: `{section.folder}/` (results, predictions, config, report.html){report}.",
        ]
        parts += [f"- {note}" for note in section.notes]
        parts += [""]
        shown = metrics if _is_binary(section, metrics) else numeric_metrics
        judged_metrics = _judged_metrics(section, verdict_metrics, numeric_verdict_metrics)
        present = [m for m in shown if m in set(section.results["metric"])]
        parts += [summary_markdown(section.results, [], present)]  # the tables
        methods = [str(m) for m in dict.fromkeys(section.results["method"])]
        others = section.meta_learners
        baselines = [b for b in section.baselines if b in methods]
        tables = {
            metric: judged(section.results, others, baselines, metric)
            for metric in ([m for m in judged_metrics if m in present] if others and baselines else [])
        }
        if goal_k is not None and tables:
            parts += [_section_goal(tables, goal_k), ""]
        for metric, table in tables.items():
            label = get_metric(metric).label
            parts += [f"**Paired against the best baseline at each K ({label})**", ""]
            parts += _winner_table(table, metric)
            parts += [f"- {sentence}" for sentence in table["sentence"]] + [""]
        if len(section.decisions):
            parts += _guard_lines(section.decisions, judged_metrics)
        if section.accuracy is not None:
            parts += _share_lines(
                section.accuracy,
                "**Accuracy, FLamby's way** (P >= 0.5 counts as positive; accuracy per "
                "held-out site, mean over sites [95% CI])",
            )
        if section.within is not None:
            parts += _share_lines(
                section.within,
                f"**Share of patients predicted within {section.tolerance:.0%} of the observed "
                "value** (the IWPC's accuracy for a warfarin dose; higher is better; share per "
                "held-out site, mean over sites [95% CI])",
            )
    return "\n".join(parts).rstrip() + "\n"


def _is_binary(section: SuiteSection, metrics: Sequence[str]) -> bool:
    """Whether the section's results have a binary outcome's metrics."""
    return any(m in set(section.results["metric"]) for m in metrics)


def _judged_metrics(
    section: SuiteSection, verdict_metrics: Sequence[str], numeric_verdict_metrics: Sequence[str]
) -> Sequence[str]:
    """The metrics a section's verdicts (and its guard's record) are given in."""
    return verdict_metrics if _is_binary(section, verdict_metrics) else numeric_verdict_metrics


def _section_goal(tables: Mapping[str, pd.DataFrame], goal_k: int) -> str:
    """Did any meta-learner beat the best baseline at K >= ``goal_k``, CI excluding 0?"""
    wins = []
    ks = sorted({int(k) for t in tables.values() for k in t["k"] if int(k) >= goal_k})
    for metric, table in tables.items():
        label = get_metric(metric).label
        for row in table[table["k"] >= goal_k].to_dict("records"):
            if row["judgement"] in ("better", "leaning better"):
                wins.append(
                    f"{row['method']} at K={row['k']} in {label} ({row['difference']:+.3f} vs "
                    f"{row['baseline']}, 95% CI [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}])"
                )
    at = ", ".join(f"K={k}" for k in ks) or f"K >= {goal_k}"
    if wins:
        return f"**A meta-learner beats the best baseline at {at}**: " + "; ".join(wins) + "."
    return (
        f"**No meta-learner beats the best baseline at {at}** in "
        f"{', '.join(get_metric(m).label for m in tables)} (no 95% CI of the paired "
        "difference excludes 0 in the meta-learner's favour)."
    )


def _winner_table(table: pd.DataFrame, metric: str) -> list[str]:
    """Per K: the best baseline, the best meta-learner against it, and the verdict."""
    scorer = get_metric(metric)
    lines = [
        "| K | best baseline (mean) | best meta-learner (mean) | difference [95% CI] | verdict |",
        "|---:|---|---|---|---|",
    ]
    for k, rows in table.groupby("k", sort=True):
        best = min(rows.to_dict("records"), key=lambda r: scorer.loss(r["mean_method"]))
        lines.append(
            f"| {k} | {best['baseline']} ({best['mean_baseline']:.3f}) | {best['method']} "
            f"({best['mean_method']:.3f}) | {best['difference']:+.3f} [{best['ci_low']:+.3f}, "
            f"{best['ci_high']:+.3f}] | {best['judgement']} |"
        )
    return [*lines, ""]


def _guard_record(decisions: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    record = guard_record(decisions)
    return record[record["metric"].isin(metrics)]


#: The guard's goal (issue 15), as the page states it.
GUARD_GOAL = (
    "never worse than the better of always adapting and never adapting beyond its 95% CI, "
    "on any dataset (the better of the two scores at least as well as each, so the goal is "
    "missed wherever the guard's gain over either one has a 95% CI wholly below 0)"
)


def guard_verdicts(record: pd.DataFrame) -> dict[str, str]:
    """Per guard method of one dataset's record: whether it meets :data:`GUARD_GOAL`,
    and if not at which K and metric, against which option and by how much."""
    breaches = guard_breaches(record)
    verdicts = {}
    for method, rows in record.groupby("method", sort=False):
        cells = f"{len(rows)} (K, metric) cells over {int(rows['n_tasks'].max())} held-out sites"
        missed = breaches[breaches["method"] == method]
        if not np.isfinite(rows[["saved_vs_pooled_high", "saved_vs_adapted_high"]]).any(axis=None):
            verdicts[str(method)] = f"cannot be judged ({cells}: no interval)"
            continue
        if not len(missed):
            verdicts[str(method)] = f"meets it ({cells})"
            continue
        where = "; ".join(
            f"K={b['k']} {get_metric(b['metric']).label} {_exact(b['saved'])} "
            f"[{_exact(b['low'])}, {_exact(b['high'])}] vs "
            f"{'always' if b['against'] == 'adapted' else 'never'} adapting"
            for b in missed.to_dict("records")
        )
        n_cells = len(missed[["k", "metric"]].drop_duplicates())
        verdicts[str(method)] = f"misses it in {n_cells} of {cells}: {where}"
    return verdicts


def _exact(value: float) -> str:
    """A signed gain to 3 decimals, or to one significant digit where 3 would show 0."""
    if value != 0 and abs(value) < 0.0005:
        return f"{value:+.1g}"
    return f"{value:+.3f}"


def guard_goal_lines(records: Mapping[str, pd.DataFrame]) -> list[str]:
    """The Goal section's guard table: per dataset (title -> its guard record) and guard,
    whether the guard meets :data:`GUARD_GOAL`."""
    verdicts = {title: guard_verdicts(record) for title, record in records.items()}
    pairs = [(t, m, v) for t, by_method in verdicts.items() for m, v in by_method.items()]
    met = sum(v.startswith("meets") for _, _, v in pairs)
    lines = [
        f"**The adapt-or-not guard's goal**: {GUARD_GOAL}. Met in {met} of {len(pairs)} "
        "(dataset, guard) pairs; judged in the metrics of each dataset's verdicts, at every K.",
        "",
        "| dataset | guard | goal |",
        "|---|---|---|",
    ]
    lines += [f"| {title} | {method} | {verdict} |" for title, method, verdict in pairs]
    return [*lines, ""]


def _guard_lines(decisions: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """The guard's record: what it served, how often rightly, what it saved or cost."""
    record = _guard_record(decisions, metrics)
    lines = [
        "**The adapt-or-not guard's record** (per episode it served the pooled model, a "
        "blend or the adapted one, decided on the support set alone; *right* = what it served "
        "scored at least as well on the query as the better of always and never adapting; "
        "*saved* = its gain over each, positive = the guard did better, mean over held-out "
        "sites [95% CI])",
        "",
        "| guard | metric | K | pooled / blend / adapted | right | saved vs always adapting "
        "| saved vs never adapting |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for row in record.to_dict("records"):
        lines.append(
            f"| {row['method']} | {get_metric(row['metric']).label} | {row['k']} | "
            f"{row['share_pooled']:.0%} / {row['share_blend']:.0%} / {row['share_adapted']:.0%} "
            f"| {row['share_right']:.0%} | {_ci(row, 'saved_vs_adapted')} | "
            f"{_ci(row, 'saved_vs_pooled')} |"
        )
    lines += [""]
    lines += [
        f"- The guard's goal (never worse than the better of always and never adapting "
        f"beyond its 95% CI): {method} {verdict}."
        for method, verdict in guard_verdicts(record).items()
    ]
    return [*lines, ""]


def _ci(row: Mapping[Any, Any], key: str) -> str:
    low, high = row[f"{key}_low"], row[f"{key}_high"]
    interval = "" if np.isnan(low) else f" [{low:+.3f}, {high:+.3f}]"
    return f"{row[key]:+.3f}{interval}"


def _share_lines(accuracy: pd.DataFrame, heading: str) -> list[str]:
    lines = [
        heading,
        "",
        "| method | " + " | ".join(f"K={k}" for k in sorted(accuracy["k"].unique())) + " |",
        "|---|" + "---:|" * accuracy["k"].nunique(),
    ]
    for method, rows in accuracy.groupby("method", sort=False):
        by_k = {r["k"]: r for r in rows.to_dict("records")}
        cells = [
            f"{by_k[k]['mean']:.3f} [{by_k[k]['ci_low']:.3f}, {by_k[k]['ci_high']:.3f}]"
            if k in by_k
            else "-"
            for k in sorted(accuracy["k"].unique())
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, ""]
