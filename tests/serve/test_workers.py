"""`metamed serve --workers 2`: two server processes share the models folder and the audit log."""

from __future__ import annotations

import shutil

import httpx
import pandas as pd

from metamed.serve.app import service_paths
from metamed.serve.audit import read_entries
from metamed.serve.tokens import TokenStore


def rows(path, drop) -> list[dict]:
    return pd.read_csv(path).drop(columns=drop).to_dict(orient="records")


def test_two_processes_serve_one_folder_and_log_every_call_once(deploy_dir, tmp_path, launch):
    models = tmp_path / "models"
    shutil.copytree(deploy_dir / "models" / "meta", models / "meta")
    headers = {"Authorization": f"Bearer {TokenStore(service_paths(models)[0]).create('ehr', ['predict', 'adapt'])}"}  # fmt: skip
    support = rows(deploy_dir / "support.csv", ["hospital"])
    patients = rows(deploy_dir / "patients.csv", ["hospital", "patient"])[:2]
    server = launch(models, workers=2)
    try:
        with httpx.Client(base_url=server.url, timeout=60, headers=headers) as client:
            adapted = client.post("/v1/models/meta/adapt", json={"rows": support})
        assert adapted.status_code == 201, adapted.text
        model = adapted.json()["model"]
        answers, processes = [], set()
        for _ in range(80):
            # A new connection each time, which either process may accept; both requests
            # on it go to the same process, so the health check says which one answered.
            with httpx.Client(base_url=server.url, timeout=60, headers=headers) as client:
                processes.add(client.get("/v1/health").json()["process"])
                answer = client.post(f"/v1/models/{model}/predict", json={"rows": patients})
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
            if len(processes) == 2 and len(answers) >= 10:
                break
    finally:
        server.stop()
    # Both processes answered, so the one that did not adapt found the new model on disk.
    assert len(processes) == 2
    assert all(a == answers[0] for a in answers)
    entries = list(read_entries(service_paths(models)[1]))
    predicts = [e for e in entries if e["action"] == "predict"]
    assert len(predicts) == len(answers) and all(e["status"] == 200 for e in predicts)
    assert len({e["request_id"] for e in predicts}) == len(predicts)
    adapts = [e for e in entries if e["action"] == "adapt"]
    assert [e["event"] for e in adapts] == ["started", "finished"]
    assert adapts[1]["new_model"] == model
