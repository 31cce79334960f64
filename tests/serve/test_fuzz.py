"""Property-based fuzzing of the running service: ~2,400 malformed requests, zero 5xx,
and valid requests answered exactly as before afterwards."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from metamed.serve.app import service_paths  # noqa: E402
from metamed.serve.tokens import TokenStore  # noqa: E402

COLUMNS = ["age", "heart_rate", "lactate", "ward"]
FUZZ = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["icu", "medical", "ICU", "", "60", "1e999", "NaN"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.one_of(
    st.sampled_from([*COLUMNS, "died", "rows", "agee", "coverage"]), st.text(max_size=8)
)
rows = st.lists(st.dictionaries(keys, json_values, max_size=7), max_size=5)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"rows": rows}),
    st.fixed_dictionaries(
        {"rows": rows, "coverage": json_values, "method": st.one_of(json_values, st.just("cv+"))}
    ),
    st.dictionaries(st.sampled_from(["rows", "coverage", "method", "extra"]), json_values),
)


@pytest.fixture(scope="module")
def fuzz_service(deploy_dir, tmp_path_factory, launch):
    models = tmp_path_factory.mktemp("fuzz") / "models"
    shutil.copytree(deploy_dir / "models" / "meta", models / "meta")
    secret = TokenStore(service_paths(models)[0]).create("fuzzer", ["predict", "adapt"])
    headers = {"Authorization": f"Bearer {secret}"}
    server = launch(models)
    client = httpx.Client(base_url=server.url, timeout=60)
    support = pd.read_csv(deploy_dir / "support.csv").drop(columns=["hospital"])
    adapted = client.post("/v1/models/meta/adapt", headers=headers,
                          json={"rows": json.loads(support.to_json(orient="records"))})  # fmt: skip
    assert adapted.status_code == 201, adapted.text
    patients = pd.read_csv(deploy_dir / "patients.csv")[COLUMNS].iloc[:20]
    valid = {"rows": json.loads(patients.to_json(orient="records"))}
    model = adapted.json()["model"]
    reference = client.post(f"/v1/models/{model}/predict", json=valid, headers=headers)
    assert reference.status_code == 200
    yield client, headers, model, valid, reference.json()
    client.close()
    server.stop()


def _send(client, method, path, content, headers):
    answer = client.request(method, path, content=content, headers=headers)
    assert answer.status_code < 500, (method, path, content[:300], answer.text)
    if answer.status_code >= 400 and answer.headers.get("content-type") == "application/json":
        assert "error" in answer.json()
    return answer


@FUZZ
@given(
    body=bodies,
    action=st.sampled_from(["predict", "adapt"]),
    which=st.sampled_from(["site", "meta"]),
)
def test_random_json_bodies_never_get_a_5xx(fuzz_service, body, action, which):
    client, headers, model, _, _ = fuzz_service
    target = model if which == "site" else "meta"
    content = json.dumps(body).encode()  # NaN and Infinity pass as Python's json writes them
    _send(client, "POST", f"/v1/models/{target}/{action}", content,
          {**headers, "Content-Type": "application/json"})  # fmt: skip


@FUZZ
@given(
    raw=st.binary(max_size=200),
    path=st.one_of(
        st.sampled_from(
            ["/v1/models/meta/predict", "/v1/models/meta/adapt", "/v1/models", "/v1/health"]
        ),
        st.text(alphabet="abc/%.-_~0123456789", max_size=30).map(lambda p: "/v1/models/" + p),
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    token=st.sampled_from(["good", "none", "garbage", "basic"]),
)
def test_random_bytes_paths_and_tokens_never_get_a_5xx(fuzz_service, raw, path, method, token):
    client, headers, _, _, _ = fuzz_service
    auth = {
        "good": headers,
        "none": {},
        "garbage": {"Authorization": "Bearer mm_" + raw.hex()[:40]},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    }[token]
    _send(client, method, path, raw, auth)


@FUZZ
@given(rows=st.lists(
    st.fixed_dictionaries({c: scalars for c in COLUMNS}, optional={"died": scalars}),
    min_size=1, max_size=5))  # fmt: skip
def test_rows_with_the_right_keys_and_random_values_never_get_a_5xx(fuzz_service, rows):
    client, headers, model, _, _ = fuzz_service
    for action, target in (("predict", model), ("adapt", "meta")):
        content = json.dumps({"rows": rows}).encode()
        answer = _send(client, "POST", f"/v1/models/{target}/{action}", content,
                       {**headers, "Content-Type": "application/json"})  # fmt: skip
        if answer.status_code == 200 and action == "predict":
            assert len(answer.json()["predictions"]) == len(rows)


def test_valid_requests_are_answered_as_before_after_the_fuzzing(fuzz_service):
    client, headers, model, valid, reference = fuzz_service
    answer = client.post(f"/v1/models/{model}/predict", json=valid, headers=headers)
    assert answer.status_code == 200
    assert answer.json() == reference
