"""The lazily filled registries are complete for every thread that reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# A fresh interpreter, in which no learner module is imported yet: 8 threads look up an
# adapted model class at the same moment, as a service's first concurrent requests do.
SCRIPT = """
import threading
from metamed.learners.base import ADAPTED_MODELS
barrier, missing = threading.Barrier(8), []
def look():
    barrier.wait()
    if "BinaryAdaptedMLP" not in ADAPTED_MODELS:
        missing.append(1)
threads = [threading.Thread(target=look) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(missing))
"""


def test_threads_reading_the_registry_at_once_all_find_every_class():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert out.stdout.strip() == "0", out.stderr
