"""The ``metamed`` command.

Every command turns library errors into one clear line on stderr and exit code 2;
no traceback from deep inside pandas or torch reaches the user (set METAMED_DEBUG=1
to see one).  Outputs are written only once a run has succeeded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from metamed.errors import MetamedError, MetamedValueError, MetamedWarning

# The commands (also callable from Python), the app that holds them, and the two
# helpers every command uses: one-line user errors and a throttled progress bar.
__all__ = [
    "adapt",
    "app",
    "audit",
    "benchmark",
    "data_fetch",
    "datasets",
    "demo",
    "dose",
    "inspect",
    "main",
    "predict",
    "progress_bar",
    "serve",
    "token_create",
    "token_list",
    "token_revoke",
    "train",
    "user_errors",
]

console = Console()
err_console = Console(stderr=True)


class _OneLineUsageErrors(TyperGroup):
    """Usage errors (unknown option, missing value) as one line and a hint, exit code 2.

    Typer would draw a five-line box around them. click's exception classes are found
    through ``typer.BadParameter``, which newer typer vendors and older typer imports.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **kwargs: Any,
    ) -> Any:
        passed = dict(
            args=args,
            prog_name=prog_name,
            complete_var=complete_var,
            standalone_mode=False,
            windows_expand_args=windows_expand_args,
            **kwargs,
        )
        if not standalone_mode:
            return super().main(**passed)
        # Any: the class lives in a different module in different typer versions.
        click_error: Any = next(
            c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
        )
        try:
            code = super().main(**passed)
        except typer.Abort:
            err_console.print("aborted; nothing was written.")
            sys.exit(1)
        except click_error as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # its message is the help text
                if error.format_message().strip():
                    typer.echo(error.format_message(), err=True)
            else:
                ctx = getattr(error, "ctx", None)
                hint = f"\nTry '{ctx.command_path} --help'." if ctx is not None else ""
                typer.echo(f"error: {error.format_message()}{hint}", err=True)
            sys.exit(error.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


# Shell completion is typer's own: `metamed --install-completion` (bash, zsh, fish,
# PowerShell) completes commands, options and the choices they list.
app = typer.Typer(
    cls=_OneLineUsageErrors,
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="metamed: meta-learning for clinical models. Adapt to a new hospital, condition, patient or assay from a few examples.",
)


def _version_line() -> str:
    """metamed's version, and the Python and torch build it runs on (torch's wheel tag,
    e.g. 2.13.0+cpu, read from its metadata: importing torch would take a second)."""
    import importlib.metadata
    import platform

    import metamed

    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = "not installed"
    return f"metamed {metamed.__version__} (Python {platform.python_version()}, torch {torch})"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(_version_line())
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print metamed's version (and the Python and torch it runs on) and exit.",
    ),
) -> None:
    """Options of metamed itself; the app's help text is the one shown."""


data_app = typer.Typer(no_args_is_help=True, help="Get and check datasets.")
app.add_typer(data_app, name="data")


FORCE_HELP = (
    "Replace the files of an earlier run in --out (by default a non-empty --out is refused)."
)
THREADS_HELP = (
    "Threads to compute with (torch, numba), recorded with the run (config.json, or the "
    "model's provenance) [default: $OMP_NUM_THREADS, else the physical cores]."
)


DEVICE_HELP = (
    "Where the torch learners compute: auto (a CUDA GPU when torch sees one, else the "
    "CPU) | cpu | cuda; recorded with each result, never part of what a run is."
)


def _use_device(device: str) -> None:
    """Apply --device before any work (``cuda`` without a GPU: one line, exit 2); see
    :mod:`metamed.device`."""
    from metamed.device import set_device

    set_device(device)


def _use_threads(threads: int | None) -> None:
    """Apply --threads (or its default) before any work; see :mod:`metamed.threads`."""
    from metamed.threads import set_threads

    set_threads(threads)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report library errors as one line and exit 2; unexpected errors as one line and exit 1.

    What the library did on the user's behalf (a :class:`MetamedWarning`) is one ``note:`` line.
    """
    try:
        with warnings.catch_warnings():
            # Notes are part of the command's output, whatever filters the caller set
            # (``python -W error`` would otherwise turn them into an internal error).
            warnings.simplefilter("default", MetamedWarning)
            show_other = warnings.showwarning

            def show(message, category, *args, **kwargs) -> None:
                if issubclass(category, MetamedWarning):
                    err_console.print(f"[bold]note:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
                else:
                    show_other(message, category, *args, **kwargs)

            warnings.showwarning = show
            yield
    except MetamedError as error:
        # escaped: messages quote TOML sections such as [data], which are not markup
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; nothing was written.")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:  # noqa: BLE001 - last line of defence for CLI users
        if os.environ.get("METAMED_DEBUG"):
            traceback.print_exc()
        err_console.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {escape(str(error))}\n"
            "This is a bug in metamed; please report it. Rerun with METAMED_DEBUG=1 for the traceback.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def _parse_list(text: str | None, what: str) -> list[str]:
    if text is None:
        return []
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise MetamedValueError(f"--{what} is empty; give a comma-separated list.")
    return items


PARAM_HELP = (
    "A hyperparameter of one method, METHOD.NAME=VALUE (repeatable), e.g. "
    "--param maml.inner_lr=0.05; VALUE is read as JSON (0.05, true, [64,64]), else as text."
)


def _parse_params(items: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``--param maml.inner_lr=0.05`` as ``{"maml": {"inner_lr": 0.05}}``."""
    params: dict[str, dict[str, Any]] = {}
    for item in items or ():
        target, sep, text = item.partition("=")
        method, dot, name = target.strip().rpartition(".")
        if not sep or not dot or not method or not name or not text.strip():
            raise MetamedValueError(
                f"--param must look like METHOD.NAME=VALUE (e.g. maml.inner_lr=0.05), "
                f"got '{item}'."
            )
        try:
            value = json.loads(text)
        except ValueError:
            value = text.strip()
        params.setdefault(method, {})[name.strip()] = value
    return params


def _parse_shots(text: str) -> tuple[int, ...]:
    try:
        shots = tuple(int(t) for t in _parse_list(text, "shots"))
    except ValueError:
        raise MetamedValueError(
            f"--shots must be comma-separated whole numbers such as 5,10,20, got '{text}'."
        ) from None
    if any(k < 1 for k in shots):
        raise MetamedValueError(f"--shots must be positive, got '{text}'.")
    return tuple(sorted(set(shots)))


@contextlib.contextmanager
def progress_bar(description: str, every_s: float = 5.0) -> Iterator:
    """Progress fed by (what, done, total) callbacks; ``done`` may be fractional.

    A live bar with the elapsed time on a terminal; in a log (CI, nohup) one plain line
    every ``every_s`` seconds with the elapsed time, because a live bar writes nothing to a
    file until it ends. The estimate of the time left comes from the caller, in ``what``
    (the protocol's job counter knows which jobs are slow; a bar's average speed does not).
    """
    if not err_console.is_terminal:
        start = time.monotonic()
        last = [-every_s]

        def log_line(what: str, done: float, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= every_s or done == total:
                last[0] = now
                elapsed = _clock_time(now - start)
                err_console.print(
                    f"{description}: {int(done)}/{total} [{elapsed}] {what}", highlight=False
                )

        yield log_line
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[what]}"),
        console=err_console,
        transient=False,
    ) as bar:
        task_id = bar.add_task(description, total=None, what="")

        def update(what: str, done: float, total: int) -> None:
            bar.update(task_id, completed=done, total=total, what=what)

        yield update


def _clock_time(seconds: float) -> str:
    """Elapsed time as h:mm:ss, as rich's bar shows it."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _show_schema(cohort, task_col: str | None) -> None:
    schema = cohort.schema
    table = Table(title=f"Schema of {cohort.name} ({len(cohort.frame)} rows)", show_lines=False)
    table.add_column("role")
    table.add_column("columns")
    table.add_row("task (group)", task_col or ", ".join(schema.group))
    positive = cohort.provenance.get("positive_label")
    coded = f" ({positive} = 1, the other value = 0)" if positive is not None else ""
    table.add_row(f"outcome ({schema.outcome_type})", f"{schema.outcome}{coded}")
    table.add_row("numeric", ", ".join(schema.numeric) or "-")
    table.add_row("categorical", ", ".join(schema.categorical) or "-")
    if schema.codesets:
        table.add_row("code sets", ", ".join(schema.codesets))
    err_console.print(table)
    err_console.print(
        "Override with --feature-cols, --categorical-cols and --drop-cols.", style="dim"
    )


def _load_cohort(data, data_dir: Path | None):
    """The spec's cohort; a table's inferred schema is shown (it is a guess worth checking)."""
    from metamed.runs import load_cohort

    cohort = load_cohort(data, data_dir)
    if data.table is not None:
        _show_schema(cohort, data.task_col)
    return cohort


#: Flags that describe the benchmark itself; with --config the file says all of them.
SPEC_FLAGS = (
    "dataset", "table", "task_col", "outcome_col", "feature_cols", "categorical_cols",
    "drop_cols", "positive_label", "outcome_type", "methods", "shots", "draws", "seed",
    "split", "meta_iterations", "sampler", "n_common",
)  # fmt: skip


@app.command()
def benchmark(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        help="A TOML benchmark spec (data, methods and hyperparameters, shots, draws, seed, split).",
    ),
    dataset: str | None = typer.Option(None, help="Known dataset name (see `metamed datasets`)."),
    table: Path | None = typer.Option(None, help="Your own patient table (CSV or Parquet)."),
    data_dir: Path | None = typer.Option(
        None, help="Folder holding the datasets (default: $METAMED_DATA_DIR)."
    ),
    task_col: str | None = typer.Option(
        None, help="Column that defines tasks (site, condition, patient)."
    ),
    outcome_col: str | None = typer.Option(None, help="Outcome column (--table only)."),
    feature_cols: str | None = typer.Option(
        None, help="Comma-separated input columns (--table only; default: all others)."
    ),
    categorical_cols: str | None = typer.Option(
        None, help="Columns to treat as categorical (--table only)."
    ),
    drop_cols: str | None = typer.Option(None, help="Columns to ignore (--table only)."),
    positive_label: str | None = typer.Option(
        None,
        help="Outcome value that means 1 for a two-valued outcome, e.g. yes, or 1 to reverse "
        "R's 1/2 status coding (--table only).",
    ),
    outcome_type: str | None = typer.Option(
        None,
        help="binary | numeric: needed when the outcome holds a few whole numbers such as "
        "0/1/2 (--table only; default: inferred).",
    ),
    methods: str | None = typer.Option(
        None,
        help="Comma-separated method names (default: every method that models the cohort's "
        "outcome, binary or numeric; docs/learners/ has one page per method).",
    ),
    shots: str | None = typer.Option(
        None,
        help="Support sizes K, comma-separated [default: 5,10,20,40].",
    ),
    draws: int | None = typer.Option(
        None, min=1, help="Random support draws per held-out task and K [default: 20]."
    ),
    seed: int | None = typer.Option(
        None, min=0, help="Master seed (episodes, initialisation) [default: 0]."
    ),
    split: str | None = typer.Option(
        None,
        help="auto | loso (leave one task out) | random | rare (common cohorts train, rare "
        "ones test; needs --n-common) | sites (every site large enough for max(K) + 10 "
        "patients held out in turn, the others meta-train) [default: auto].",
    ),
    n_common: int | None = typer.Option(
        None,
        min=1,
        help="--split rare: a cohort with at least this many patients is common (meta-train); "
        "smaller ones that fit every K are the rare meta-test cohorts, the rest are skipped.",
    ),
    meta_iterations: int | None = typer.Option(
        None,
        min=1,
        help="Override meta-training iterations of every method that has them (the MAML "
        "family and Reptile; quick runs).",
    ),
    sampler: str | None = typer.Option(
        None,
        help="conditioned (support sets hold both classes) | unconditioned (K random "
        "patients of the site, possibly one class) [default: conditioned].",
    ),
    out: Path = typer.Option(Path("runs/benchmark"), help="Output folder (also the run folder)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the interrupted run in --out (same command), redoing no finished job.",
    ),
    executor: str = typer.Option("serial", help="serial | processes | ray."),
    jobs: int = typer.Option(
        1, min=1, help="Parallel jobs (local processes, or Ray CPUs for a local cluster)."
    ),
    address: str | None = typer.Option(
        None, help="Address of a running Ray cluster (--executor ray)."
    ),
    param: list[str] | None = typer.Option(None, "--param", help=PARAM_HELP),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    suite: str | None = typer.Option(
        None,
        help="Run a benchmark suite and write its results page: a shipped suite by name "
        "(rare-conditions, sites; molecules: MoleculeNet and imaging: MedMNIST, each under "
        "its own protocol; one run folder per dataset or setting in --out) or a suite .toml "
        "file.",
    ),
    page: Path | None = typer.Option(
        None,
        help="--suite: also write the results page here (e.g. docs/results/rare-conditions.md).",
    ),
) -> None:
    """Meta-train on all but the held-out tasks, adapt from K examples, score the rest."""
    given = {k: v for k, v in locals().items() if k in SPEC_FLAGS and v is not None}
    if config is None and dataset is None and table is None and suite is None and page is None:
        # Without data there is nothing to benchmark; once this silently ran a five-minute
        # synthetic benchmark. The built-in data is one flag away: --dataset synthetic.
        typer.echo(
            "error: benchmark needs data: --dataset NAME (see `metamed datasets`; "
            "'synthetic' is built in), --table FILE --task-col COL --outcome-col COL, "
            f"or --config spec.toml.\n{ctx.get_usage()}\nTry '{ctx.command_path} --help'.",
            err=True,
        )
        raise typer.Exit(2)
    with user_errors():
        _use_threads(threads)
        _use_device(device)
        params = _parse_params(param)
        if params and (suite is not None or page is not None):
            raise MetamedValueError(
                "--suite says each method's hyperparameters in its file; drop --param."
            )
        from metamed.evaluation.spec import BenchmarkSpec, DataSpec, MethodSpec
        from metamed.learners import DEFAULT_METHODS, default_methods
        from metamed.runs import make_executor, read_spec, run_spec
        from metamed.runs.run_folder import RunFolder

        if executor == "ray":  # Ray's workers compute where Ray puts them: on their CPUs
            if device not in ("auto", "cpu"):
                raise MetamedValueError(
                    f"--device {device} computes in this process or its --executor processes "
                    "workers; Ray's workers compute on their CPUs. Drop --device, or use "
                    "--executor processes."
                )
            _use_device("cpu")
        runner = make_executor(executor, jobs, address)
        if suite is not None or page is not None:
            _run_suite(suite, page, config, given, out, data_dir, runner, force, resume,
                       (executor, jobs), device)  # fmt: skip
            return
        method_names: list[str] | None = None
        if config is not None:
            if given:
                flags = ", ".join("--" + k.replace("_", "-") for k in given)
                raise MetamedValueError(
                    f"--config {config} says what to run; drop {flags} (or put them in the file)."
                )
            spec = read_spec(config)
        else:
            data = DataSpec(
                dataset=dataset,
                table=str(table) if table is not None else None,
                task_col=task_col,
                outcome_col=outcome_col,
                feature_cols=_parse_list(feature_cols, "feature-cols") or None,
                categorical_cols=_parse_list(categorical_cols, "categorical-cols") or None,
                drop_cols=_parse_list(drop_cols, "drop-cols") or None,
                positive_label=positive_label,
                outcome_type=outcome_type,
            )
            if methods:
                method_names = _parse_list(methods, "methods")
            spec = BenchmarkSpec(  # checks the method names before any data is loaded
                data=data,
                methods=tuple(MethodSpec(m) for m in method_names or DEFAULT_METHODS),
                shots=_parse_shots(shots or "5,10,20,40"),
                draws=20 if draws is None else draws,
                seed=0 if seed is None else seed,
                split=split or "auto",
                overrides={"meta_iterations": meta_iterations} if meta_iterations else {},
                sampler=sampler or "conditioned",
                rare=_rare_rule(n_common),
            )
        cohort = _load_cohort(spec.data, data_dir)
        if config is None and method_names is None:  # the defaults follow the outcome
            outcome = cohort.schema.outcome_type
            defaults = tuple(MethodSpec(m) for m in default_methods(outcome))
            spec = dataclasses.replace(spec, methods=defaults)
        spec = spec.with_params(params)
        for key, applies in spec.overridden().items():
            skipped = [m for m in spec.method_ids if m not in applies]
            if skipped:
                err_console.print(
                    f"{key} applies to {', '.join(applies)}; not to {', '.join(skipped)} "
                    "(no such hyperparameter).",
                    style="dim",
                    highlight=False,
                )
        place = RunFolder.check(out, resume=resume, force=force)
        try:
            with progress_bar(f"benchmark {cohort.name}") as update:
                outputs = run_spec(
                    spec,
                    place,
                    cohort=cohort,
                    executor=runner,
                    force=force,
                    resume=resume,
                    progress=update,
                )
        except KeyboardInterrupt:
            if (place / "jobs" / "run.json").is_file():
                err_console.print(
                    f"interrupted; the finished jobs are kept in {place / 'jobs'}. Rerun the "
                    "same command with --resume to continue."
                )
                raise typer.Exit(130) from None
            raise
        _print_summary(outputs)


def _rare_rule(n_common: int | None):
    if n_common is None:
        return None
    from metamed.tasks import RareRule

    return RareRule(n_common=n_common)


def _run_suite(
    suite, page, config, given, out, data_dir, runner, force, resume, how, device="auto"
) -> None:
    """``benchmark --suite``: every dataset of the suite, then its results page."""
    from metamed.runs.suite import read_suite, run_suite

    if suite is None:
        raise MetamedValueError("--page is the results page of a suite; give --suite too.")
    if config is not None or given:
        flags = ", ".join(
            ["--config"] * (config is not None) + ["--" + k.replace("_", "-") for k in given]
        )
        raise MetamedValueError(
            f"--suite {suite} says what to run for every dataset; drop {flags}."
        )
    the_suite = read_suite(suite)
    command = f"metamed benchmark --suite {suite}"
    if data_dir is not None:
        command += f" --data-dir {data_dir}"
    command += f" --out {out}"
    if how != ("serial", 1):
        command += f" --executor {how[0]} --jobs {how[1]}"
    if device != "auto":
        command += f" --device {device}"
    if page is not None:
        command += f" --page {page}"
    with progress_bar(f"suite {the_suite.name}") as update:
        outputs = run_suite(
            the_suite, out, data_dir=data_dir, page=page, executor=runner, force=force,
            resume=resume, progress=update, command=command,
        )  # fmt: skip
    console.print(f"results page: {outputs.page}")


def _print_summary(outputs) -> None:
    from metamed.evaluation.metrics import outcome_kind, primary_metric
    from metamed.evaluation.statistics import summarise

    summary = summarise(outputs.protocol.results)
    metric = primary_metric(outcome_kind(summary["metric"].unique()))
    view = summary[summary["metric"] == metric.name]
    table = Table(title=f"mean {metric.label} over held-out tasks [95% bootstrap CI]")
    table.add_column("method")
    ks = sorted(view["k"].unique())
    for k in ks:
        table.add_column(f"K={k}", justify="right")
    for method, rows in view.groupby("method", sort=False):
        cells = []
        for k in ks:
            r = rows[rows["k"] == k].iloc[0]
            cells.append(f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        table.add_row(str(method), *cells)
    console.print(table)
    console.print(f"results: {outputs.results_csv} (+ .parquet), config: {outputs.config_json}")
    console.print(f"report:  {outputs.report_html}")


#: The demo's built-in cohort: 16 simulated hospitals, so that a random task split leaves
#: 4 held-out hospitals (a CI over 2 tasks would say little).
DEMO_SITES = 16
DEMO_METHODS = ("maml", "fomaml", "anil", "protonet", "pooled", "pooled-finetune", "local-logreg")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Output folder."),
    seed: int = typer.Option(0, min=0, help="Master seed."),
    dosing: bool = typer.Option(True, help="Also run the short insulin-dosing demo."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP),
) -> None:
    """Run the main job on built-in synthetic multi-site data and write HTML reports."""
    with user_errors():
        _use_threads(threads)
        from metamed.data import make_synthetic_cohort
        from metamed.evaluation.protocol import ProtocolConfig
        from metamed.outputs import check_output_place, staged_output
        from metamed.runs import run_benchmark

        out = check_output_place(out, force=force)
        cohort = make_synthetic_cohort(n_tasks=DEMO_SITES, seed=seed)
        err_console.print(
            f"Demo 1/2: {len(cohort.frame)} simulated patients in {DEMO_SITES} hospitals; "
            "meta-train on most hospitals, adapt to 4 held-out ones from K patients each."
        )
        config = ProtocolConfig(shots=(4, 10, 20), draws=10, seed=seed)
        # Both parts are staged together: a failed dosing part leaves an earlier demo intact.
        with staged_output(out) as staging:
            with progress_bar("demo") as update:
                outputs = run_benchmark(
                    cohort, list(DEMO_METHODS), staging, config, progress=update
                )
            if dosing:
                from metamed.runs import run_dose

                err_console.print(
                    "Demo 2/2: insulin dosing on 10 simulated adults (1 day), basal-bolus, "
                    "PID, population and personalised controllers."
                )
                run_dose(
                    ("basal_bolus", "pid", "population", "personalised"),
                    "adult",
                    seed=seed,
                    out_dir=staging / "dose",
                    quick=True,
                    progress=lambda msg: err_console.print(msg, highlight=False),
                )
        _print_summary(dataclasses.replace(outputs, out_dir=out))
        if dosing:
            console.print(f"dosing report: {out / 'dose' / 'report.html'}")


@app.command()
def dose(
    controllers: str = typer.Option(
        "basal_bolus,pid,population,personalised", help="Comma-separated controller names."
    ),
    patients: str = typer.Option(
        "all",
        help="all, or comma-separated age groups (adult, adolescent, child) and names "
        "(adult#001,...), each patient once.",
    ),
    days: int | None = typer.Option(
        None, min=1, help="One-day evaluation episodes per patient and controller [default: 10]."
    ),
    seed: int = typer.Option(0, min=0, help="Seed of the first evaluation day."),
    quick: bool = typer.Option(
        False, help="1 evaluation day and 1 record day (seconds); not with --days."
    ),
    out: Path = typer.Option(Path("runs/dose"), help="Output folder."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP),
) -> None:
    """Simulate insulin-dosing controllers on virtual (simulated) type-1-diabetes patients."""
    with user_errors():
        _use_threads(threads)
        from metamed.runs import run_dose

        names = _parse_list(controllers, "controllers")
        chosen = None if patients == "all" else _parse_list(patients, "patients")
        with progress_bar("dose") as update:
            outputs = run_dose(
                names,
                chosen,
                days=days,
                seed=seed,
                out_dir=out,
                quick=quick,
                progress=lambda msg: err_console.print(msg, highlight=False, soft_wrap=True),
                advance=update,
                force=force,
            )
        _print_dose_summary(outputs)


#: The dose table's columns at 80 terminal columns: (metric, header); the title gives units.
DOSE_COLUMNS = (
    ("tir_pct", "in range"),
    ("below_70_pct", "< 70"),
    ("below_54_pct", "< 54"),
    ("above_250_pct", "> 250"),
    ("failure_pct", "failed days"),
)


def _print_dose_summary(outputs) -> None:
    """Mean metrics over all simulated patients, one row per controller, and what each is."""
    view = outputs.summary[outputs.summary["age_group"] == "all"]
    table = Table(
        title="% of time in range 70-180 mg/dL, below 70 / 54, above 250 mg/dL; % of days "
        "ended by glucose < 40 or > 600 (all simulated patients)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("controller", no_wrap=True)
    table.add_column("patient-days", justify="right")
    for _, header in DOSE_COLUMNS:
        table.add_column(header, justify="right")
    for _, row in view.iterrows():
        cells = [f"{row[metric]:.1f}" for metric, _ in DOSE_COLUMNS]
        table.add_row(str(row["controller"]), f"{row['patient_days']:,}", *cells)
    console.print(table)
    for controller in view["controller"]:
        description = outputs.descriptions.get(controller)
        if description:
            console.print(f"{controller}: {description}", style="dim", highlight=False)
    console.print(f"per age group and more metrics: {outputs.summary_csv}", highlight=False)
    console.print(f"dosing report: {outputs.report_html}")


@app.command()
def datasets(
    name: str | None = typer.Argument(
        None, help="Show one dataset in full: citation, options, files and their origin."
    ),
    data_dir: Path | None = typer.Option(
        None, help="Folder holding the datasets (default: $METAMED_DATA_DIR)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the datasets (or the one named) as JSON, for scripts."
    ),
) -> None:
    """List known datasets: version, size, licence, whether present and loadable."""
    with user_errors():
        from metamed.data import DATASETS, get_source

        if as_json:
            specs = [get_source(name)] if name is not None else list(DATASETS.values())
            records = [
                {**spec.to_dict(), "present": _dataset_status(spec.name, data_dir)}
                for spec in specs
            ]
            # tuples of option defaults and choices print as lists; anything else as text
            typer.echo(json.dumps(records[0] if name else records, indent=2, default=str))
            return
        if name is not None:
            _show_dataset(get_source(name), data_dir)
            return
        # Only the first column wraps (title and licence under the name), so the status
        # columns stay whole in an 80-column terminal.
        table = Table(
            title="metamed datasets",
            box=box.SIMPLE_HEAD,
            title_justify="left",
            collapse_padding=True,
            pad_edge=False,
        )
        table.add_column("dataset")
        for col in ("patients", "tasks", "size"):
            table.add_column(col, justify="right", no_wrap=True)
        for col in ("present", "loader"):
            table.add_column(col, no_wrap=True)
        for spec in DATASETS.values():
            table.add_row(
                Text.assemble(
                    (f"{spec.name} v{spec.version}", "bold"),
                    f"\n{spec.title}\n",
                    (spec.licence, "dim"),
                ),
                _count(spec.n_patients),
                _count(spec.n_tasks),
                f"{spec.size_bytes / 1e6:.2f} MB" if spec.files else "-",
                _dataset_status(spec.name, data_dir),
                "yes" if spec.loadable else "not yet",
                end_section=True,
            )
        console.print(table)
        console.print("Citation, options and files: metamed datasets NAME", style="dim")


def _count(n: int | None) -> str:
    return f"{n:,}" if n is not None else "-"


def _dataset_status(name: str, data_dir: Path | None) -> str:
    from metamed.data import get_source
    from metamed.data.registry import dataset_folder
    from metamed.errors import DataNotFoundError

    if not get_source(name).files:
        return "built-in"
    try:
        dataset_folder(name, data_dir)
    except DataNotFoundError:
        return "no"
    return "yes"


def _show_dataset(spec, data_dir: Path | None) -> None:
    """One dataset's spec, readable at 80 columns (spec text is printed as-is, no markup)."""
    console.print(Text.assemble((f"{spec.name} v{spec.version}", "bold"), f"  {spec.title}"))
    console.print(Text(spec.description))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column()
    facts.add_row("licence", Text(spec.licence))
    facts.add_row("cite", Text(spec.citation))
    if spec.homepage:
        facts.add_row("homepage", Text(spec.homepage))
    facts.add_row("loader", "yes" if spec.loadable else "not yet (spec only)")
    if spec.files:
        status = _dataset_status(spec.name, data_dir)
        facts.add_row("present", f"{status} (folder {spec.folder}/ of the data directory)")
        facts.add_row("fetch", f"metamed data fetch {spec.name} --dest DIR")
    console.print(facts)
    if spec.options:
        options = Table(title="options (keywords of load_dataset)", box=box.SIMPLE_HEAD)
        options.add_column("option", no_wrap=True)
        options.add_column("default")
        options.add_column("values")
        for option in spec.options:
            values = ", ".join(map(str, option.choices)) if option.choices else "-"
            if option.help:
                values = f"{values}: {option.help}" if option.choices else option.help
            options.add_row(option.name, Text(repr(option.default)), Text(values))
        console.print(options)
    if spec.files:
        files = Table(title="files", box=box.SIMPLE_HEAD)
        files.add_column("file", overflow="fold")
        files.add_column("bytes", justify="right", no_wrap=True)
        files.add_column("sha256", no_wrap=True)
        files.add_column("download", no_wrap=True)
        for item in spec.files:
            download = "url" if item.url else "none"
            files.add_row(item.name, f"{item.size_bytes:,}", item.sha256[:12], download)
        console.print(files)
        by_origin: dict[str, list[str]] = {}
        for item in spec.files:
            by_origin.setdefault(item.origin, []).append(item.name)
        for origin, names in by_origin.items():
            which = "" if len(by_origin) == 1 else f" of {', '.join(names)}"
            console.print(Text(f"origin{which}: {origin}", style="dim"))
        if any(item.url is None for item in spec.files):
            console.print(
                Text(
                    "Files without a download have no public byte-identical copy: obtain them "
                    "as the origin says and check them with metamed.data.verify.",
                    style="dim",
                )
            )


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="Dataset name (see `metamed datasets`)."),
    dest: Path = typer.Option(
        ..., help="Folder to download into (use it as --data-dir / METAMED_DATA_DIR)."
    ),
    base_url: str | None = typer.Option(
        None, help="Mirror to download from instead of the public origin."
    ),
) -> None:
    """Download a dataset from its public origin and verify its checksums."""
    with user_errors():
        from metamed.data import fetch_dataset

        with progress_bar(f"fetch {name}") as update:
            path = fetch_dataset(name, dest, base_url=base_url, progress=update)
        console.print(f"{name}: downloaded and verified in {path}")


# -- deploying at a site: train, adapt, predict, inspect, serve ----------------------------
token_app = typer.Typer(no_args_is_help=True, help="API tokens of `metamed serve`.")
app.add_typer(token_app, name="token")

MODELS_HELP = "Folder of model artifacts that `metamed serve` serves (one sub-folder each)."


def _check_new_place(path: Path, force: bool, option: str) -> None:
    """A model folder may replace only an earlier model, and only with --force."""
    if path.exists() and not path.is_dir():
        raise MetamedValueError(f"{option} {path} is a file; give a folder for the model.")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise MetamedValueError(
            f"{option} {path} already exists and is not empty; rerun with --force to replace "
            "the model there, or choose a new folder."
        )


def _read_csv(path: Path, option: str):
    """A CSV as a DataFrame and the sha256 of its bytes, or one clear error."""
    import hashlib

    import pandas as pd

    if not path.is_file():
        raise MetamedValueError(f"{option} {path}: no such file.")
    data = path.read_bytes()
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MetamedValueError(f"{option} {path} is not a readable CSV table: {first}.") from None
    return frame, hashlib.sha256(data).hexdigest()


def _note_ignored(ignored: list[str]) -> None:
    if ignored:
        err_console.print(
            f"[bold]note:[/] ignored columns that are not model inputs: {', '.join(ignored)}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def train(
    config: Path = typer.Option(
        ..., help="Train config (TOML): [data], [method], optional [evaluation]."
    ),
    out: Path = typer.Option(..., help="Folder to write the model artifact into."),
    data_dir: Path | None = typer.Option(
        None, help="Folder holding the datasets (default: $METAMED_DATA_DIR)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a model already in --out."),
    param: list[str] | None = typer.Option(None, "--param", help=PARAM_HELP),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
) -> None:
    """Meta-train one method on every task of a dataset and save it as a model artifact."""
    with user_errors():
        _use_threads(threads)
        _use_device(device)
        from metamed.evaluation.spec import set_params
        from metamed.runs.train import read_train_spec, train_model

        spec = read_train_spec(config)
        (method,) = set_params([spec.method], _parse_params(param))
        spec = dataclasses.replace(spec, method=method)
        _check_new_place(out, force, "--out")
        with progress_bar(f"train {spec.method.id}") as update:
            path = train_model(spec, out, data_dir=data_dir, progress=update)
        console.print(f"model: {path} (inspect it: metamed inspect --model {path})")


@app.command()
def adapt(
    model: Path = typer.Option(..., help="A meta-trained model (metamed train)."),
    support: Path = typer.Option(
        ..., help="CSV of the site's labelled patients (inputs and outcome)."
    ),
    out: Path = typer.Option(..., help="Folder to write the adapted model into."),
    coverage: float = typer.Option(0.9, help="Target coverage of the prediction sets/intervals."),
    method: str = typer.Option(
        "auto", help="Conformal calibration: auto | split | cv+ | jackknife+."
    ),
    recalibrate: bool = typer.Option(
        False,
        "--recalibrate",
        help="Recalibrate the risks on the support patients (logistic recalibration, "
        "cross-validated within them) before the conformal calibration; binary outcomes.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace a model already in --out."),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP),
) -> None:
    """Adapt a meta-trained model to a site's labelled patients, with conformal calibration."""
    with user_errors():
        _use_threads(threads)
        from metamed.learners.conformal import CONFORMAL_METHODS
        from metamed.serve import adapt_pipeline, load_model

        if method not in CONFORMAL_METHODS:
            raise MetamedValueError(
                f"--method must be one of {', '.join(CONFORMAL_METHODS)}, got '{method}'."
            )
        _check_new_place(out, force, "--out")
        parent = load_model(model, max_rows=10**9)
        frame, sha = _read_csv(support, "--support")
        rows, ignored = parent.schema.check_frame(frame, with_outcome=True)
        _note_ignored(ignored)
        adapted = adapt_pipeline(parent, rows, sha, coverage, method, recalibrate)
        path = adapted.save(out)
        record = adapted.provenance["adapted_from"]
        recal = "risks recalibrated on them, " if recalibrate else ""
        console.print(
            f"adapted model: {path} ({record['support_rows']} support patients, {recal}"
            f"{coverage:.0%} {record['method']} conformal calibration; support sha256 {sha[:12]}...)"
        )
        if "guard" in record:
            console.print(f"guard: {_guard_words(record['guard'])}", highlight=False)


@app.command()
def predict(
    model: Path = typer.Option(..., help="An adapted model (metamed adapt)."),
    input: Path = typer.Option(..., help="CSV of patients (the model's input columns)."),
    out: Path = typer.Option(..., help="CSV to write: risk and prediction set per patient."),
    id_col: str | None = typer.Option(
        None, help="Column of --input copied to --out to identify patients."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """Risk and conformal prediction set (or interval) for every patient of a CSV."""
    with user_errors():
        import pandas as pd

        from metamed.errors import did_you_mean
        from metamed.serve import load_model, predict_rows

        if out.exists() and (out.is_dir() or not force):
            raise MetamedValueError(
                f"--out {out} exists; "
                + (
                    "it is a folder, give a file name."
                    if out.is_dir()
                    else "rerun with --force to replace it."
                )
            )
        if not out.parent.is_dir():
            raise MetamedValueError(f"--out {out}: the folder {out.parent} does not exist.")
        served = load_model(model, max_rows=10**9)
        frame, _ = _read_csv(input, "--input")
        if id_col is not None and id_col not in frame.columns:
            raise MetamedValueError(
                f"--id-col '{id_col}' is not a column of {input}."
                f"{did_you_mean(id_col, map(str, frame.columns))}"
            )
        rows, ignored = served.schema.check_frame(frame)
        _note_ignored([c for c in ignored if c != id_col])
        columns = predict_rows(served, rows)
        result = pd.DataFrame({"row": range(len(rows))})
        if id_col is not None:
            result.insert(0, id_col, frame[id_col].to_numpy())
        if "risk" in columns:
            result["risk"] = columns["risk"]
            result["prediction_set"] = [
                "{" + ",".join(str(y) for y, held in ((0, h0), (1, h1)) if held) + "}"
                for h0, h1 in zip(columns["holds_0"], columns["holds_1"], strict=True)
            ]
        else:
            for name in ("prediction", "lower", "upper"):
                result[name] = columns[name]
        result["coverage"] = served.coverage
        partial = out.with_name(f".{out.name}.partial")
        result.to_csv(partial, index=False)
        os.replace(partial, out)  # all or nothing: no half-written risks file
        console.print(f"{len(result)} predictions: {out}")


@app.command()
def inspect(
    model: Path = typer.Option(..., help="A model artifact folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Print a model's schema, provenance, lineage, uncertainty and evaluation summary."""
    with user_errors():

        from metamed.serve import load_model

        summary = load_model(model).summary
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        _print_model(summary)


def _print_model(summary: dict) -> None:
    from metamed.serve.validation import CATEGORICAL, NUMERIC_COLUMN

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column()
    outcome = summary.get("outcome") or {}
    facts.add_row("model", Text(f"{summary['id']} ({summary['kind']}, {summary.get('learner')})"))
    facts.add_row("sha256", Text(str(summary["manifest_sha256"])))
    facts.add_row("outcome", Text(f"{outcome.get('column')} ({outcome.get('kind')})"))
    data = summary.get("data") or {}
    if data:
        dataset = data.get("dataset") or {}
        name = dataset.get("name") if isinstance(dataset, dict) else dataset
        facts.add_row(
            "data", Text(f"{name or data.get('source', '?')}; licence {data.get('licence', '?')}")
        )
    training = summary.get("training") or {}
    if training:
        facts.add_row(
            "trained on",
            Text(
                f"{training.get('patients')} patients in {len(training.get('tasks', []))} tasks, "
                f"{training.get('fit_seconds')} s"
            ),
        )
    lineage = summary.get("lineage")
    if lineage:
        parent = lineage.get("parent") or {}
        facts.add_row(
            "adapted from",
            Text(
                f"{parent.get('id')} (sha256 {str(parent.get('manifest_sha256'))[:12]}...) on "
                f"{lineage.get('support_rows')} support patients, support sha256 "
                f"{str(lineage.get('support_sha256'))[:12]}..."
                + (", risks recalibrated on them" if lineage.get("recalibrated") else "")
            ),
        )
        guard = lineage.get("guard")
        if guard:
            facts.add_row("guard", Text(_guard_words(guard)))
    uncertainty = summary.get("uncertainty")
    if uncertainty:
        facts.add_row(
            "uncertainty",
            Text(
                f"{uncertainty['kind']} at {uncertainty['coverage']:.0%} coverage "
                f"({uncertainty['method']}, {uncertainty['calibration_rows']} calibration rows)"
            ),
        )
    console.print(facts)
    table = Table(title="inputs", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("column", "type", "unit", "accepted"):
        table.add_column(col)
    for col in summary.get("features", []):
        if col["type"] == NUMERIC_COLUMN:
            rng = col.get("accepted_range")
            accepted = f"[{rng[0]:.4g}, {rng[1]:.4g}]" if rng else "any number"
        elif col["type"] == CATEGORICAL:
            accepted = ", ".join(col.get("categories", []))
        else:
            accepted = "codes"
        table.add_row(col["name"], col["type"], col.get("unit") or "", Text(accepted))
    console.print(table)
    evaluation = summary.get("evaluation")
    if evaluation:
        table = Table(
            title=f"held-out evaluation ({evaluation['split']} split, {evaluation['draws']} draws; "
            f"held out: {', '.join(evaluation['held_out_tasks'])})",
            box=box.SIMPLE_HEAD,
            title_justify="left",
        )
        table.add_column("metric")
        shots = [str(k) for k in evaluation["shots"]]
        for k in shots:
            table.add_column(f"K={k}", justify="right")
        for metric, by_k in evaluation["metrics"].items():
            cells = []
            for k in shots:
                cell = by_k.get(k)
                cells.append(
                    "-"
                    if not cell or cell["mean"] is None
                    else f"{cell['mean']:.3f} [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"
                )
            table.add_row(metric, *cells)
        console.print(table)
    else:
        console.print(
            "evaluation: none recorded (add [evaluation] to the train config)",
            style="dim",
            markup=False,
        )


def _guard_words(guard: dict) -> str:
    """The adapt-or-not guard's choice for a site, in words."""
    served = {
        "pooled": "the pooled model (adapting did not pay here)",
        "blend": "half the adapted model, half the pooled one",
        "adapted": "the adapted model",
    }.get(str(guard.get("choice")), str(guard.get("choice")))
    return f"serves {served}; {guard.get('reason')}"


@app.command()
def serve(
    models: Path = typer.Option(..., help=MODELS_HELP),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on."),
    max_rows: int = typer.Option(10_000, min=1, help="Most patient rows per request."),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes answering on the port; they share the models folder and the "
        "audit log. One process computes on one core at a time: use 2 on 2 cores.",
    ),
) -> None:
    """Serve the models of a folder over HTTP: adapt, predict, describe (see docs/deploy.md)."""
    with user_errors():
        try:
            import uvicorn

            from metamed.serve.app import WORKER_ENV, create_app, recover_service, service_paths
        except ImportError as error:
            raise MetamedValueError(
                f"metamed serve needs the serve extra ({error.name} is missing): "
                "pip install 'metamed[serve]'."
            ) from None
        from metamed.serve import ModelStore

        if not models.is_dir():
            raise MetamedValueError(f"--models {models}: no such folder.")
        tokens, audit = service_paths(models)
        ids = ModelStore(models).ids()
        err_console.print(
            f"serving {len(ids)} model(s) from {models} on http://{host}:{port} "
            f"(OpenAPI: /docs); audit log: {audit}",
            highlight=False,
        )
        if not tokens.exists():
            err_console.print(
                f"[bold]note:[/] no API tokens yet: every call will be refused until you run "
                f"metamed token create --models {models} --can predict",
                highlight=False,
            )
        settings: dict[str, Any] = {
            "host": host, "port": port, "log_level": "warning", "access_log": False,
        }  # fmt: skip
        if workers == 1:
            uvicorn.run(create_app(models, max_rows=max_rows), **settings)
            return
        recover_service(models)  # once, before any process answers
        os.environ.update(zip(WORKER_ENV, (str(models.resolve()), str(max_rows)), strict=True))
        uvicorn.run("metamed.serve.app:worker_app", factory=True, workers=workers, **settings)


@token_app.command("create")
def token_create(
    models: Path = typer.Option(..., help=MODELS_HELP),
    can: str = typer.Option(..., help="Permissions, comma-separated: predict, adapt."),
    name: str | None = typer.Option(None, help="Who the token is for (default: token-N)."),
) -> None:
    """Create an API token; it is printed once (stdout) and stored only as its hash."""
    with user_errors():
        from metamed.serve.app import service_paths
        from metamed.serve.tokens import TokenStore, parse_permissions

        if not models.is_dir():
            raise MetamedValueError(f"--models {models}: no such folder.")
        store = TokenStore(service_paths(models)[0])
        permissions = parse_permissions(can)
        name = name or f"token-{len(store.list()) + 1}"
        secret = store.create(name, permissions)
        err_console.print(
            f"token '{name}' may {', '.join(permissions)}; it is shown only now:", highlight=False
        )
        typer.echo(secret)


@token_app.command("list")
def token_list(models: Path = typer.Option(..., help=MODELS_HELP)) -> None:
    """List tokens (names and permissions; the secrets are not stored)."""
    with user_errors():
        from metamed.serve.app import service_paths
        from metamed.serve.tokens import TokenStore

        table = Table(box=box.SIMPLE_HEAD)
        for col in ("name", "permissions", "created", "revoked"):
            table.add_column(col)
        for token in TokenStore(service_paths(models)[0]).list():
            table.add_row(
                token.name, ",".join(token.permissions), token.created, token.revoked or ""
            )
        console.print(table)


@token_app.command("revoke")
def token_revoke(
    name: str = typer.Argument(..., help="Name of the token to revoke."),
    models: Path = typer.Option(..., help=MODELS_HELP),
) -> None:
    """Revoke a token: the service refuses it from its next request on."""
    with user_errors():
        from metamed.serve.app import service_paths
        from metamed.serve.tokens import TokenStore

        TokenStore(service_paths(models)[0]).revoke(name)
        console.print(f"token '{name}' revoked")


@app.command()
def audit(
    models: Path = typer.Option(..., help=MODELS_HELP),
    last: int = typer.Option(20, min=1, help="Show the last N entries."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Show the service's audit log (who called what, when, on which model, with which result)."""
    with user_errors():

        from metamed.serve.app import service_paths
        from metamed.serve.audit import read_entries

        entries = list(read_entries(service_paths(models)[1], last))
        if as_json:
            for entry in entries:
                typer.echo(json.dumps(entry))
            return
        table = Table(box=box.SIMPLE_HEAD)
        for col in ("seq", "time", "event", "action", "token", "model", "status", "outcome"):
            table.add_column(col, overflow="fold")
        for e in entries:
            table.add_row(
                str(e["seq"]),
                e["time"],
                e["event"],
                e["action"],
                e["token"] or "-",
                e["model"] or "-",
                "" if e["status"] is None else str(e["status"]),
                Text((e["new_model"] and f"-> {e['new_model']} " or "") + (e["outcome"] or "")),
            )
        console.print(table)


def main() -> None:
    try:
        app()
    except SystemExit as exit_:
        # click reports usage errors with exit code 2 itself; keep that contract.
        sys.exit(exit_.code)
