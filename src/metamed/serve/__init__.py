"""Deploying models at a site: check rows, adapt, predict with conformal sets, serve over HTTP.

:mod:`~metamed.serve.models` (load, describe, adapt, predict; shared by the command line
and the service), :mod:`~metamed.serve.validation` (rows against the model's schema),
:mod:`~metamed.serve.tokens` and :mod:`~metamed.serve.audit` (who may call, what was
called), :mod:`~metamed.serve.app` (the FastAPI service; imported only when serving,
so that the command line works without the ``serve`` extra).
"""

from metamed.serve.models import (
    ModelStore,
    ServedModel,
    adapt_pipeline,
    canonical_sha256,
    load_model,
    predict_rows,
)
from metamed.serve.validation import InputSchema, allowed_range

__all__ = [
    "InputSchema",
    "ModelStore",
    "ServedModel",
    "adapt_pipeline",
    "allowed_range",
    "canonical_sha256",
    "load_model",
    "predict_rows",
]
