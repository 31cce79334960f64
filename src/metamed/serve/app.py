"""The adaptation service: ``metamed serve --models DIR`` (FastAPI on uvicorn).

==========================================  ==========  =====================================
route                                       permission  does
==========================================  ==========  =====================================
``GET  /v1/health``                         none        liveness, number of models
``GET  /v1/models``                         any token   the models in DIR
``GET  /v1/models/{id}``                    any token   one model: schema, lineage, coverage
``POST /v1/models/{id}/adapt``              adapt       support rows -> a new adapted model
``POST /v1/models/{id}/predict``            predict     patient rows -> risks and sets
``GET  /openapi.json``, ``/docs``           none        the OpenAPI spec and its viewer
==========================================  ==========  =====================================

Requests carry ``Authorization: Bearer <token>`` (:mod:`metamed.serve.tokens`).  Every
adapt and predict call, refused ones included, is in the audit log before it is
answered (:mod:`metamed.serve.audit`).

Bad requests get a 4xx answer ``{"error": {"status", "code", "message", "field", "row"}}``
naming what was wrong, never a 500: malformed JSON (400), a missing or bad token (401,
403), an unknown model (404), a model in the wrong state (409: predict before adapting,
adapt an adapted model), a body over the size limit (413) and rows that break the model's
schema (422, :mod:`metamed.serve.validation`).  A 500 means a bug or a damaged artifact
on the server's disk; a 503 that the audit log cannot be written (nothing was done).

Bodies are read and parsed here rather than by FastAPI, so that the token is checked
before anything else and every refusal can be audited; the request schemas still appear
in the OpenAPI spec (``openapi_extra``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

import metamed
from metamed.errors import (
    ArtifactError,
    InvalidInputError,
    MetamedError,
    ModelStateError,
    OutputPlaceError,
    UnknownNameError,
)
from metamed.learners.conformal import DEFAULT_COVERAGE
from metamed.serve.audit import AuditError, AuditLog
from metamed.serve.batching import PredictBatcher
from metamed.serve.models import (
    ModelStore,
    ServedModel,
    adapt_pipeline,
    canonical_sha256,
    predict_records,
)
from metamed.serve.tokens import Token, TokenStore
from metamed.serve.validation import DEFAULT_MAX_ROWS

__all__ = [
    "SERVICE_DIR",
    "AdaptRequest",
    "AdaptResponse",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "ModelInfo",
    "ModelList",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "Service",
    "WORKER_ENV",
    "create_app",
    "recover_service",
    "service_paths",
    "worker_app",
]

log = logging.getLogger("metamed.serve")

#: The service's own files inside the models folder (never listed as a model).
SERVICE_DIR = ".metamed-service"
#: Largest request body accepted, in bytes.
DEFAULT_MAX_BODY_BYTES = 16 * 2**20
#: Predict bodies up to this size are parsed on the event loop (tens of microseconds);
#: larger ones in a worker thread, so that a 10,000-row body does not stall other calls.
_PARSE_INLINE_BYTES = 64 * 2**10


def service_paths(models: str | Path) -> tuple[Path, Path]:
    """(tokens file, audit log file) of the service over ``models``."""
    state = Path(models) / SERVICE_DIR
    return state / "tokens.sqlite", state / "audit.sqlite"


# -- request and response schemas (validation and the OpenAPI spec) ------------------------
Row = dict[str, Any]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[Row] = Field(
        description="Patients, one object of column: value each (null for a missing value); "
        "the columns are the model's inputs (GET /v1/models/{id})."
    )


class AdaptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[Row] = Field(
        description="The site's labelled support patients: the inputs and the outcome column."
    )
    coverage: float = Field(
        DEFAULT_COVERAGE, gt=0, lt=1, description="Target coverage of the prediction sets."
    )
    method: Literal["auto", "split", "cv+", "jackknife+"] = Field(
        "auto", description="Conformal calibration (auto: by the number of support rows)."
    )
    recalibrate: bool = Field(
        False,
        description="Recalibrate the risks on the support rows (logistic recalibration, "
        "cross-validated within them) before the conformal calibration; binary outcomes only.",
    )


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    field: str | None = None
    row: int | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Prediction(BaseModel):
    risk: float | None = Field(None, description="Binary outcomes: P(outcome = 1).")
    set: list[int] | None = Field(
        None, description="Binary outcomes: the outcomes the conformal set holds."
    )
    prediction: float | None = Field(None, description="Numeric outcomes: the prediction.")
    interval: list[float] | None = Field(
        None, description="Numeric outcomes: the conformal interval [lower, upper]."
    )


class PredictResponse(BaseModel):
    model: str
    outcome: str
    coverage: float
    predictions: list[Prediction]


class AdaptResponse(BaseModel):
    model: str
    parent: str
    created: bool
    support_rows: int
    support_sha256: str
    coverage: float
    method: str
    recalibrated: bool
    guard: dict[str, str] | None = Field(
        None,
        description="A guard model's choice for this site (choice: pooled, blend or adapted; "
        "reason); null for other models.",
    )


class ModelInfo(BaseModel):
    id: str
    kind: str
    learner: str | None
    outcome: dict[str, Any]
    coverage: float | None


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str
    models: int
    metamed_version: str
    process: int = Field(description="The id of the server process that answered.")


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (400, "Malformed JSON"),
        (401, "Missing or unknown token"),
        (403, "The token lacks the permission"),
        (404, "No such model"),
        (409, "The model cannot do this in its state"),
        (413, "Body too large"),
        (422, "Rows or fields that break the model's schema"),
        (503, "The audit log cannot be written"),
    ]
}


def _body_spec(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


# -- the service ---------------------------------------------------------------------------
class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **where: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.where = status, code, message, where


def _error_body(status: int, code: str, message: str, **where: Any) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, **where}}


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


@dataclass
class _Call:
    action: str
    model_id: str
    request_id: str
    input_sha256: str
    started: float
    token: Token | None = None
    rows: int | None = None


class Service:
    """Everything behind the routes: coroutines on the event loop, with the slow parts
    (model calls, adaptation, loading, parsing large bodies) in worker threads."""

    def __init__(self, models: str | Path, max_rows: int, max_body_bytes: int) -> None:
        tokens_path, audit_path = service_paths(models)
        self.store = ModelStore(models, max_rows)
        self.tokens = TokenStore(tokens_path)
        self.audit = AuditLog(audit_path)
        self.max_body_bytes = max_body_bytes
        # Concurrent predict calls on one model share its checking and its model call.
        self.batcher: PredictBatcher[ServedModel] = PredictBatcher(predict_records, max_rows)

    def start(self, recover: bool = True) -> None:
        """Ready to answer; with ``recover``, first clear what a killed service left
        (:func:`recover_service`; several server processes leave that to their parent)."""
        import torch

        # Requests run in worker threads on models this small: torch's own intra-op
        # threads only spin against each other (measured: an adaptation from 200 rows
        # took 3.6 s over HTTP with the default threads on 2 loaded cores, 0.1 s in process).
        torch.set_num_threads(1)
        if recover:
            _report_recovery(self.store.recover(), self.audit.recover())

    def authenticate(self, header: str | None, permission: str | None) -> Token:
        scheme, _, secret = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _Refusal(
                401,
                "unauthenticated",
                "Send the header 'Authorization: Bearer <token>' "
                "(create a token with metamed token create).",
            )
        token = self.tokens.verify(secret.strip())
        if token is None:
            raise _Refusal(401, "unauthenticated", "The token is unknown or revoked.")
        if permission is not None and not token.can(permission):
            raise _Refusal(
                403,
                "forbidden",
                f"Token '{token.name}' may {', '.join(token.permissions)}, not {permission}.",
            )
        return token

    @staticmethod
    def parse(raw: bytes, schema: type[BaseModel]) -> Any:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            raise _Refusal(400, "malformed_json", f"The body is not valid JSON: {error}.") from None
        try:
            return schema.model_validate(value)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise _Refusal(
                422,
                "invalid_request",
                f"{where or 'body'}: {first.get('msg')}"
                + (f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""),
                field=where or None,
            ) from None

    async def handle(
        self,
        action: str,
        permission: str,
        model_id: str,
        header: str | None,
        raw: bytes | None,
        work: Callable[[_Call, bytes], Awaitable[tuple[int, dict[str, Any], dict[str, Any]]]],
    ) -> Response:
        """Authenticate, run ``work``, audit, answer; every failure a 4xx (or 503) naming it.

        It runs on the event loop: checks that take microseconds run inline, and ``work``
        puts what takes longer into worker threads (a thread per waiting request would
        make the requests fight over the interpreter lock).
        """
        call = _Call(
            action,
            model_id,
            uuid.uuid4().hex,
            hashlib.sha256(raw or b"").hexdigest(),
            time.perf_counter(),
        )
        extra: dict[str, Any] = {}
        try:
            call.token = self.authenticate(header, permission)
            if raw is None:
                raise _Refusal(
                    413,
                    "too_large",
                    f"The body exceeds {self.max_body_bytes} bytes; send fewer rows per request.",
                )
            if action == "adapt":
                await self._audit("started", call)
            status, body, extra = await work(call, raw)
            outcome = "ok"
        except _Refusal as refusal:
            status, outcome = refusal.status, refusal.message
            body = _error_body(refusal.status, refusal.code, refusal.message, **refusal.where)
        except InvalidInputError as error:
            status, outcome = 422, str(error)
            body = _error_body(422, "invalid_rows", str(error), field=error.field, row=error.row)
        except UnknownNameError as error:
            status, outcome = 404, str(error)
            body = _error_body(404, "not_found", str(error))
        except (ModelStateError, OutputPlaceError) as error:
            status, outcome = 409, str(error)
            body = _error_body(409, "conflict", str(error))
        except ArtifactError as error:  # the server's own file is damaged: not the client's fault
            log.error("damaged model artifact: %s", error)
            status, outcome = 500, str(error)
            body = _error_body(500, "damaged_model", str(error))
        except AuditError as error:
            return _audit_unavailable(error)
        except (MetamedError, ValueError, TypeError) as error:
            status, outcome = 422, str(error)
            body = _error_body(422, "invalid_request", str(error))
        except Exception:  # noqa: BLE001 - a bug: logged in full, answered without internals
            log.exception("%s %s failed", action, model_id)
            status, outcome = 500, "internal error"
            body = _error_body(500, "internal_error", "Internal error; it is logged on the server.")
        content = _json_bytes(body)
        try:
            await self._audit(
                "finished",
                call,
                status=status,
                outcome=outcome,
                output_sha256=hashlib.sha256(content).hexdigest(),
                **extra,
            )
        except AuditError as error:
            return _audit_unavailable(error)
        return Response(content, status_code=status, media_type="application/json")

    async def _audit(self, event: str, call: _Call, **fields: Any) -> None:
        await self.audit.append_async(
            event,
            call.action,
            call.request_id,
            token=call.token.name if call.token else None,
            model=call.model_id,
            input_sha256=call.input_sha256,
            rows=call.rows,
            seconds=round(time.perf_counter() - call.started, 6),
            **fields,
        )

    # -- the two audited calls ---------------------------------------------------------------
    async def predict(self, call: _Call, raw: bytes) -> tuple[int, dict[str, Any], dict[str, Any]]:
        served: ServedModel
        if len(raw) <= _PARSE_INLINE_BYTES:
            request = self.parse(raw, PredictRequest)
            cached = self.store.loaded(call.model_id)
            if cached is None:
                cached = await asyncio.to_thread(self.store.get, call.model_id)
            served = cached
        else:  # a large body (or, above, a model still to load from disk): off the loop
            request, served = await asyncio.to_thread(
                lambda: (self.parse(raw, PredictRequest), self.store.get(call.model_id))
            )
        call.rows = len(request.rows)
        columns = await self.batcher(served, request.rows)
        if "risk" in columns:
            predictions = [
                {"risk": float(p), "set": [y for y, held in ((0, h0), (1, h1)) if held]}
                for p, h0, h1 in zip(
                    columns["risk"], columns["holds_0"], columns["holds_1"], strict=True
                )
            ]
        else:
            predictions = [
                {"prediction": float(m), "interval": [float(lo), float(hi)]}
                for m, lo, hi in zip(
                    columns["prediction"], columns["lower"], columns["upper"], strict=True
                )
            ]
        body = {
            "model": served.id,
            "outcome": str(served.schema.outcome_type),
            "coverage": served.coverage,
            "predictions": predictions,
        }
        return 200, body, {}

    async def adapt(self, call: _Call, raw: bytes) -> tuple[int, dict[str, Any], dict[str, Any]]:
        return await asyncio.to_thread(self._adapt, call, raw)

    def _adapt(self, call: _Call, raw: bytes) -> tuple[int, dict[str, Any], dict[str, Any]]:
        request = self.parse(raw, AdaptRequest)
        parent = self.store.get(call.model_id)
        call.rows = len(request.rows)
        frame = parent.schema.check_records(request.rows, with_outcome=True)
        support_sha = canonical_sha256(request.rows)
        settings = [request.coverage, request.method]
        if request.recalibrate:  # ids of models adapted without it stay what they were
            settings.append("recalibrate")
        key = canonical_sha256([parent.summary["manifest_sha256"], support_sha, *settings])
        new_id = f"{parent.id[:86]}-{key[:12]}"
        created = new_id not in self.store.ids()
        method = request.method
        if created:
            adapted = adapt_pipeline(
                parent, frame, support_sha, request.coverage, request.method, request.recalibrate
            )
            adapted.save(self.store.root / new_id)
            method = adapted.provenance["adapted_from"]["method"]
            guard = adapted.provenance["adapted_from"].get("guard")
        else:  # the same parent, rows and settings: the model exists (adaptation is seeded)
            summary = self.store.get(new_id).summary
            method = (summary.get("uncertainty") or {}).get("method", method)
            guard = (summary.get("lineage") or {}).get("guard")
        body = {
            "model": new_id,
            "parent": parent.id,
            "created": created,
            "support_rows": len(frame),
            "support_sha256": support_sha,
            "coverage": request.coverage,
            "method": method,
            "recalibrated": request.recalibrate,
            "guard": guard,
        }
        return (201 if created else 200), body, {"new_model": new_id}

    # -- unaudited reads -----------------------------------------------------------------------
    def read(self, header: str | None, what: Callable[[], Any]) -> Response:
        try:
            self.authenticate(header, None)
            return Response(_json_bytes(what()), media_type="application/json")
        except _Refusal as refusal:
            body = _error_body(refusal.status, refusal.code, refusal.message, **refusal.where)
            return Response(_json_bytes(body), refusal.status, media_type="application/json")
        except UnknownNameError as error:
            return Response(
                _json_bytes(_error_body(404, "not_found", str(error))),
                404,
                media_type="application/json",
            )
        except MetamedError as error:  # an invalid id, a damaged artifact
            status = 500 if isinstance(error, ArtifactError) else 404
            return Response(
                _json_bytes(
                    _error_body(
                        status, "not_found" if status == 404 else "damaged_model", str(error)
                    )
                ),
                status,
                media_type="application/json",
            )

    def list_models(self) -> dict[str, Any]:
        models = []
        for model_id in self.store.ids():
            try:
                summary = self.store.get(model_id).summary
            except MetamedError:  # a damaged artifact is left out of the list, and logged
                log.error("model %s cannot be loaded", model_id, exc_info=True)
                continue
            models.append(
                {
                    "id": model_id,
                    "kind": summary["kind"],
                    "learner": summary["learner"],
                    "outcome": summary["outcome"],
                    "coverage": (summary.get("uncertainty") or {}).get("coverage"),
                }
            )
        return {"models": models}


def _audit_unavailable(error: AuditError) -> Response:
    log.error("%s", error)
    body = _error_body(503, "audit_unavailable", str(error))
    return Response(_json_bytes(body), 503, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` bytes (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _report_recovery(removed: list[str], interrupted: list[str]) -> None:
    if removed or interrupted:
        log.warning(
            "start-up: removed %d half-written model folder(s), %d interrupted call(s) "
            "marked in the audit log",
            len(removed),
            len(interrupted),
        )


def recover_service(models: str | Path) -> None:
    """Clear what a killed service left in ``models``: half-written model folders are
    removed, adaptations that never finished are marked ``interrupted`` in the audit log.

    Run once before the server processes start, never by one of them while the others
    answer: an adaptation in flight in another process would look interrupted.
    """
    audit = AuditLog(service_paths(models)[1])
    try:
        _report_recovery(ModelStore(models).recover(), audit.recover())
    finally:
        audit.close()


#: Where ``metamed serve --workers N`` tells its server processes what to serve.
WORKER_ENV = "METAMED_SERVE_MODELS", "METAMED_SERVE_MAX_ROWS"


def worker_app() -> FastAPI:
    """The app of one of several server processes (``uvicorn --factory``): the models
    folder and row limit from :data:`WORKER_ENV`; no recovery (the parent ran it)."""
    models, max_rows = (os.environ[name] for name in WORKER_ENV)
    return create_app(models, int(max_rows), recover=False)


def create_app(
    models: str | Path,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    recover: bool = True,
) -> FastAPI:
    """The service over the model folder ``models`` (see the module docstring); with
    ``recover`` (one server process), :func:`recover_service` runs as it starts."""
    service = Service(models, max_rows, max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start(recover)
        try:
            yield
        finally:
            service.audit.close()

    app = FastAPI(
        title="metamed adaptation service",
        version=metamed.__version__,
        description="Adapt meta-trained clinical models to a site and predict risks with "
        "conformal prediction sets. See docs/deploy.md.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_error_body(exc.status_code, code, str(exc.detail)), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}"
        return JSONResponse(_error_body(422, "invalid_request", message, field=where), 422)

    @app.get("/v1/health", response_model=Health, tags=["service"])
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "models": len(service.store.ids()),
            "metamed_version": metamed.__version__,
            "process": os.getpid(),
        }

    @app.get("/v1/models", response_model=ModelList, responses=_ERRORS, tags=["models"])
    def list_models(request: Request) -> Response:
        return service.read(request.headers.get("authorization"), service.list_models)

    @app.get("/v1/models/{model_id}", responses=_ERRORS, tags=["models"])
    def describe_model(model_id: str, request: Request) -> Response:
        """Schema (columns, units, accepted ranges, categories), lineage, coverage, evaluation."""
        return service.read(
            request.headers.get("authorization"), lambda: service.store.get(model_id).summary
        )

    async def audited(action: str, model_id: str, request: Request, work) -> Response:
        header = request.headers.get("authorization")
        raw = await _read_body(request, service.max_body_bytes)
        return await service.handle(action, action, model_id, header, raw, work)

    @app.post(
        "/v1/models/{model_id}/predict",
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_body_spec(PredictRequest),
        tags=["models"],
    )
    async def predict(model_id: str, request: Request) -> Response:
        """Risk and conformal prediction set (or interval) for each patient row."""
        return await audited("predict", model_id, request, service.predict)

    @app.post(
        "/v1/models/{model_id}/adapt",
        response_model=AdaptResponse,
        status_code=201,
        responses=_ERRORS,
        openapi_extra=_body_spec(AdaptRequest),
        tags=["models"],
    )
    async def adapt(model_id: str, request: Request) -> Response:
        """Adapt a meta-trained model to a site's labelled rows; returns the new model's id."""
        return await audited("adapt", model_id, request, service.adapt)

    return app
