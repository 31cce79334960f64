"""`metamed serve` over real HTTP on 127.0.0.1: adapt, predict, tokens, validation, audit."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from metamed.learners import Pipeline  # noqa: E402
from metamed.serve.app import service_paths  # noqa: E402
from metamed.serve.audit import read_entries  # noqa: E402
from metamed.serve.tokens import TokenStore  # noqa: E402


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture(scope="module")
def service(deploy_dir, tmp_path_factory, launch):
    models = tmp_path_factory.mktemp("service") / "models"
    shutil.copytree(deploy_dir / "models" / "meta", models / "meta")
    tokens = TokenStore(service_paths(models)[0])
    secrets = {
        "clinic": tokens.create("clinic", ["predict"]),
        "lab": tokens.create("lab", ["predict", "adapt"]),
        "gone": tokens.create("gone", ["predict", "adapt"]),
    }
    tokens.revoke("gone")
    server = launch(models)
    client = httpx.Client(base_url=server.url, timeout=60)
    yield server, client, secrets
    client.close()
    server.stop()


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def site_model(service, deploy_dir):
    server, client, secrets = service
    support = records(pd.read_csv(deploy_dir / "support.csv").drop(columns=["hospital"]))
    answer = client.post(
        "/v1/models/meta/adapt", json={"rows": support}, headers=auth(secrets["lab"])
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_health_and_openapi_need_no_token(service):
    _, client, _ = service
    assert client.get("/v1/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/health", "/v1/models", "/v1/models/{model_id}",
                 "/v1/models/{model_id}/adapt", "/v1/models/{model_id}/predict"):  # fmt: skip
        assert path in paths
    body = paths["/v1/models/{model_id}/predict"]["post"]["requestBody"]["content"]
    assert "rows" in body["application/json"]["schema"]["properties"]


def test_calls_without_a_valid_token_are_refused(service):
    _, client, secrets = service
    for headers in (
        {},
        auth("mm_not-a-token"),
        auth(secrets["gone"]),
        {"Authorization": "Basic x"},
    ):
        assert client.get("/v1/models", headers=headers).status_code == 401
        answer = client.post("/v1/models/meta/predict", json={"rows": []}, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"
    answer = client.post(
        "/v1/models/meta/adapt", json={"rows": []}, headers=auth(secrets["clinic"])
    )
    assert answer.status_code == 403
    assert "may predict, not adapt" in answer.json()["error"]["message"]


def test_adapt_then_predict_matches_the_model_on_disk(service, site_model, deploy_dir):
    server, client, secrets = service
    assert site_model["created"] and site_model["parent"] == "meta"
    assert site_model["support_rows"] == 60 and site_model["method"] == "cv+"
    model_id = site_model["model"]
    listed = client.get("/v1/models", headers=auth(secrets["clinic"])).json()["models"]
    assert {m["id"] for m in listed} == {"meta", model_id}
    info = client.get(f"/v1/models/{model_id}", headers=auth(secrets["clinic"])).json()
    assert info["lineage"]["parent"]["id"] == "meta"
    assert info["lineage"]["support_sha256"] == site_model["support_sha256"]
    assert info["uncertainty"]["coverage"] == 0.9

    patients = pd.read_csv(deploy_dir / "patients.csv").drop(columns=["hospital", "patient"])
    answer = client.post(f"/v1/models/{model_id}/predict", json={"rows": records(patients)},
                         headers=auth(secrets["clinic"]))  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["coverage"] == 0.9 and body["outcome"] == "binary"
    local = Pipeline.load(server.models / model_id)
    np.testing.assert_allclose([p["risk"] for p in body["predictions"]],
                               local.predict_proba(patients), rtol=1e-12)  # fmt: skip
    sets = local.predict_set(patients)
    assert [p["set"] for p in body["predictions"]] == [
        [y for y in (0, 1) if row[y]] for row in sets
    ]
    # the same support rows again: the same (seeded) model, not a second copy
    again = client.post("/v1/models/meta/adapt", json={"rows": records(
        pd.read_csv(deploy_dir / "support.csv").drop(columns=["hospital"]))},
        headers=auth(secrets["lab"]))  # fmt: skip
    assert again.status_code == 200 and again.json()["model"] == model_id
    assert not again.json()["created"]


def test_a_large_predict_body_is_answered_as_its_rows_are_alone(service, site_model, deploy_dir):
    """Bodies over the inline size are parsed off the event loop: same answers."""
    from metamed.serve.app import _PARSE_INLINE_BYTES

    _, client, secrets = service
    patients = records(pd.read_csv(deploy_dir / "patients.csv")
                       .drop(columns=["hospital", "patient"]))  # fmt: skip
    rows = (patients * (500 // len(patients) + 1))[:500]
    body = json.dumps({"rows": rows}, indent=8).encode()  # whitespace makes it large
    assert len(body) > _PARSE_INLINE_BYTES
    url = f"/v1/models/{site_model['model']}/predict"
    large = client.post(url, content=body, headers={**auth(secrets["clinic"]),
                                                    "Content-Type": "application/json"})
    small = client.post(url, json={"rows": patients[:3]}, headers=auth(secrets["clinic"]))
    assert large.status_code == small.status_code == 200, large.text
    got, want = large.json()["predictions"], small.json()["predictions"]
    assert len(got) == 500 and [p["set"] for p in got[:3]] == [p["set"] for p in want]
    np.testing.assert_allclose([p["risk"] for p in got[:3]], [p["risk"] for p in want], rtol=1e-5)


@pytest.mark.parametrize(
    ("change", "status", "field", "message"),
    [
        (lambda r: [{k: v for k, v in r[0].items() if k != "lactate"}], 422, "lactate",
         "lacks input column 'lactate'"),
        (lambda r: [{**r[0], "lactat": 1.0}], 422, "lactat", "Did you mean 'lactate'?"),
        (lambda r: [{**r[0], "age": "sixty"}], 422, "age", "expected a number"),
        (lambda r: [{**r[0], "age": True}], 422, "age", "expected a number"),
        (lambda r: [r[0], {**r[1], "age": 400}], 422, "age", "Row 1, column 'age': 400 is outside"),
        (lambda r: [{**r[0], "heart_rate": -20}], 422, "heart_rate", "-20 is outside"),
        (lambda r: [{**r[0], "ward": "ICU"}], 422, "ward", "unknown category 'ICU'"),
        (lambda r: [{**r[0], "ward": 3}], 422, "ward", "unknown category 3"),
        (lambda r: [{**r[0], "age": 10**400}], 422, "age", "expected a number"),
        (lambda r: r * 300, 422, "rows", "at most 500 are accepted"),
        (lambda r: [], 422, "rows", "No patient rows"),
        (lambda r: [5], 422, "rows.0", "valid dictionary"),
    ],
)  # fmt: skip
def test_bad_rows_are_answered_4xx_naming_the_field(service, site_model, deploy_dir, change,
                                                    status, field, message):  # fmt: skip
    _, client, secrets = service
    rows = records(pd.read_csv(deploy_dir / "patients.csv").drop(columns=["hospital", "patient"]))
    answer = client.post(f"/v1/models/{site_model['model']}/predict",
                         json={"rows": change(rows)}, headers=auth(secrets["clinic"]))  # fmt: skip
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and message in error["message"], error


def test_malformed_bodies_and_wrong_states_are_4xx(service, site_model, deploy_dir):
    _, client, secrets = service
    lab = auth(secrets["lab"])
    model = site_model["model"]
    patients = records(
        pd.read_csv(deploy_dir / "patients.csv").drop(columns=["hospital", "patient"])
    )
    for body in (b"{", b"\xff\xfe", b"[" * 100_000, b'{"rows": [NaN'):
        answer = client.post(f"/v1/models/{model}/predict", content=body, headers=lab)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "malformed_json"
    row = json.dumps({**patients[0], "age": 12345}).replace("12345", "1e999")  # inf in Python
    for number in ("1e999", "NaN", "-Infinity"):
        answer = client.post(f"/v1/models/{model}/predict", headers=lab,
                             content=f'{{"rows": [{row.replace("1e999", number)}]}}')  # fmt: skip
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "age", answer.text
    answer = client.post(f"/v1/models/{model}/predict", json={"rows": [], "extra": 1}, headers=lab)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "extra"
    assert client.post("/v1/models/nope/predict", json={"rows": []}, headers=lab).status_code == 404
    assert (
        client.post("/v1/models/..%2F..%2Fetc/predict", json={"rows": []}, headers=lab).status_code
        == 404
    )
    answer = client.post("/v1/models/meta/predict", json={"rows": patients}, headers=lab)
    assert answer.status_code == 409 and "not adapted" in answer.json()["error"]["message"]
    support = pd.read_csv(deploy_dir / "support.csv").drop(columns=["hospital"])
    answer = client.post(f"/v1/models/{model}/adapt", json={"rows": records(support)}, headers=lab)
    assert answer.status_code == 409 and "already adapted" in answer.json()["error"]["message"]
    answer = client.post("/v1/models/meta/adapt", json={"rows": records(support.assign(died=1))},
                         headers=lab)  # fmt: skip
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "died"
    assert "one class only" in answer.json()["error"]["message"]
    answer = client.post("/v1/models/meta/adapt", json={"rows": records(support), "coverage": 1.5},
                         headers=lab)  # fmt: skip
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "coverage"
    answer = client.post("/v1/models/meta/adapt", json={"rows": records(support.iloc[:6])},
                         headers=lab)  # fmt: skip
    assert answer.status_code == 422 and "at least 9 support patients" in answer.text


def test_every_call_is_in_the_audit_log_with_its_hashes(service, site_model, deploy_dir):
    server, client, secrets = service
    body = json.dumps(
        {
            "rows": records(
                pd.read_csv(deploy_dir / "patients.csv")
                .drop(columns=["hospital", "patient"])
                .iloc[:3]
            )
        }
    )
    answer = client.post(f"/v1/models/{site_model['model']}/predict", content=body,
                         headers={**auth(secrets["clinic"]), "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 200
    entries = list(read_entries(service_paths(server.models)[1]))
    last = entries[-1]
    assert last["event"] == "finished" and last["action"] == "predict"
    assert last["token"] == "clinic" and last["model"] == site_model["model"]
    assert last["input_sha256"] == hashlib.sha256(body.encode()).hexdigest()
    assert last["output_sha256"] == hashlib.sha256(answer.content).hexdigest()
    assert last["status"] == 200 and last["outcome"] == "ok" and last["rows"] == 3
    adapts = [
        e for e in entries if e["action"] == "adapt" and e["new_model"] == site_model["model"]
    ]
    started = [e for e in entries if e["event"] == "started"]
    assert {e["request_id"] for e in adapts} <= {e["request_id"] for e in started}
    refused = [e for e in entries if e["status"] == 401]
    assert refused and all(e["token"] is None for e in refused)
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)


def test_adapt_with_recalibration_is_its_own_model(service, site_model, deploy_dir):
    server, client, secrets = service
    support = records(pd.read_csv(deploy_dir / "support.csv").drop(columns=["hospital"]))
    answer = client.post("/v1/models/meta/adapt", json={"rows": support, "recalibrate": True},
                         headers=auth(secrets["lab"]))  # fmt: skip
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["recalibrated"] and body["model"] != site_model["model"]
    assert not site_model["recalibrated"]
    local = Pipeline.load(server.models / body["model"])
    assert local.provenance["adapted_from"]["recalibrated"] is True
