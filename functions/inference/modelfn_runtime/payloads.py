"""Opt-in, sampled payload logging with redaction. Off by default: no request or response tensor reaches the logs.

Set per function (infra/catalog.yaml ``payload_log_rate``, or the environment):

    MODELFN_PAYLOAD_LOG_RATE   share of requests whose payloads are logged, 0 (default, never) to 1 (always)
    MODELFN_PAYLOAD_LOG_BYTES  at most this many bytes of each body are logged (default 1024)
    MODELFN_PAYLOAD_REDACT     comma-separated input/output names whose values become "[redacted]"; "*" redacts
                               every tensor's values and keeps only names, datatypes and shapes

Headers that carry credentials (Authorization, X-Api-Key, Cookie, X-Amz-Security-Token) are always redacted;
binary tensor sections are never logged, only their size.

Example:
    >>> log = PayloadLog(rate=1.0, redact=frozenset({"pixels"}))
    >>> log.redacted_body(b'{"inputs": [{"name": "pixels", "data": [1, 2]}]}', "application/json")
    '{"inputs": [{"name": "pixels", "data": "[redacted]"}]}'
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .environment import PAYLOAD_LOG_BYTES, PAYLOAD_LOG_RATE, PAYLOAD_REDACT
from .http import HttpRequest, HttpResponse
from .observability import logger
from .protocols.oip_routes import HEADER_LENGTH

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "x-amz-security-token", "proxy-authorization"})
REDACTED = "[redacted]"


@dataclass(frozen=True)
class PayloadLog:
    rate: float = 0.0
    max_bytes: int = 1024
    redact: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "PayloadLog":
        raw_rate = environ.get(PAYLOAD_LOG_RATE, "0").strip() or "0"
        try:
            rate = float(raw_rate)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{PAYLOAD_LOG_RATE}={raw_rate!r} is invalid; set a share between 0 and 1 such as 0.01")
        raw_bytes = environ.get(PAYLOAD_LOG_BYTES, "").strip()
        max_bytes = int(raw_bytes) if raw_bytes.isdigit() else cls.max_bytes
        redact = frozenset(name.strip() for name in environ.get(PAYLOAD_REDACT, "").split(",") if name.strip())
        return cls(rate, max_bytes, redact)

    def maybe_log(self, request: HttpRequest, response: HttpResponse, sample: Callable[[], float] = random.random) -> bool:
        """Log this request's payloads when it is sampled; True when it was."""
        if self.rate <= 0.0 or sample() >= self.rate:
            return False
        headers = {name: (REDACTED if name.lower() in SECRET_HEADERS else value[:200]) for name, value in request.headers.items()}
        logger.info(
            "payload sample",
            method=request.method[:16],
            path=request.path[:200],
            request_headers=headers,
            request_body=self.redacted_body(request.body, request.content_type, request.headers.get(HEADER_LENGTH)),
            status=response.status,
            response_body=self.redacted_body(
                response.body, response.headers.get("Content-Type", ""), response.headers.get(HEADER_LENGTH)
            ),
        )
        return True

    def redacted_body(self, body: bytes, content_type: str, header_length: str | None = None) -> str:
        """The body as logged: JSON with redacted tensor values, binary sections as their size, at most max_bytes."""
        binary = b""
        if header_length and header_length.isdigit():
            body, binary = body[: int(header_length)], body[int(header_length) :]
        try:
            document = json.loads(body) if body else None
        except (ValueError, RecursionError):
            text = f"<{len(body)} bytes, not JSON>"
        else:
            text = json.dumps(self._redact(document)) if document is not None else ""
        if binary:
            text += f" <{len(binary)} binary tensor bytes not logged>"
        return text if len(text) <= self.max_bytes else text[: self.max_bytes] + f"…({len(text)} chars)"

    def _redact(self, document: Any) -> Any:
        if not self.redact or not isinstance(document, dict):
            return document
        everything = "*" in self.redact
        for key in ("inputs", "outputs"):
            tensors = document.get(key)
            if isinstance(tensors, list):  # Open Inference Protocol
                for tensor in tensors:
                    if isinstance(tensor, dict) and "data" in tensor and (everything or tensor.get("name") in self.redact):
                        tensor["data"] = REDACTED
            elif isinstance(tensors, dict):  # TF Serving columnar
                for name in tensors:
                    if everything or name in self.redact:
                        tensors[name] = REDACTED
            elif key in document and everything:
                document[key] = REDACTED
        for key in ("instances", "predictions"):  # TF Serving rows
            rows = document.get(key)
            if isinstance(rows, list):
                if everything:
                    document[key] = REDACTED
                else:
                    for row in rows:
                        if isinstance(row, dict):
                            row.update({name: REDACTED for name in row if name in self.redact})
        return document
