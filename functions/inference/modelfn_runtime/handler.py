"""The Lambda entry point: init loads the model once; each event travels
event -> trigger adapter -> ``InferenceService.handle`` (decode -> session.run -> encode) -> response.

Configuration (template.yaml sets these per function):
    MODEL_NAME, MODEL_VERSION   the model this function serves (unset: the API's catch-all function)
    MODEL_URI                   s3://bucket/prefix/name/version/ or a directory; default: in the package
    MODELFN_MODELS              comma-separated names of every model behind the API (for 404 hints)
    MODELFN_EXECUTION_PROVIDER  auto (default), cpu, cuda or tensorrt
"""

from __future__ import annotations

import os
import time
from typing import Any

from .artifacts import default_model_uri, resolve_model_dir
from .errors import ModelfnError
from .http import HttpResponse
from .observability import logger, metrics, tracer
from .service import InferenceService, describe
from .session import ModelSession
from .triggers import direct_invoke_request, from_event, to_direct_response, to_proxy_response, trigger_of


def load_service() -> InferenceService:
    """Build the service from the environment (the init phase of a cold start)."""
    served = [name for name in os.environ.get("MODELFN_MODELS", "").split(",") if name]
    name = os.environ.get("MODEL_NAME")
    if not name:
        return InferenceService(model=None, served_models=served)
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
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    request_id = getattr(context, "aws_request_id", "")
    try:
        trigger = trigger_of(event)
    except ModelfnError as error:
        return to_direct_response(HttpResponse.json(error.status, {"error": error.message}))
    if trigger == "direct":
        model_name = SERVICE.model.card.name if SERVICE.model else ""
        return to_direct_response(SERVICE.handle(direct_invoke_request(event, model_name, request_id)))
    try:
        request = from_event(event)
    except ModelfnError as error:
        return to_proxy_response(HttpResponse.json(error.status, {"error": error.message}))
    return to_proxy_response(SERVICE.handle(request))
