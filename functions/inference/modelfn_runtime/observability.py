"""The function's structured logger, EMF metrics and X-Ray tracer (powertools), created once per process.

Service name, metrics namespace and log level come from the standard powertools environment
variables (``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``)
set in template.yaml.

Tracing has two layers. Lambda's own active tracing (``Tracing: Active``) records every invocation's
Initialization, Invocation and Overhead segments with no SDK at all. The X-Ray SDK adds subsegments
(``## session.run``), but importing it costs ~300 ms (it pulls in botocore), so ``tracer`` is a
``LazyTracer``: powertools' ``Tracer`` is created only where tracing is really on (in Lambda, not under
``sam local``, ``POWERTOOLS_TRACE_DISABLED`` not true), without auto-patching every library the SDK knows
(botocore is patched when the function already imported it); elsewhere decorators return the handler itself
and ``subsegment`` is a no-op. With SnapStart the SDK import happens before the snapshot and costs nothing at
restore; ``POWERTOOLS_TRACE_DISABLED=true`` keeps Lambda's segments without the SDK. See docs/coldstart.md.

Example:
    >>> with subsegment("## session.run"):
    ...     pass
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="modelfn")
metrics = Metrics(namespace="modelfn", service="modelfn")

_TRUTHY = ("1", "true", "yes", "on", "y", "t")
_NO_SUBSEGMENT = contextlib.nullcontext()


def tracing_enabled(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """powertools' rule for when X-Ray can receive subsegments: inside Lambda, not an emulator, not switched off."""
    if environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUTHY:
        return False
    return bool(environ.get("LAMBDA_TASK_ROOT")) and not environ.get("AWS_SAM_LOCAL") and not environ.get("AWS_CHALICE_CLI_MODE")


class LazyTracer:
    """powertools' ``Tracer`` where tracing is on, nothing at all where it is off (no import, no per-call cost)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._tracer: Any = None
        self._resolved = False

    @property
    def tracer(self) -> Any:
        """The powertools Tracer, or None where tracing is off or the X-Ray SDK is not installed."""
        if not self._resolved:
            self._resolved = True
            if tracing_enabled():
                try:
                    from aws_lambda_powertools import Tracer
                except ImportError:  # pragma: no cover - the deployed package carries aws-xray-sdk
                    logger.warning("aws-xray-sdk is not installed: only Lambda's own trace segments are recorded")
                else:
                    # auto_patch would import and patch every library the SDK knows (botocore, requests, sqlite3,
                    # httplib, ...): most of the SDK's init cost. capture_lambda_handler patches botocore only.
                    self._tracer = Tracer(service=self.service, auto_patch=False)
        return self._tracer

    def capture_lambda_handler(self, handler: Callable | None = None, **options: Any) -> Callable:
        """``Tracer.capture_lambda_handler`` where tracing is on; the handler unchanged elsewhere."""
        if handler is None:
            return lambda function: self.capture_lambda_handler(function, **options)
        tracer = self.tracer
        if not tracer:
            return handler
        if "botocore" in sys.modules:  # already imported (model loaded from S3): trace its AWS calls too
            tracer.patch(["botocore"])
        return tracer.capture_lambda_handler(handler, **options)

    def subsegment(self, name: str) -> contextlib.AbstractContextManager:
        tracer = self.tracer
        return tracer.provider.in_subsegment(name) if tracer else _NO_SUBSEGMENT


tracer = LazyTracer(service="modelfn")


def subsegment(name: str) -> contextlib.AbstractContextManager:
    """An X-Ray subsegment around a block where tracing is on; a no-op context elsewhere."""
    return tracer.subsegment(name)
