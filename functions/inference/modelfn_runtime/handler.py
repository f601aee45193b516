"""The Lambda entry point: init loads the model once; each event travels one straight line:

    trigger = triggers.pick(event)                   # the one place events are classified
    trigger.dispatch(event, context, SERVICE)        # envelopes -> SERVICE.handle (metered once) -> reply

API Gateway and direct invokes are answered per event; S3 and SQS records run as idempotent jobs (see
``triggers/records.py`` and ``batch.py``). The meter is flushed once per invocation.

Configuration (template.yaml sets these per function):
    MODEL_NAME, MODEL_VERSION   the model this function serves (unset: the API's catch-all function)
    MODEL_URI                   s3://bucket/prefix/name/version/ or a directory; default: in the package
    MODELFN_MODELS              comma-separated names of every model behind the API (for 404 hints)
    MODELFN_EXECUTION_PROVIDER  auto (default), cpu, cuda or tensorrt
    MODELFN_DATA_BUCKET         inbox/, requests/, outbox/, errors/ of event-triggered work
    MODELFN_IDEMPOTENCY_TABLE   DynamoDB table of powertools idempotency records
    MODELFN_REPLY_QUEUE_PREFIX  SQS reply queues a message may name must start with this
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import triggers
from .artifacts import default_model_uri, resolve_model_dir
from .observability import logger, metrics, tracer
from .service import InferenceService, describe


def load_service() -> InferenceService:
    """Build the service from the environment (the init phase of a cold start)."""
    served = [name for name in os.environ.get("MODELFN_MODELS", "").split(",") if name]
    name = os.environ.get("MODEL_NAME")
    if not name:
        return InferenceService(model=None, served_models=served)
    from .session import ModelSession  # only model functions import onnxruntime

    version = os.environ.get("MODEL_VERSION", "1")
    started = time.perf_counter()
    model_dir = resolve_model_dir(os.environ.get("MODEL_URI") or default_model_uri(name, version))
    model = ModelSession.load(model_dir, preference=os.environ.get("MODELFN_EXECUTION_PROVIDER", "auto"))
    if (model.card.name, model.card.version) != (name, version):
        raise RuntimeError(
            f"{model_dir} holds {model.card.name}/{model.card.version} but this function serves {name}/{version}; "
            "fix MODEL_URI or MODEL_NAME/MODEL_VERSION"
        )
    service = InferenceService(model, served_models=served)
    logger.info("model loaded", load_ms=round((time.perf_counter() - started) * 1000, 1), **describe(service))
    return service


SERVICE = load_service()
logger.append_keys(model=os.environ.get("MODEL_NAME", "-"), version=os.environ.get("MODEL_VERSION", "-"))


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: Any, context: Any) -> Any:
    trigger = triggers.pick(event)
    try:
        return trigger.dispatch(event, context, SERVICE)
    finally:
        SERVICE.meter.flush()
