"""Load on the adaptation service, on loopback: predictions/s, latency, adaptation time.

A benchmark, not a test: it starts ``metamed serve`` in its own process on 127.0.0.1
(a free port), once per ``--workers`` count, and from this process

- adapts the meta-trained model to ``--adapt-repeats`` different samples of 200 support
  patients (each a new model: CV+ conformal, 11 adaptations per call), timing each
  POST .../adapt end to end, and the same adaptation in process without HTTP;
- sends a bounded number of POST .../predict requests with batches of 1 and of 100
  patients, from 1 connection (sequential: latency) and from ``--clients`` concurrent
  keep-alive connections (throughput), recording each request's latency.

The client is one asyncio loop writing raw HTTP/1.1 on its streams, so that it costs the
shared cores little; its CPU time and the server processes' are both measured and
reported.  Every request is audited (fsync) as in production.  The model: ``fomaml``
(MLP 64-64) meta-trained briefly on 8 simulated hospitals (9 inputs, one categorical).

Run::

    python benchmarks/serve_load.py                     # writes benchmarks/results/serve_load.{json,md}
    python benchmarks/serve_load.py --requests 300 --clients 4 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_model(models: Path) -> tuple[object, list[dict], list[dict]]:
    """Meta-train the benchmark's model; return it, the new site's rows and its patients."""
    from metamed.data import make_synthetic_cohort
    from metamed.data.preprocess import Preprocessor
    from metamed.learners import Pipeline, make_learner
    from metamed.tasks import TaskSet, make_tasks

    cohort = make_synthetic_cohort(n_tasks=9, n_per_task=[300] * 8 + [1400], seed=0)
    taskset = TaskSet(cohort)
    train = taskset.names[:8]
    prep = Preprocessor(cohort.schema).fit(taskset.frames(train))
    learner = make_learner("fomaml", meta_iterations=100, random_state=0)
    learner.meta_fit(make_tasks(taskset, train, prep))
    pipeline = Pipeline(prep, learner)
    pipeline.save(models / "meta")
    site = taskset.frame(taskset.names[8]).drop(columns=["site"]).reset_index(drop=True)
    rows = json.loads(site.to_json(orient="records"))
    patients = [{k: v for k, v in r.items() if k != "outcome"} for r in rows]
    return pipeline, rows, patients


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and of its child processes, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


async def _connection(port: int, request: bytes, n: int, latencies: list, failures: list) -> None:
    """One keep-alive connection sending ``request`` ``n`` times, one after another."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(n):
            start = time.perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                failures.append(status)
    finally:
        writer.close()
        await writer.wait_closed()


def load(port: int, server_pid: int, request: bytes, clients: int, requests: int) -> dict:
    """``requests`` POSTs over ``clients`` concurrent keep-alive connections.

    The client is one asyncio loop writing raw HTTP/1.1 on its streams (no HTTP library,
    no threads), so that it takes as little of the shared cores as it can; its CPU time
    and the server's are both measured.
    """
    latencies: list[float] = []
    failures: list[int] = []
    per_client = requests // clients

    async def run() -> None:
        await asyncio.gather(
            *(_connection(port, request, per_client, latencies, failures) for _ in range(clients))
        )

    server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
    start = time.perf_counter()
    asyncio.run(run())
    wall = time.perf_counter() - start
    client_cpu, server_cpu = time.process_time() - client_cpu, cpu_seconds(server_pid) - server_cpu
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {sorted(set(failures))}")
    return {
        "clients": clients,
        "requests": len(latencies),
        "seconds": wall,
        "requests_per_s": len(latencies) / wall,
        "client_cpu_s": client_cpu,
        "server_cpu_s": server_cpu,
        "client_cpu_share": client_cpu / max(client_cpu + server_cpu, 1e-9),
        "server_cpu_ms_per_request": 1000 * server_cpu / len(latencies),
        **percentiles(latencies),
    }


def http_request(path: str, body: bytes, headers: dict) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 POST."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def fsync_latency(folder: Path, n: int = 200) -> dict[str, float]:
    """p50 and p99 of one small write + fsync in ``folder``, in ms."""
    times = []
    fd = os.open(folder / "fsync.probe", os.O_WRONLY | os.O_CREAT)
    try:
        for _ in range(n):
            os.write(fd, b"x" * 256)
            start = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    ms = np.asarray(times) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def start_server(models: Path, workers: int) -> tuple[subprocess.Popen, int]:
    """``metamed serve`` on a free loopback port, answering; (process, port)."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from metamed.cli import main; main()",
            "serve",
            "--models",
            str(models),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],  # fmt: skip
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(1200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                return server, port
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


def measure_adaptation(url: str, headers: dict, rows: list, pipeline, repeats: int) -> dict:
    """POST .../adapt of ``repeats`` samples of 200 rows, and the same in process."""
    import pandas as pd

    rng = np.random.default_rng(0)
    over_http, in_process, model_id = [], [], None
    for _ in range(repeats):
        support = [rows[i] for i in rng.choice(len(rows), 200, replace=False)]
        body = json.dumps({"rows": support}).encode()
        start = time.perf_counter()
        answer = httpx.post(
            f"{url}/v1/models/meta/adapt", content=body, headers=headers, timeout=120
        )
        over_http.append(time.perf_counter() - start)
        assert answer.status_code == 201, answer.text
        model_id = answer.json()["model"]
        frame = pd.DataFrame(support)
        start = time.perf_counter()
        pipeline.adapt(frame, coverage=0.9)
        in_process.append(time.perf_counter() - start)
    return {
        "http_median_s": statistics.median(over_http),
        "http_max_s": max(over_http),
        "in_process_median_s": statistics.median(in_process),
        "repeats": repeats,
        "method": "cv+ (10 folds): 11 adaptations",
        "model": model_id,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="predict requests per setting")
    parser.add_argument(
        "--clients", default="8,32,64", help="numbers of concurrent clients, comma-separated"
    )
    parser.add_argument(
        "--workers",
        default="1,2",
        help="server processes (metamed serve --workers), comma-separated",
    )
    parser.add_argument("--adapt-repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load")
    args = parser.parse_args()
    concurrency = [int(c) for c in args.clients.split(",")]

    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from metamed.serve.app import service_paths
    from metamed.serve.tokens import TokenStore

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    models = work / "models"
    load_before = os.getloadavg()
    pipeline, rows, patients = build_model(models)
    secret = TokenStore(service_paths(models)[0]).create("bench", ["predict", "adapt"])
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    settings, adaptation, failed = {}, None, {}
    try:
        for workers in [int(w) for w in args.workers.split(",")]:
            try:
                server, port = start_server(models, workers)
            except RuntimeError as error:
                if adaptation is None:
                    raise
                failed[workers] = f"the server did not start ({error})"
                continue
            try:
                if adaptation is None:
                    adaptation = measure_adaptation(
                        f"http://127.0.0.1:{port}", headers, rows, pipeline, args.adapt_repeats
                    )
                predict_path = f"/v1/models/{adaptation['model']}/predict"
                for batch in (1, 100):
                    body = json.dumps({"rows": patients[:batch]}).encode()
                    request = http_request(predict_path, body, headers)
                    load(port, server.pid, request, 8, 400)  # warm-up (every worker)
                    for clients in (1, *concurrency):
                        requests = args.requests if clients > 1 else args.requests // 4
                        result = load(port, server.pid, request, clients, requests)
                        result["predictions_per_s"] = result["requests_per_s"] * batch
                        settings[f"workers{workers}_batch{batch}_clients{clients}"] = {
                            "workers": workers, "batch": batch, **result,
                        }  # fmt: skip
            except (RuntimeError, OSError, AssertionError) as error:  # reported, not hidden
                if adaptation is None:
                    raise
                failed[workers] = f"{type(error).__name__}: {error}"
            finally:
                server.terminate()
                server.wait(timeout=60)
        fsync = fsync_latency(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert adaptation is not None
    write_report(args, load_before, adaptation, settings, fsync, failed)


def write_report(
    args, load_before, adaptation: dict, settings: dict, fsync: dict, failed: dict
) -> None:
    report = {
        "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "adapt_200_support": adaptation,
        "predict": settings,
        "fsync_ms": fsync,
        "failed": failed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    single = [s for s in settings.values() if s["batch"] == 1]
    best = max(single, key=lambda s: s["predictions_per_s"])
    alone = min((s for s in single if s["clients"] == 1), key=lambda s: s["p99_ms"])
    shares = [s["client_cpu_share"] for s in settings.values()]
    adapt_s = adaptation["http_median_s"]
    lines = [
        "# Service load on loopback (`benchmarks/serve_load.py`)",
        "",
        f"Command: `{report['command'].strip()}`",
        "",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} CPUs, load "
        f"average {load_before[0]:.1f} before and {report['machine']['load_average_after'][0]:.1f} "
        "after. Client and server share the cores. The client is one asyncio process writing "
        "raw HTTP/1.1 on keep-alive connections; it took "
        f"{min(shares):.0%} to {max(shares):.0%} of the CPU time that client and server used.",
        "",
        "## Adaptation from 200 support patients (CV+ conformal, 11 adaptations)",
        "",
        "| | median | max |",
        "|---|---|---|",
        f"| POST .../adapt (parse, check, adapt, save artifact, audit) | "
        f"{adaptation['http_median_s']:.3f} s | {adaptation['http_max_s']:.3f} s |",
        f"| in process (`Pipeline.adapt(coverage=0.9)`) | "
        f"{adaptation['in_process_median_s']:.3f} s | |",
        "",
        "## Prediction",
        "",
        "Workers: server processes (`metamed serve --workers`); clients: concurrent keep-alive "
        "connections. Server CPU is the server processes' user + system time per request; "
        "client share, the client's part of all CPU time used.",
        "",
        "| workers | batch | clients | requests | predictions/s | requests/s | p50 | p99 "
        "| server CPU per request | client share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in settings.values():
        lines.append(
            f"| {s['workers']} | {s['batch']} | {s['clients']} | {s['requests']} | "
            f"{s['predictions_per_s']:.0f} | {s['requests_per_s']:.0f} | {s['p50_ms']:.1f} ms | "
            f"{s['p99_ms']:.1f} ms | {s['server_cpu_ms_per_request']:.2f} ms | "
            f"{s['client_cpu_share']:.0%} |"
        )
    lines += [f"\n**Failed** with {w} worker(s): {why}" for w, why in failed.items()]
    lines += [
        "",
        "Concurrent predict calls on one model in one process are batched "
        "(`metamed.serve.batching`): they wait on the server's event loop, holding no thread, "
        "and the calls that arrive while a batch is computed (in a worker thread) share the "
        "next one. Every call is answered once its own audit entry is on disk (group commit: "
        "one fsync for all entries waiting).",
        "",
        f"An fsync on this disk (the floor of every answer's latency): p50 {fsync['p50']:.1f} ms, "
        f"p99 {fsync['p99']:.1f} ms.",
        "",
        "Goals of issue 10 on 2 cores:",
        "",
        f"- adaptation under 1 s: {_verdict(adapt_s < 1)} ({adapt_s:.2f} s median over HTTP);",
        f"- single-patient p99 under 20 ms: {_verdict(alone['p99_ms'] < 20)} "
        f"({alone['p99_ms']:.1f} ms from one client, {alone['workers']} worker(s));",
        f"- at least 1,000 single-patient predictions/s: "
        f"{_verdict(best['predictions_per_s'] >= 1000)} ({best['predictions_per_s']:.0f}/s "
        f"from {best['clients']} clients, {best['workers']} worker(s)"
        + (
            ""
            if best["predictions_per_s"] >= 1000
            else f"; {1000 - best['predictions_per_s']:.0f}/s short, "
            f"{best['predictions_per_s'] / 1000:.0%} of the goal"
        )
        + ").",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
