"""Mutation testing of the leakage tests: plant each known kind of label leak, see it caught.

Each mutant below is one small edit of the source that lets held-out labels (or held-out
rows) reach what is scored.  For each, the source tree is copied to a temporary folder,
the edit applied there (never to the working tree), and the leakage tests
(``tests/evaluation/test_leakage.py`` and ``tests/data/test_data_leakage.py``) run against
the copy.  A mutant is

- **caught** when at least one leakage assertion fails: an ``AssertionError`` whose
  message starts with ``"leak:"``, i.e. the assertion about predictions, scores or
  features that exists to catch it;
- **caught by accident** when tests fail only in other ways (a crash, a range check,
  a training divergence): that is what the old suite did for three of these mutants, and
  it does not count;
- **survived** when every leakage test passes.

The mutation score is caught / mutants.  First the unmutated copy must pass every
leakage test, or no score is given.  An edit whose anchor text is no longer in the
source (the code moved on) is an error, not a silent no-op: update the mutant.

Run (about 5 minutes on 2 cores)::

    python benchmarks/leakage_mutants.py     # writes benchmarks/results/leakage_mutants.md
    python benchmarks/leakage_mutants.py --only blend-predictions,query-overlaps-support
    python benchmarks/leakage_mutants.py --check  # only that every mutant still applies
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ("tests/evaluation/test_leakage.py", "tests/data/test_data_leakage.py")
RESULT = ROOT / "benchmarks" / "results" / "leakage_mutants.md"
#: Every leakage assertion's message starts with this (see the two test modules).
LEAK_MARK = "AssertionError: leak:"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    what: str
    #: Where the mutant comes from: "issue 13" (listed there) or "added".
    origin: str = "added"


MAKE_TASKS_X = "                X=preprocessor.transform(frame),"
PROTOCOL_P = "            p = task.outcome_type.predict(scored, query.X)"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "label-feature-overwrite",
        "src/metamed/tasks/taskset.py",
        MAKE_TASKS_X,
        "                X=np.column_stack([preprocessor.transform(frame)[:, 1:], "
        "outcome_array(frame, schema)]),",
        "make_tasks writes each row's label into the last feature column",
        "issue 13",
    ),
    Mutant(
        "label-feature-nudge",
        "src/metamed/tasks/taskset.py",
        MAKE_TASKS_X,
        "                X=preprocessor.transform(frame) "
        "+ 0.01 * outcome_array(frame, schema)[:, None],",
        "make_tasks adds 0.01 x the label to every feature (a faint copy, no extra column)",
        "issue 13",
    ),
    Mutant(
        "task-prevalence-feature",
        "src/metamed/tasks/taskset.py",
        MAKE_TASKS_X,
        "                X=np.column_stack([preprocessor.transform(frame)[:, :-1], "
        "np.full(len(frame), outcome_array(frame, schema).mean())]),",
        "make_tasks writes the task's prevalence, query rows included, into a feature",
        "issue 13",
    ),
    Mutant(
        "blend-predictions",
        "src/metamed/evaluation/protocol.py",
        PROTOCOL_P,
        PROTOCOL_P.replace("p = ", "p = 0.7 * ") + " + 0.3 * query.y",
        "the protocol blends query labels into the scored (and stored) predictions",
        "issue 13",
    ),
    Mutant(
        "blend-scores-only",
        "src/metamed/evaluation/protocol.py",
        "_score(task.outcome_type, query.y, p)",
        "_score(task.outcome_type, query.y, 0.7 * p + 0.3 * query.y)",
        "the protocol blends query labels into the predictions it scores, storing clean ones",
    ),
    Mutant(
        "adapt-on-whole-task",
        "src/metamed/evaluation/protocol.py",
        "model = fitted.learner.adapt(support)",
        "model = fitted.learner.adapt(task)",
        "adaptation sees the whole held-out task, query labels included",
    ),
    Mutant(
        "held-out-in-meta-training",
        "src/metamed/evaluation/protocol.py",
        "train = make_tasks(taskset, split.train, prep)",
        "train = make_tasks(taskset, [*split.train, *split.test], prep)",
        "meta-training includes the held-out task",
    ),
    Mutant(
        "early-stop-on-held-out",
        "src/metamed/evaluation/protocol.py",
        "val = make_tasks(taskset, split.val, prep) if split.val else None",
        "val = make_tasks(taskset, split.test, prep)",
        "early stopping is scored on the held-out task",
    ),
    Mutant(
        "stratified-support",
        "src/metamed/tasks/episodes.py",
        "support = _draw_from_every_group(outcome.support_groups(task.y), n, k_support, rng)",
        "groups = outcome.support_groups(task.y); "
        "counts = [max(1, round(k_support * len(g) / n)) for g in groups]; "
        "counts[-1] = k_support - sum(counts[:-1]); "
        "support = np.concatenate([rng.choice(g, c, replace=False) "
        "for g, c in zip(groups, counts, strict=True)])",
        "support sets match the task's prevalence (all labels, query rows included): "
        "the leak fixed in 2a4b7da",
    ),
    Mutant(
        "query-overlaps-support",
        "src/metamed/tasks/episodes.py",
        "query = rng.permutation(complement(n, support))",
        "query = rng.permutation(np.arange(n))",
        "the query set includes the support rows",
    ),
    Mutant(
        "preprocess-fit-on-all-tasks",
        "src/metamed/evaluation/protocol.py",
        # run_fit's preprocessing (code_coverage refits it only to count unknown codes)
        "fit(taskset.frames(split.train))\n    train = ",
        "fit(taskset.cohort.frame)\n    train = ",
        "preprocessing is fitted on every task, held-out rows included",
    ),
    Mutant(
        "impute-from-label",
        "src/metamed/data/preprocess.py",
        "            filled = np.where(missing, self.medians_[col], values)\n"
        "            if col in binary:",
        "            filled = np.where(missing, frame[self.schema.outcome].to_numpy(float), values)\n"
        "            if col in binary:",
        "missing numeric values are imputed from the row's label",
    ),
)


def copy_tree(dest: Path) -> None:
    """The source, the leakage tests and their conftest, as they are now, into ``dest``."""
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for path in ("pyproject.toml", "tests/conftest.py", *TESTS):
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, dest / path)


def apply(mutant: Mutant, tree: Path) -> None:
    path = tree / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(
            f"mutant {mutant.name}: its anchor occurs {count} times in {mutant.path} (expected "
            f"once); the code has moved on, update the mutant.\nanchor: {mutant.old!r}"
        )
    path.write_text(text.replace(mutant.old, mutant.new))


@dataclass
class Outcome:
    verdict: str  # "caught", "caught by accident", "survived", "passes" (unmutated)
    leak_failures: list[str]
    other_failures: list[str]
    passed: int
    seconds: float


def run_tests(tree: Path) -> Outcome:
    report = tree / "junit.xml"
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS,
         f"--junitxml={report}", "-o", "junit_family=xunit2"],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if not report.exists():
        raise SystemExit(f"pytest wrote no report in {tree}; run the leakage tests by hand.")
    leak, other, passed = [], [], 0
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{Path(case.get('classname', '').replace('.', '/')).name}::{case.get('name')}"
        problems = [e for e in case if e.tag in ("failure", "error")]
        if not problems:
            passed += not any(e.tag == "skipped" for e in case)
            continue
        message = problems[0].get("message", "").split("\n")[0]
        (leak if message.startswith(LEAK_MARK) else other).append(f"{name}: {message[:200]}")
    verdict = "caught" if leak else ("caught by accident" if other else "survived")
    return Outcome(verdict, leak, other, passed, seconds)


def caught_by(failures: list[str]) -> str:
    """``test_name (n cases: learner, ...)`` per test function with a failing leak assertion."""
    cases: dict[str, list[str]] = {}
    for entry in failures:
        test = entry.split(": ", 1)[0].split("::")[-1]
        function, _, param = test.partition("[")
        cases.setdefault(function, []).append(param.rstrip("]") or "-")
    return "; ".join(
        f"`{function}` ({len(params)}: {', '.join(params)})" for function, params in cases.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated mutant names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULT, help="result page (markdown)")
    parser.add_argument(
        "--check", action="store_true", help="only check that every mutant still applies"
    )
    args = parser.parse_args()
    chosen = MUTANTS
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {m.name for m in MUTANTS}
        if unknown:
            raise SystemExit(
                f"unknown mutants {sorted(unknown)}; known: {[m.name for m in MUTANTS]}"
            )
        chosen = tuple(m for m in MUTANTS if m.name in names)

    with tempfile.TemporaryDirectory(prefix="leakage-mutants-") as tmp:
        clean = Path(tmp) / "clean"
        copy_tree(clean)
        # Mutants are applied to copies of this one snapshot, so editing the working tree
        # while the script runs changes nothing; every anchor must apply before any run.
        for mutant in chosen:
            probe = Path(tmp) / "probe"
            shutil.copytree(clean / "src", probe / "src")
            apply(mutant, probe)
            shutil.rmtree(probe)
        if args.check:
            print(f"all {len(chosen)} mutants apply")
            return
        base = run_tests(clean)
        print(
            f"unmutated: {base.passed} passed, {len(base.leak_failures) + len(base.other_failures)} failed ({base.seconds:.0f} s)"
        )
        if base.leak_failures or base.other_failures:
            for line in base.leak_failures + base.other_failures:
                print("  ", line)
            raise SystemExit("The leakage tests fail on the unmutated tree; fix that first.")
        outcomes: dict[str, Outcome] = {}
        for mutant in chosen:
            tree = Path(tmp) / mutant.name
            shutil.copytree(clean, tree, ignore=shutil.ignore_patterns("junit.xml"))
            apply(mutant, tree)
            outcomes[mutant.name] = run_tests(tree)
            o = outcomes[mutant.name]
            print(f"{mutant.name}: {o.verdict} ({len(o.leak_failures)} leakage assertions, "
                  f"{len(o.other_failures)} other failures, {o.seconds:.0f} s)")  # fmt: skip
            shutil.rmtree(tree)

    caught = sum(o.verdict == "caught" for o in outcomes.values())
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# Mutation testing of the leakage tests",
        "",
        "Command: `python benchmarks/leakage_mutants.py` (add `--only NAME,...` for a subset).",
        "",
        f"Tests: {', '.join(f'`{t}`' for t in TESTS)}. Each mutant is applied to a temporary "
        "copy of `src/`; it is *caught* only when an assertion whose message starts with "
        "`leak:` fails (the assertion about predictions, scores or features), *caught by "
        "accident* when tests fail only otherwise (a crash, a range check), *survived* when "
        "all pass.",
        "",
        f"Source: commit `{commit or 'unknown'}`. Unmutated tree: {base.passed} leakage tests pass.",
        "",
        f"**Mutation score: {caught}/{len(outcomes)}** caught on purpose.",
        "",
        "| mutant | origin | planted leak | verdict | leakage assertions failing | tests failing otherwise |",
        "|---|---|---|---|---:|---:|",
    ]
    for mutant in chosen:
        o = outcomes[mutant.name]
        lines.append(
            f"| `{mutant.name}` | {mutant.origin} | {mutant.what} | {o.verdict} | "
            f"{len(o.leak_failures)} | {len(o.other_failures)} |"
        )
    lines += ["", "## Which tests catch each mutant", ""]
    for mutant in chosen:
        o = outcomes[mutant.name]
        lines.append(f"- `{mutant.name}` (`{mutant.path}`): {caught_by(o.leak_failures) or 'none'}")
        if o.leak_failures:
            example = o.leak_failures[0].split(": ", 1)[1].split("\n")[0]
            lines.append(f"  - e.g. {example}")
    lines += [
        "",
        f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
        f"{sum(o.seconds for o in outcomes.values()) + base.seconds:.0f} s of test time.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"mutation score {caught}/{len(outcomes)}; written to {args.out}")


if __name__ == "__main__":
    main()
