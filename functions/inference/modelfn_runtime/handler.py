"""The Lambda entry point: init loads the model once; each event travels one straight line:

    trigger = triggers.pick(event)                   # the one place events are classified
    trigger.dispatch(event, context, sandbox)        # envelopes -> SERVICE.handle (metered once) -> reply

API Gateway and direct invokes are answered per event; S3 and SQS records run as idempotent jobs (see
``triggers/records.py`` and the ``jobs`` package): ``Sandbox`` hands a trigger the service and its job
runner, made here on the first record event. Each request's metering line (metrics and tenant usage) is written
to stdout by the service's meter before the reply leaves (``metering.EmfMeter``): no network call on the request
path. The first invocation of a sandbox also writes the ``ColdStart`` metric.

Configuration (template.yaml sets these per function):
    MODEL_NAME, MODEL_VERSION   the model this function serves (unset: the API's catch-all function)
    MODEL_URI                   s3://bucket/prefix/name/version/ or a directory; default: in the package
    MODELFN_MODELS              comma-separated names of every model behind the API (for 404 hints)
    MODELFN_EXECUTION_PROVIDER  auto (default), cpu, cuda or tensorrt
    MODELFN_MAX_BATCH_SIZE      largest batch one request may carry (catalog: max_batch_size)
    MODELFN_PAYLOAD_LOG_RATE    opt-in sampled payload logging, 0 (default: never); see payloads.py
    MODELFN_DATA_BUCKET         inbox/, requests/, outbox/, errors/ of event-triggered work
    MODELFN_IDEMPOTENCY_TABLE   DynamoDB table of powertools idempotency records
    MODELFN_REPLY_QUEUE_PREFIX  SQS reply queues a message may name must start with this
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import snapstart, triggers
from .artifacts import ModelLoadError, default_model_uri, locate
from .environment import EXECUTION_PROVIDER, MODEL_NAME, MODEL_URI, MODEL_VERSION, MODELS, model_list
from .interfaces import Unavailable
from .metering import EmfMeter, write_metric
from .observability import LambdaContext, logger, tracer
from .payloads import PayloadLog
from .service import InferenceService, describe
from .triggers.base import Jobs
from .validation import Limits

RETRY_BACKOFF_S = (5, 10, 30, 60, 120, 300)
"""After a failed init, the load is tried again on the first request after each of these pauses (then every 300 s)."""


def load_service() -> InferenceService:
    """Build the service from the environment (the init phase of a cold start)."""
    served = model_list(os.environ.get(MODELS))
    name = os.environ.get(MODEL_NAME)
    if not name:
        return InferenceService(model=None, served_models=served)
    from .session import ModelSession  # only model functions import onnxruntime

    version = os.environ.get(MODEL_VERSION, "1")
    started = time.perf_counter()
    files = locate(os.environ.get(MODEL_URI) or default_model_uri(name, version))
    model = ModelSession.load(files.directory, preference=os.environ.get(EXECUTION_PROVIDER, "auto"), sha256=files.sha256)
    if (model.card.name, model.card.version) != (name, version):
        raise RuntimeError(
            f"{files.directory} holds {model.card.name}/{model.card.version} but this function serves {name}/{version}; "
            "fix MODEL_URI or MODEL_NAME/MODEL_VERSION"
        )
    model.warm_up()  # the first request does not pay kernel selection (cuDNN's algorithm search on CUDA)
    service = InferenceService(model, served_models=served, meter=EmfMeter(), limits=Limits.from_env(),
                               payload_log=PayloadLog.from_env())
    (logger.warning if model.fallback else logger.info)("model loaded", load_ms=round((time.perf_counter() - started) * 1000, 1), **describe(service))
    return service


class ServiceSlot:
    """The service this sandbox answers with. Init never crashes the sandbox: a model that cannot load
    gives a not-ready service (readiness and model routes answer 503 with the reason), and the load is
    tried again on a later request after a backoff, so a fixed bucket or a pushed model heals the
    function without a redeploy.

    Example:
        >>> slot = ServiceSlot(load=lambda: InferenceService(model=None))   # doctest: +SKIP
        >>> slot.current().handle(...)                                      # doctest: +SKIP
    """

    def __init__(self, load=load_service, clock=time.monotonic) -> None:
        self._load, self._clock = load, clock
        self.failures = 0
        self._retry_at = 0.0
        self.service = self._try_load()

    def current(self) -> InferenceService:
        if self.service.unavailable is not None and self._clock() >= self._retry_at:
            self.service = self._try_load()
        return self.service

    def _try_load(self) -> InferenceService:
        try:
            service = self._load()
        except Exception as error:  # noqa: BLE001 - every init failure becomes an honest not-ready state
            return self._unavailable(error)
        self.failures = 0
        return service

    def _unavailable(self, error: Exception) -> InferenceService:
        name, version = os.environ.get(MODEL_NAME, ""), os.environ.get(MODEL_VERSION, "1")
        uri = os.environ.get(MODEL_URI) or default_model_uri(name, version)
        pause = RETRY_BACKOFF_S[min(self.failures, len(RETRY_BACKOFF_S) - 1)]
        self.failures += 1
        self._retry_at = self._clock() + pause
        if isinstance(error, (ModelLoadError, RuntimeError, ValueError)):
            reason = str(error)[:600]
        else:
            reason = f"loading failed with {type(error).__name__}; see the function logs"
        logger.error(
            "model cannot load", uri=uri, reason=str(error)[:600], error_type=type(error).__name__,
            attempt=self.failures, retry_in_s=pause,
        )
        served = model_list(os.environ.get(MODELS))
        return InferenceService(None, served_models=served, unavailable=Unavailable(name, version, reason, pause))


SLOT = ServiceSlot()
SERVICE = SLOT.service  # the service at the end of init (tests replace it; ``_service`` prefers a replacement)
snapstart.register(SERVICE)  # SnapStart: warm before the snapshot, re-check threads/provider after restore
logger.append_keys(model=os.environ.get(MODEL_NAME, "-"), version=os.environ.get(MODEL_VERSION, "-"))


def _service() -> InferenceService:
    global SERVICE
    if SERVICE is not SLOT.service:  # replaced from outside (tests): answer with that one
        return SERVICE
    SERVICE = SLOT.current()
    return SERVICE


class Sandbox:
    """What a trigger answers with (``triggers.base.Serving``): the service, and the job runner of exactly this
    service, made on the first record or pointer event (its imports, numpy and powertools' idempotency, are not
    an API invocation's cost)."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service
        self._jobs: Jobs | None = None

    def jobs(self) -> Jobs:
        if self._jobs is None:
            from .jobs.job import Settings
            from .jobs.runner import JobRunner

            self._jobs = JobRunner(self.service, settings=Settings.from_env())
        return self._jobs


_SANDBOX: Sandbox | None = None


def _sandbox(service: InferenceService) -> Sandbox:
    """The sandbox for ``service``: kept while the service is, new with a new one (a reloaded model's)."""
    global _SANDBOX
    if _SANDBOX is None or _SANDBOX.service is not service:
        _SANDBOX = Sandbox(service)
    return _SANDBOX


LOG_CONTEXT = LambdaContext(logger)


@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: Any, context: Any) -> Any:
    if LOG_CONTEXT.bind(context):
        write_metric("ColdStart", dimensions={"function_name": str(getattr(context, "function_name", "-"))})
    service = _service()
    trigger = triggers.pick(event)
    try:
        return trigger.dispatch(event, context, _sandbox(service))
    finally:
        service.meter.flush()
