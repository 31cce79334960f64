"""SIGKILL in the middle of an adaptation: no partial model, no lost audit entry.

The model under test adapts slowly on purpose (thousands of gradient steps per fold),
so that the kill lands inside the adaptation: the test kills the server as soon as the
adapt call's ``started`` entry is on disk, and checks that its ``finished`` entry never
came (the kill really was mid-adapt).
"""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from metamed.learners import Pipeline  # noqa: E402
from metamed.outputs import STAGING_PREFIX  # noqa: E402
from metamed.serve.app import service_paths  # noqa: E402
from metamed.serve.audit import read_entries  # noqa: E402
from metamed.serve.tokens import TokenStore  # noqa: E402


def test_sigkill_mid_adapt_leaves_no_partial_model_and_loses_no_audit_entry(
    deploy_dir, tmp_path, launch
):
    models = tmp_path / "models"
    shutil.copytree(deploy_dir / "models" / "meta", models / "meta")
    slow = Pipeline.load(models / "meta")
    slow.model.adapt_steps = 3000
    slow.save(models / "slow")
    token = TokenStore(service_paths(models)[0]).create("lab", ["predict", "adapt"])
    headers = {"Authorization": f"Bearer {token}"}
    audit_path = service_paths(models)[1]
    support = pd.read_csv(deploy_dir / "support.csv").drop(columns=["hospital"]).iloc[:30]
    body = {"rows": json.loads(support.to_json(orient="records"))}

    server = launch(models)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            warm = client.post("/v1/models/meta/predict", json={"rows": []}, headers=headers)
        assert warm.status_code == 422  # one audited call before the crash
        with httpx.Client(base_url=server.url, timeout=120) as other:
            import threading

            answers: list = []
            thread = threading.Thread(
                target=lambda: answers.append(_post(other, "/v1/models/slow/adapt", body, headers)),
                daemon=True,
            )
            thread.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                entries = list(read_entries(audit_path))
                if any(e["event"] == "started" for e in entries):
                    break
                time.sleep(0.005)
            time.sleep(0.2)  # into the adaptation proper
            before = list(read_entries(audit_path))
            server.kill()
            thread.join(timeout=30)
    finally:
        server.stop()
    started = [e for e in before if e["event"] == "started"]
    assert len(started) == 1
    request_id = started[0]["request_id"]
    assert not any(e["request_id"] == request_id and e["event"] == "finished" for e in before), (
        "the adaptation finished before the kill; make it slower"
    )
    assert answers == [None]  # the client got no answer
    leftovers = [p for p in models.iterdir() if p.name not in ("meta", "slow", ".metamed-service")]
    assert all(not (p / "manifest.json").exists() for p in leftovers)  # nothing looks like a model

    server = launch(models)  # restart: recovery runs at start-up
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            check_after_restart(client, headers, models, audit_path, before, request_id, body)
    finally:
        server.stop()


def check_after_restart(client, headers, models, audit_path, before, request_id, body):
    """Nothing half-written is left, every entry is kept, and the service works."""
    listed = {m["id"] for m in client.get("/v1/models", headers=headers).json()["models"]}
    assert listed == {"meta", "slow"}
    assert sorted(p.name for p in models.iterdir()) == [".metamed-service", "meta", "slow"]
    assert not list(models.rglob(f"{STAGING_PREFIX}*"))
    after = list(read_entries(audit_path))
    assert after[: len(before)] == before  # every entry written before the kill survived
    ends = [e for e in after if e["request_id"] == request_id and e["event"] != "started"]
    assert [e["event"] for e in ends] == ["interrupted"]
    assert ends[0]["token"] == "lab" and ends[0]["model"] == "slow"
    # and the service still works: adapt and predict on the normal model
    fast = client.post("/v1/models/meta/adapt", json=body, headers=headers)
    assert fast.status_code == 201, fast.text
    rows = {"rows": body["rows"][:2]}
    for row in rows["rows"]:
        row.pop("died")
    answer = client.post(f"/v1/models/{fast.json()['model']}/predict", json=rows, headers=headers)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2


def _post(client, path, body, headers):
    try:
        return client.post(path, json=body, headers=headers)
    except httpx.TransportError:
        return None
