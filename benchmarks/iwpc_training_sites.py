"""IWPC warfarin meta-trained on 5, 10 and 21 training sites: a section of docs/results/sites.md.

    python benchmarks/iwpc_training_sites.py --data-dir ../shared/data \\
        --out runs/iwpc-training-sites --page docs/results/sites.md

Runs the suite ``benchmarks/iwpc_training_sites.toml`` (each of the 22 IWPC project sites
held out in turn; the methods meta-train on 5, 10 or all 21 of the others, the smaller
sets inside the larger), which writes its own full page beside its run folders
(``OUT/iwpc_training_sites.md``). Then it writes into ``--page`` the section between
the two markers below (replacing it where it is, appending it otherwise): per method and
K the RMSE and the share of patients within 20 % of the stable dose, by number of
training sites, and per number of training sites the best meta-learner against the best
baseline. Every number comes from ``OUT/train-N/`` (``results.parquet``,
``predictions.parquet``). Run it after ``metamed benchmark --suite sites ... --page
docs/results/sites.md``, which rewrites that page without this section.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from metamed.evaluation.bootstrap import bootstrap_ci
from metamed.evaluation.statistics import summarise
from metamed.report.suite_page import SuiteSection
from metamed.report.verdicts import judged
from metamed.runs.suite import read_suite, run_suite

SUITE = Path(__file__).with_name("iwpc_training_sites.toml")
BEGIN, END = "<!-- iwpc-training-sites: begin -->", "<!-- iwpc-training-sites: end -->"
COMMAND = (
    "python benchmarks/iwpc_training_sites.py --data-dir ../shared/data "
    "--out runs/iwpc-training-sites --page docs/results/sites.md"
)


def _cell(mean: float, low: float, high: float, digits: int) -> str:
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _by_sites_table(cells: dict[int, pd.DataFrame], digits: int) -> list[str]:
    """Rows method x K, one column per number of training sites; ``cells`` maps the
    number of sites to a frame with ``method, k, mean, ci_low, ci_high``."""
    counts = sorted(cells)
    lines = [
        "| method | K | " + " | ".join(f"{n} sites" for n in counts) + " |",
        "|---|---:|" + "---:|" * len(counts),
    ]
    first = cells[counts[0]]
    for method in dict.fromkeys(first["method"]):
        for k in sorted(first.loc[first["method"] == method, "k"].unique()):
            row = []
            for n in counts:
                hit = cells[n][(cells[n]["method"] == method) & (cells[n]["k"] == k)]
                row.append(
                    _cell(*hit.iloc[0][["mean", "ci_low", "ci_high"]], digits) if len(hit) else "-"
                )
            lines.append(f"| {method} | {k} | " + " | ".join(row) + " |")
    return [*lines, ""]


def change_table(sections: dict[int, SuiteSection], metric: str = "rmse") -> pd.DataFrame:
    """Per method and K: the change of ``metric`` from the fewest to the most training
    sites, paired by held-out site (the same sites and support draws in every run: the
    episodes are seeded by site, K and draw), with a bootstrap CI over held-out sites."""
    fewest, most = min(sections), max(sections)
    per_task = {
        n: sections[n].results[sections[n].results["metric"] == metric]
        .groupby(["method", "k", "task"])["value"].mean()
        for n in (fewest, most)
    }  # fmt: skip
    change = (per_task[most] - per_task[fewest]).dropna()
    rows = []
    for (method, k), values in change.groupby(level=["method", "k"], sort=False):
        ci = bootstrap_ci(values.to_numpy(), cell=("training-sites", method, k, metric))
        rows.append({"method": method, "k": int(k), "change": ci.mean, "low": ci.low,
                     "high": ci.high, "n_tasks": ci.n_tasks})  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "k", "change", "low", "high", "n_tasks"])


def change_lines(sections: dict[int, SuiteSection]) -> list[str]:
    """The change table and, per K, which methods got better or worse beyond their CI."""
    fewest, most = min(sections), max(sections)
    table = change_table(sections)
    lines = [
        f"**RMSE change from {fewest} to {most} training sites** (mg/week, {most} sites minus "
        f"{fewest}, paired by held-out site [95% CI]; negative = more training sites helped)",
        "",
        "| method | " + " | ".join(f"K={k}" for k in sorted(table["k"].unique())) + " |",
        "|---|" + "---:|" * table["k"].nunique(),
    ]
    for method, rows in table.groupby("method", sort=False):
        by_k = {r["k"]: r for r in rows.to_dict("records")}
        cells = [
            f"{by_k[k]['change']:+.2f} [{by_k[k]['low']:+.2f}, {by_k[k]['high']:+.2f}]"
            if k in by_k else "-"
            for k in sorted(table["k"].unique())
        ]  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")
    for k, rows in table.groupby("k", sort=True):
        better = rows[rows["high"] < 0]["method"].tolist()
        worse = rows[rows["low"] > 0]["method"].tolist()
        lines.append(
            f"- K={k}: with {most} training sites instead of {fewest}, "
            + (f"better beyond the CI: {', '.join(better)}" if better else "no method is better beyond its CI")
            + "; "
            + (f"worse beyond the CI: {', '.join(worse)}" if worse else "none is worse beyond its CI")
            + "."
        )
    return [*lines, ""]


def section_markdown(sections: dict[int, SuiteSection]) -> str:
    """The page's section from the three runs (keyed by number of training sites)."""
    rmse = {}
    for n, section in sections.items():
        summary = summarise(section.results)
        rmse[n] = summary[summary["metric"] == "rmse"]
    within = {n: s.within for n, s in sections.items() if s.within is not None}
    any_section = next(iter(sections.values()))
    held_out = any_section.split.get("counts", {}).get("evaluated", "?")
    lines = [
        "## How IWPC results change with the number of training sites",
        "",
        BEGIN,
        "",
        "Regenerated by (after the suite command above, which rewrites this page without "
        "this section):",
        "",
        "```bash",
        COMMAND,
        "```",
        "",
        f"Each of the {held_out} IWPC project sites is held out in turn (leave-one-site-out); "
        "the methods meta-train on 5, 10 or all 21 of the other sites (drawn per held-out "
        "site from one seeded order, so the 5 are among the 10), adapt to K random patients "
        "of the held-out site and are scored on the rest of it. The suite's settings "
        "otherwise (unconditioned sampler, 100 meta-iterations, 4 draws, fomaml's inner_lr "
        "0.01), with the methods that learn from the training sites and the pharmacogenetic "
        "formula (which does not) as a fixed point. Means over held-out sites [95% bootstrap "
        "CI]; the run folders are `runs/iwpc-training-sites/train-5/`, `train-10/`, "
        "`train-21/`, and `runs/iwpc-training-sites/iwpc_training_sites.md` has every table "
        "of each run.",
        "",
    ]
    lines += [
        "- Time (meta-training and scoring; a resumed run sums its invocations and says so): "
        + "; ".join(f"{n} sites {s.cost}" for n, s in sections.items())
        + f"; peak resident memory "
        f"{max(s.peak_memory_mib for s in sections.values()):.0f} MiB.",
        "",
        "**RMSE (mg/week; lower is better)**",
        "",
    ]
    lines += _by_sites_table(rmse, 2)
    if within:
        lines += ["**Share of patients within 20 % of the stable dose (higher is better)**", ""]
        lines += _by_sites_table(within, 3)
    lines += change_lines(sections)
    lines += [
        "**Best meta-learner against the best baseline (RMSE, paired on the same episodes)**",
        "",
        "| training sites | K | best baseline (mean) | best meta-learner (mean) | difference "
        "[95% CI] | verdict |",
        "|---:|---:|---|---|---|---|",
    ]
    for n, section in sections.items():
        baselines = [b for b in section.baselines if b in set(section.results["method"])]
        table = judged(section.results, section.meta_learners, baselines, "rmse")
        for k, rows in table.groupby("k", sort=True):
            best = min(rows.to_dict("records"), key=lambda r: r["mean_method"])
            lines.append(
                f"| {n} | {k} | {best['baseline']} ({best['mean_baseline']:.2f}) | "
                f"{best['method']} ({best['mean_method']:.2f}) | {best['difference']:+.2f} "
                f"[{best['ci_low']:+.2f}, {best['ci_high']:+.2f}] | {best['judgement']} |"
            )
    return "\n".join([*lines, "", END, ""])


def write_section(page: Path, text: str) -> None:
    """Replace the section in ``page`` (from its heading to the end marker), or append it."""
    old = page.read_text() if page.is_file() else ""
    pattern = re.compile(
        r"## How IWPC results change with the number of training sites\n.*?"
        + re.escape(END)
        + r"\n",
        re.S,
    )
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    page.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="Folder of the real datasets.")
    parser.add_argument("--out", default="runs/iwpc-training-sites", help="Run folders.")
    parser.add_argument("--page", type=Path, default=Path("docs/results/sites.md"))
    parser.add_argument("--resume", action="store_true", help="Continue a stopped run.")
    args = parser.parse_args(argv)
    suite = read_suite(SUITE)
    outputs = run_suite(suite, args.out, data_dir=args.data_dir, resume=args.resume,
                        command=COMMAND)  # fmt: skip
    sections = {
        entry.spec.sites.train_sites: section  # type: ignore[union-attr]
        for entry, section in zip(suite.datasets, outputs.sections, strict=True)
    }
    write_section(args.page, section_markdown(sections))
    print(f"section written into {args.page}; full tables in {outputs.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
