"""What a suite's dataset run cost: wall time, CPU time and the machine's load, across resumes.

A results page quotes each dataset's time, and a scale goal ("under 10 minutes on 2
cores") is judged from it.  Two things made the bare wall time of the last invocation
misleading: on a shared machine a run waits for cores (wall time far above CPU time, at
a load average above the core count), and a run continued with ``--resume`` timed only
its last invocation (re-collecting finished jobs: seconds, for an hour of work).  So
every invocation adds its wall and CPU seconds and the load it saw to a ledger in the
suite's folder (``timings.json``, one entry per dataset folder); a fresh run (not
``--resume``) starts its entry again.  CPU time is this process's and that of the
worker processes it has reaped (``getrusage``), user plus system.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = ["RunCost", "Stopwatch", "record_cost"]

LEDGER = "timings.json"


@dataclass(frozen=True)
class RunCost:
    """Cost of one dataset's run, summed over its invocations."""

    wall_s: float
    cpu_s: float
    #: highest 1-minute load average seen at the start or end of an invocation
    max_load: float
    cores: int
    invocations: int = 1
    #: a resumed run whose earlier invocations left no ledger entry (made before the
    #: ledger existed): the sums miss their cost
    untimed_before: bool = False

    def describe(self) -> str:
        """E.g. ``"1208 s wall, 440 s of CPU (load average up to 7.9 on 2 cores)"``."""
        over = f" over {self.invocations} invocations (resumed)" if self.invocations > 1 else ""
        missing = "; earlier invocations were not timed" if self.untimed_before else ""
        return (
            f"{self.wall_s:.0f} s wall, {self.cpu_s:.0f} s of CPU{over} (load average up to "
            f"{self.max_load:.1f} on {self.cores} cores{missing})"
        )


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


class Stopwatch:
    """Measures one invocation: ``watch = Stopwatch(); ...; cost = watch.stop()``."""

    def __init__(self) -> None:
        self._wall, self._cpu, self._load = time.perf_counter(), _cpu_s(), os.getloadavg()[0]

    def stop(self) -> RunCost:
        return RunCost(
            wall_s=time.perf_counter() - self._wall,
            cpu_s=_cpu_s() - self._cpu,
            max_load=max(self._load, os.getloadavg()[0]),
            cores=os.cpu_count() or 1,
        )


def record_cost(suite_folder: Path, folder: str, cost: RunCost, resumed: bool) -> RunCost:
    """Add ``cost`` to ``folder``'s entry of the ledger; return the entry's total.

    ``resumed``: the invocation continued a run folder that already held finished jobs.
    Otherwise the entry starts again.
    """
    path = Path(suite_folder) / LEDGER
    ledger = json.loads(path.read_text()) if path.is_file() else {}
    before = ledger.get(folder) if resumed else None
    if resumed and before is None:
        cost = replace(cost, untimed_before=True)
    elif before is not None:
        cost = RunCost(
            wall_s=before["wall_s"] + cost.wall_s,
            cpu_s=before["cpu_s"] + cost.cpu_s,
            max_load=max(before["max_load"], cost.max_load),
            cores=cost.cores,
            invocations=before["invocations"] + 1,
            untimed_before=before.get("untimed_before", False),
        )
    ledger[folder] = asdict(cost)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ledger, indent=1))
    tmp.replace(path)
    return cost
