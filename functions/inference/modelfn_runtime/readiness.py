"""Server readiness: the catch-all function is ready only when every model function can serve.

API Gateway sends ``GET /v2/health/ready`` to the catch-all function, which loads no model. So that it never says
ready while a model cannot load, it invokes each model function with the readiness probe (``{"modelfn": "ready"}``,
``triggers/probe.py``) through Lambda's Invoke API, in parallel, and answers 503 naming every model that is not
ready and why. ``MODELFN_MODEL_FUNCTIONS`` lists them (``name=FunctionName[:alias],…``; the template sets it, with
``lambda:InvokeFunction`` on exactly those functions). Answers are cached for ``MODELFN_READY_CACHE_S`` seconds (10)
so frequent health checks do not invoke every function each time; a probe may cold-start a function, which is
exactly what "ready" has to prove.

Example:
    >>> readiness = Readiness({"digits": "DigitsFunction:live"}, invoke=lambda fn: {"ready": True})
    >>> readiness.not_ready()
    {}
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from . import aws
from .environment import MODEL_FUNCTIONS, READY_CACHE_S

PROBE_EVENT = {"modelfn": "ready"}
"""The event a model function answers as readiness (``triggers/probe.py`` is the receiving adapter)."""

FUNCTIONS_ENV = MODEL_FUNCTIONS
CACHE_ENV = READY_CACHE_S
DEFAULT_CACHE_S = 10.0

Invoke = Callable[[str], dict[str, Any]]


def configured_functions(raw: str | None = None) -> dict[str, str]:
    """``{model: function}`` from ``MODELFN_MODEL_FUNCTIONS`` (``name=FunctionName[:alias]`` items, comma-separated)."""
    raw = os.environ.get(FUNCTIONS_ENV, "") if raw is None else raw
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {name.strip(): function.strip() for name, function in pairs if name.strip() and function.strip()}


def invoke_probe(function: str) -> dict[str, Any]:
    """One synchronous Invoke of ``function`` with the probe; the function's own error when it failed."""
    response = aws.client("lambda").invoke(FunctionName=function, Payload=json.dumps(PROBE_EVENT).encode())
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        message = str(payload.get("errorMessage", "")) if isinstance(payload, dict) else ""
        return {"ready": False, "error": f"the function failed ({response['FunctionError']}): {message[:300]}"}
    return payload if isinstance(payload, dict) else {"ready": False, "error": "the probe's answer was not an object"}


class Readiness:
    """Probes the model functions and remembers the answer for a few seconds."""

    def __init__(self, functions: dict[str, str], *, invoke: Invoke = invoke_probe, cache_s: float = DEFAULT_CACHE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.functions = functions
        self._invoke = invoke
        self.cache_s = cache_s
        self._clock = clock
        self._checked_at: float | None = None
        self._answer: dict[str, str] = {}

    @classmethod
    def from_env(cls) -> "Readiness":
        raw = os.environ.get(CACHE_ENV, "")
        try:
            cache_s = float(raw) if raw else DEFAULT_CACHE_S
        except ValueError:
            cache_s = DEFAULT_CACHE_S
        return cls(configured_functions(), cache_s=cache_s)

    def not_ready(self) -> dict[str, str]:
        """``{model: reason}`` for every model function that cannot serve now (empty: all ready)."""
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self.cache_s:
            return self._answer
        if not self.functions:
            return {}
        from concurrent.futures import ThreadPoolExecutor  # the catch-all's readiness check only, not at init

        with ThreadPoolExecutor(max_workers=min(8, len(self.functions))) as pool:
            answers = dict(zip(self.functions, pool.map(self._probe, self.functions.values())))
        self._answer = {name: reason for name, reason in answers.items() if reason is not None}
        self._checked_at = now
        return self._answer

    def _probe(self, function: str) -> str | None:
        try:
            answer = self._invoke(function)
        except Exception as error:  # unreachable, throttled, not found: that model is not ready
            return f"{function} could not be invoked ({aws.error_code(error) or type(error).__name__}): {str(error)[:200]}"
        if answer.get("ready") is True:
            return None
        return str(answer.get("error") or "not ready")[:600]
