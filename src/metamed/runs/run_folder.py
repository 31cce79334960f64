"""A run folder: the ``--out`` folder of a benchmark, recording finished jobs as they complete.

::

    out/
      .metamed-output        marker (see metamed.outputs): --force may replace this folder
      jobs/
        run.json             what the run is (data checksums, splits, protocol, methods)
        lock                 flock-ed by the live run
        fit-<digest>.json    a finished fit job: its key and meta-training seconds
        score-<digest>/      a finished score job: job.json, results.parquet, predictions.parquet
                           (and decisions.parquet: a guard's decisions)
        cell-<digest>/       a finished cell of a protocol that plans no jobs (the molecules
                           suite: one method on one collection): job.json, results.parquet
      results.csv ...        the tables, config and report, written once all jobs are done

``--resume`` continues a run: it checks that the benchmark is the same one (``run.json``),
skips the score jobs recorded there, and refits only the methods that still have score
jobs to do (a fit is a pure function of its job, so the refit is the same model).

Traps this module avoids:

- **A half-written record.** Each record is written under a temporary name in ``jobs/``
  and renamed into place (a score job's two tables as one folder), so a run killed at any
  moment leaves whole records or none; the next run removes the temporary leftovers.
- **Mixing two benchmarks.** A resume whose spec or data differ from ``run.json`` is
  refused with the first differences, before any work.
- **Tables that differ with the path they took.** The final tables are always rebuilt from
  the records on disk, so an interrupted-and-resumed run and an uninterrupted one write
  the same bytes.
- **Mixing two devices.** A run on a GPU (``--device``) records its device in
  ``run.json`` (a CPU run, the default, records nothing, so every older folder still
  resumes); a resume on another device is refused before any work
  (:meth:`RunFolder.check_device`): one folder, one device's numbers.
- **Two runs writing one folder.** The live run holds an exclusive ``flock`` on
  ``jobs/lock``; the kernel releases it when the process dies, SIGKILL included.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from metamed.errors import MetamedValueError, OutputPlaceError
from metamed.evaluation.protocol import FitJob, Plan, ScoreJob, ScoreResult
from metamed.outputs import check_output_place, staged_output

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, a concurrent run is not detected
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "JOBS_DIR", "CellCounter", "RunFolder", "cell_key", "check_suite_places", "peak_memory_mib",
    "write_suite_page",
]  # fmt: skip

JOBS_DIR = "jobs"
_RUN = "run.json"
_TMP = ".tmp-"
#: Bumped when the record layout changes; an older folder is then refused, not misread.
FORMAT = 1


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _canonical(value: Any) -> Any:
    """``value`` as plain JSON data (tuples as lists, unknown objects as strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class RunFolder:
    """The job records of one benchmark run in ``out/jobs``; open it with :meth:`open`."""

    def __init__(self, out: Path, identity: dict[str, Any], deferred: bool = False) -> None:
        self.out, self.jobs, self.identity = out, out / JOBS_DIR, identity
        self.deferred = deferred
        self._lock_fd: int | None = None
        self._started = False
        self._fits: dict[str, float] = {}  # deferred records, written by write_into
        self._scores: dict[str, tuple[ScoreJob, ScoreResult]] = {}
        self._cells: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {}

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def check(cls, out: str | os.PathLike[str], *, resume: bool, force: bool) -> Path:
        """Check ``out`` before any work: usable, and empty unless ``force`` or ``resume``."""
        if resume and force:
            raise MetamedValueError(
                "--resume continues the run in --out and --force replaces it; give one of them."
            )
        place = check_output_place(out, merge=True)  # usable; a killed run's staging removed
        if not resume:
            if not force and (place / JOBS_DIR / _RUN).is_file():
                raise OutputPlaceError(
                    f"--out {place} holds a benchmark run (finished or interrupted); continue "
                    "it with --resume, replace it with --force, or choose a new or empty folder."
                )
            return check_output_place(out, force=force)
        if place.exists() and any(place.iterdir()) and not (place / JOBS_DIR / _RUN).is_file():
            raise OutputPlaceError(
                f"--resume: {place} holds no resumable run ({JOBS_DIR}/{_RUN} is missing); it "
                "was not started by this version of `metamed benchmark`. Run without --resume "
                "into a new folder, or with --force to replace it."
            )
        return place

    @staticmethod
    def check_device(out: Path, device: str) -> None:
        """``--resume``: refuse, before any work, a folder whose run computed on another
        device (``device``: ``"cpu"`` or ``"cuda"``, see :func:`device_kind`).

        Why refuse instead of keeping the devices' cells apart: a GPU's floating-point
        sums differ from the CPU's in the last bits, so a folder (and the page made from
        it) that mixed the two would hold numbers that no single command reproduces, and
        times that compare unlike machines.
        """
        recorded = out / JOBS_DIR / _RUN
        try:
            ran = json.loads(recorded.read_text()).get("device", "cpu")
        except (OSError, ValueError, AttributeError):
            return  # no run here, or an unreadable one: open() says so
        if ran != device:
            raise MetamedValueError(
                f"--resume: the run in {out} computed on {ran}, this one would compute on "
                f"{device}; a run folder holds one device's results (a GPU's sums differ from "
                f"the CPU's in the last bits). Resume with --device {ran}, or run into a new "
                "--out (or --force)."
            )

    @classmethod
    def open(
        cls,
        out: Path,
        identity: dict[str, Any],
        *,
        resume: bool,
        replace: bool = False,
        device: str = "cpu",
    ) -> RunFolder:
        """Reopen the run in ``out`` to resume it, or prepare a new one there.

        ``out`` was checked with :meth:`check`.  ``identity`` says what the run is; resuming
        a folder recorded for another identity is an error naming the first differences.
        A new run writes nothing until its first job finishes, so a run that fails before
        (a bad hyperparameter found by the first fit) leaves ``out`` as it was.

        ``replace`` (``--force`` over an older run): the older run must stay whole until
        the new one has succeeded, so the records are kept in memory and written with the
        tables in one commit (:meth:`write_into`); such a run cannot be resumed if killed.
        """
        # the device only where it is not the CPU: a CPU run's identity is what it always was
        on_device = {} if device == "cpu" else {"device": device}
        identity = _canonical({"format": FORMAT, **identity, **on_device})
        recorded = out / JOBS_DIR / _RUN
        folder = cls(out, identity, deferred=replace and not resume)
        if resume and recorded.is_file():
            folder._lock_fd = cls._lock(out / JOBS_DIR)
            try:
                before = json.loads(recorded.read_text())
            except (OSError, ValueError) as error:
                folder.close()
                raise OutputPlaceError(f"--resume: cannot read {recorded} ({error}).") from None
            if before.get("device", "cpu") != device:
                folder.close()
                cls.check_device(out, device)
            if before != identity:
                folder.close()
                raise MetamedValueError(_differences(before, identity, out))
            folder._remove_leftovers()
            folder._started = True
        return folder

    def _start(self) -> None:
        """Replace whatever ``out`` held (all or nothing, via staged_output); record the run."""
        if self._started:
            return
        with staged_output(self.out) as staging:
            (staging / JOBS_DIR).mkdir()
            (staging / JOBS_DIR / _RUN).write_text(json.dumps(self.identity, indent=2))
        self._lock_fd = self._lock(self.jobs)
        self._started = True

    @staticmethod
    def _lock(jobs: Path) -> int | None:
        if fcntl is None:
            return None
        fd = os.open(jobs / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputPlaceError(
                f"--out {jobs.parent}: another metamed run is writing there now; wait for it "
                "to finish (or stop it), then resume."
            ) from None
        return fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _remove_leftovers(self) -> None:
        for entry in self.jobs.glob(f"{_TMP}*"):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    # -- records -------------------------------------------------------------------------------
    def _fit_path(self, key: str) -> Path:
        return _fit_path(self.jobs, key)

    def _score_path(self, key: str) -> Path:
        return _score_path(self.jobs, key)

    @property
    def started(self) -> bool:
        """True once the folder holds this run's records (``--resume`` can continue it)."""
        return self._started

    def record_fit(self, job: FitJob, seconds: float) -> None:
        if self.deferred:
            self._fits[job.key] = seconds
            return
        self._start()
        _write_fit(self.jobs, job.key, seconds)

    def record_score(self, job: ScoreJob, result: ScoreResult) -> None:
        if self.deferred:
            self._scores[job.key] = (job, result)
            return
        self._start()
        _write_score(self.jobs, job.key, result)

    def record_cell(self, key: str, results: pd.DataFrame, info: dict[str, Any]) -> None:
        """A finished cell of a protocol without a job plan: its table and JSON ``info``."""
        if self.deferred:
            self._cells[key] = (results, _canonical(info))
            return
        self._start()
        _write_cell(self.jobs, key, results, info)

    def cell(self, key: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """The cell recorded under ``key`` (its table and info), or None."""
        if self.deferred:
            return self._cells.get(key)
        path = _cell_path(self.jobs, key)
        if not self._started or not (path / "job.json").is_file():
            return None
        info = json.loads((path / "job.json").read_text())["info"]
        return pd.read_parquet(path / "results.parquet"), info

    def write_into(self, staging: Path) -> None:
        """Deferred records: write them into ``staging`` (committed with the tables)."""
        if not self.deferred:
            return
        jobs = staging / JOBS_DIR
        jobs.mkdir()
        (jobs / _RUN).write_text(json.dumps(self.identity, indent=2))
        for key, seconds in self._fits.items():
            _write_fit(jobs, key, seconds)
        for key, (_, result) in self._scores.items():
            _write_score(jobs, key, result)
        for key, (results, info) in self._cells.items():
            _write_cell(jobs, key, results, info)

    def done(self, plan: Plan) -> set[str]:
        """Keys of the plan's score jobs recorded here."""
        if self.deferred:
            return set(self._scores)
        if not self._started:
            return set()
        return {s.key for s in plan.scores if (self._score_path(s.key) / "job.json").is_file()}

    def fit_seconds(self, plan: Plan) -> dict[str, float]:
        if self.deferred:
            return dict(self._fits)
        seconds = {}
        for fit in plan.fits:
            path = self._fit_path(fit.key)
            if path.is_file():
                seconds[fit.key] = float(json.loads(path.read_text())["seconds"])
        return seconds

    def scores(self, plan: Plan) -> dict[str, ScoreResult]:
        """Every recorded score job of the plan, read back."""
        if self.deferred:
            return {key: result for key, (_, result) in self._scores.items()}
        out = {}
        for job in plan.scores:
            path = self._score_path(job.key)
            if (path / "job.json").is_file():
                decisions = path / "decisions.parquet"  # guard methods only
                out[job.key] = ScoreResult(
                    pd.read_parquet(path / "results.parquet"),
                    pd.read_parquet(path / "predictions.parquet"),
                    *([pd.read_parquet(decisions)] if decisions.is_file() else []),
                )
        return out

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.close()


# -- helpers of the protocols that record cells (the molecules and imaging suites) ------------
def cell_key(method: str, learner: Any) -> str:
    """A cell's record key: the method id and every hyperparameter of its learner, so a
    changed method is redone on ``--resume`` and an unchanged one is not."""
    params = {k: v for k, v in learner.get_params().items() if k != "progress"}
    return json.dumps({"method": method, "params": params}, sort_keys=True, default=repr)


class CellCounter:
    """Progress as (what, cells done, cells in the suite), as the suite's other runs report."""

    def __init__(self, progress: Callable[[str, float, int], object] | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def say(self, what: str) -> None:
        if self.progress is not None:
            self.progress(what, self.done, self.total)


def check_suite_places(
    out: str | os.PathLike[str],
    folders: list[str],
    page: str | os.PathLike[str] | None,
    *,
    resume: bool,
    force: bool,
) -> tuple[Path, dict[str, Path]]:
    """A cell-recording suite's outputs checked before any work: ``out`` itself, the
    ``page`` path (a file, not a folder) and each entry's run folder ``out/<folder>``."""
    out_dir = check_output_place(out, merge=True)
    if page is not None and Path(page).exists() and not Path(page).is_file():
        raise MetamedValueError(
            f"--page {page} is a folder; give a file path such as docs/results/<suite>.md."
        )
    places = {f: RunFolder.check(out_dir / f, resume=resume, force=force) for f in folders}
    return out_dir, places


def write_suite_page(
    out_dir: Path,
    name: str,
    text: str,
    tables: dict[str, pd.DataFrame],
    page: str | os.PathLike[str] | None,
) -> Path:
    """Write a suite's page ``out_dir/<name>.md`` with its ``tables`` (CSV, by file name)
    all or nothing, copy it to ``page`` when given, and return where the page is."""
    with staged_output(out_dir, merge=True) as staging:
        (staging / f"{name}.md").write_text(text)
        for file, table in tables.items():
            table.to_csv(staging / file, index=False)
    if page is None:
        return out_dir / f"{name}.md"
    Path(page).parent.mkdir(parents=True, exist_ok=True)
    Path(page).write_text(text)
    return Path(page)


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _fit_path(jobs: Path, key: str) -> Path:
    return jobs / f"fit-{_digest(key)}.json"


def _score_path(jobs: Path, key: str) -> Path:
    return jobs / f"score-{_digest(key)}"


def _cell_path(jobs: Path, key: str) -> Path:
    return jobs / f"cell-{_digest(key)}"


def _write_cell(jobs: Path, key: str, results: pd.DataFrame, info: dict[str, Any]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=_TMP, dir=jobs))
    results.to_parquet(tmp / "results.parquet", index=False)
    (tmp / "job.json").write_text(json.dumps({"key": key, "info": info}, default=str))
    target = _cell_path(jobs, key)
    if target.exists():  # recorded already: keep the first
        shutil.rmtree(tmp)
        return
    os.rename(tmp, target)  # one rename: the record appears whole or not at all


def _write_fit(jobs: Path, key: str, seconds: float) -> None:
    fd, tmp = tempfile.mkstemp(prefix=_TMP, dir=jobs)
    with os.fdopen(fd, "w") as handle:
        json.dump({"key": key, "seconds": seconds}, handle)
    os.replace(tmp, _fit_path(jobs, key))


def _write_score(jobs: Path, key: str, result: ScoreResult) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=_TMP, dir=jobs))
    (tmp / "job.json").write_text(json.dumps({"key": key}))
    result.results.to_parquet(tmp / "results.parquet", index=False)
    result.predictions.to_parquet(tmp / "predictions.parquet", index=False)
    if len(result.decisions):
        result.decisions.to_parquet(tmp / "decisions.parquet", index=False)
    target = _score_path(jobs, key)
    if target.exists():  # recorded already (a resumed run redid it): keep the first
        shutil.rmtree(tmp)
        return
    os.rename(tmp, target)  # one rename: the record appears whole or not at all


def _differences(before: dict[str, Any], now: dict[str, Any], out: Path) -> str:
    keys = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    shown = "; ".join(
        f"{k}: was {json.dumps(before.get(k))[:80]}, now {json.dumps(now.get(k))[:80]}"
        for k in keys[:2]
    )
    return (
        f"--resume: the run in {out} is a different benchmark ({shown}). Resume with the "
        "same command and data, or start a new run (another --out, or --force)."
    )
