"""What one request may hold, checked before anything is allocated for it: the one place for these bounds.

Lambda's 6 MB synchronous payload limit (``errors.LAMBDA_SYNC_PAYLOAD_LIMIT``) bounds the body; these bound
what a body may ask the function to build: the batch size (per model, ``max_batch_size`` in
infra/catalog.yaml, ``MODELFN_MAX_BATCH_SIZE`` in the function), the elements of all tensors together, the
size of one dimension and the nesting of tensor data.

Example:
    >>> Limits.from_env({"MODELFN_MAX_BATCH_SIZE": "32"}).max_batch_size
    32
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .environment import MAX_BATCH_SIZE
from .errors import LAMBDA_SYNC_PAYLOAD_LIMIT

DEFAULT_MAX_BATCH_SIZE = 1024
"""Largest first (batch) dimension a dynamic-batch input accepts unless the catalog says otherwise.
Event-triggered jobs (``jobs.Settings.max_rows``) chunk their rows to at most this many, too."""

MAX_DIMENSION = 2**31 - 1
"""No dimension of any tensor may exceed this (numpy and ONNX Runtime refuse far less than 2**63)."""

MAX_ELEMENTS = LAMBDA_SYNC_PAYLOAD_LIMIT
"""Elements of all input tensors of one request together: a 6 MB body cannot carry more (one byte each)."""

BATCH_SIZE_VARIABLE = MAX_BATCH_SIZE


@dataclass(frozen=True)
class Limits:
    """The bounds one function applies to every request."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_elements: int = MAX_ELEMENTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Limits":
        """Limits from ``MODELFN_MAX_BATCH_SIZE`` (a positive integer; unset: the default)."""
        raw = environ.get(BATCH_SIZE_VARIABLE, "").strip()
        if not raw:
            return cls()
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{BATCH_SIZE_VARIABLE}={raw!r} is invalid; set a positive integer such as 64")
        return cls(max_batch_size=int(raw))
