"""The function's structured logger and X-Ray tracer (powertools), created once per process, and the Lambda
context the logger adds to every line.

Service name and log level come from the standard powertools environment variables
(``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_LOG_LEVEL``) set in template.yaml. Metrics are not here: the meter
writes its EMF line itself (``metering.EmfMeter``), one per request, without powertools ``Metrics`` objects.

``LambdaContext.bind`` does what powertools' ``inject_lambda_context`` did, at a fraction of its per-request
cost (see its docstring). Log lines keep ``function_request_id``, ``cold_start``, ``function_name``,
``function_memory_size``, ``function_arn`` and the handler's ``model`` and ``version``.

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
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="modelfn")

_TRUTHY = ("1", "true", "yes", "on", "y", "t")
_NO_SUBSEGMENT = contextlib.nullcontext()


def tracing_enabled(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """powertools' rule for when X-Ray can receive subsegments: inside Lambda, not an emulator, not switched off."""
    if environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUTHY:
        return False
    return bool(environ.get("LAMBDA_TASK_ROOT")) and not environ.get("AWS_SAM_LOCAL") and not environ.get("AWS_CHALICE_CLI_MODE")


class LambdaContext(logging.Filter):
    """The Lambda context keys of every log line, at the cost of two attribute writes per invocation.

    The function's name, memory and ARN are appended to the logger once per sandbox; the request id and
    ``cold_start`` are added by this filter to each record as it is logged, so an invocation that logs nothing pays
    nothing for them (powertools' ``inject_lambda_context`` rebuilt and re-appended every key on every call).

    Example:
        >>> import types
        >>> bound = LambdaContext(Logger(service="doc"))
        >>> bound.bind(types.SimpleNamespace(aws_request_id="r1", function_name="f", memory_limit_in_mb=128,
        ...                                  invoked_function_arn="arn:aws:lambda:us-east-1:1:function:f"))
        True
    """

    def __init__(self, target: Any = None) -> None:
        super().__init__()
        self.logger = target or logger
        self.invocations = 0
        self.request_id: str | None = None
        self.cold_start = True

    def bind(self, context: Any) -> bool:
        """This invocation's context for the log lines; True on the sandbox's first (cold) invocation."""
        self.invocations += 1
        self.request_id = getattr(context, "aws_request_id", None)
        if self.invocations > 1:
            self.cold_start = False
            return False
        self.logger.append_keys(
            function_name=getattr(context, "function_name", None),
            function_memory_size=getattr(context, "memory_limit_in_mb", None),
            function_arn=getattr(context, "invoked_function_arn", None))
        self.logger.addFilter(self)
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        record.function_request_id = self.request_id
        record.cold_start = self.cold_start
        return True


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
