"""The names of every environment variable a modelfn function reads: the one place both sides spell them.

The template renderer (``modelfn_infra``) writes these names into ``template.yaml`` and the local tools set them;
the runtime reads them. Both import them from here, so a renamed variable cannot drift apart (the runtime
imports nothing from ``modelfn_infra``). Each constant's docstring says what the value means.

Example:
    >>> import os
    >>> os.environ.get(MODEL_NAME, "")  # doctest: +SKIP
    'digits'
"""

from __future__ import annotations

# --- the model this function serves ---------------------------------------------------------------------------
MODEL_NAME = "MODEL_NAME"
"""The model this function serves; unset on the API's catch-all function."""
MODEL_VERSION = "MODEL_VERSION"
"""The served version (default ``1``)."""
MODEL_URI = "MODEL_URI"
"""``s3://bucket/prefix/name/version/`` or a local directory; default: the model inside the function package."""
MODELS = "MODELFN_MODELS"
"""Comma-separated names of every model behind the API (for 404 hints)."""
EXECUTION_PROVIDER = "MODELFN_EXECUTION_PROVIDER"
"""``auto`` (default), ``cpu``, ``cuda`` or ``tensorrt``."""
CUDA_TF32 = "MODELFN_CUDA_TF32"
"""``1`` allows TF32 math on CUDA (off by default: parity with the CPU)."""
ACCELERATOR_MEMORY_GIB = "MODELFN_ACCELERATOR_MEMORY_GIB"
"""GiB of GPU memory per device the function's ``AcceleratorConfig`` asks for (catalog ``accelerator_memory_gib``)."""
ENVIRONMENT_CONCURRENCY = "MODELFN_ENVIRONMENT_CONCURRENCY"
"""Requests one execution environment serves at once on Lambda Managed Instances (catalog
``environment_concurrency``): for Python each runs in its own process, with its own session and GPU memory."""
CACHE_DIR = "MODELFN_CACHE_DIR"
"""Where models downloaded from S3 are kept (default under /tmp)."""
S3_CONNECT_TIMEOUT_S = "MODELFN_S3_CONNECT_TIMEOUT_S"
S3_READ_TIMEOUT_S = "MODELFN_S3_READ_TIMEOUT_S"
S3_MAX_ATTEMPTS = "MODELFN_S3_MAX_ATTEMPTS"

# --- request limits and payload logging ---------------------------------------------------------------------------
MAX_BATCH_SIZE = "MODELFN_MAX_BATCH_SIZE"
"""Largest batch one request may carry (catalog ``max_batch_size``)."""
PAYLOAD_LOG_RATE = "MODELFN_PAYLOAD_LOG_RATE"
"""Share of requests whose payloads are logged, 0 (default, never) to 1."""
PAYLOAD_LOG_BYTES = "MODELFN_PAYLOAD_LOG_BYTES"
PAYLOAD_REDACT = "MODELFN_PAYLOAD_REDACT"

# --- the catch-all function: cards and readiness ----------------------------------------------------------------
CARD_URIS = "MODELFN_CARD_URIS"
"""Comma-separated model directories whose ``modelcard.json`` the playground and ``/openapi.json`` describe."""
MODEL_FUNCTIONS = "MODELFN_MODEL_FUNCTIONS"
"""``name=FunctionName[:alias],…``: the model functions the catch-all probes for readiness."""
READY_CACHE_S = "MODELFN_READY_CACHE_S"

# --- event-triggered work -----------------------------------------------------------------------------------------
DATA_BUCKET = "MODELFN_DATA_BUCKET"
"""The bucket of ``inbox/``, ``requests/``, ``outbox/`` and ``errors/``."""
IDEMPOTENCY_TABLE = "MODELFN_IDEMPOTENCY_TABLE"
REPLY_QUEUE_PREFIX = "MODELFN_REPLY_QUEUE_PREFIX"
"""SQS reply queues a message may name must start with this."""
MAX_RECEIVE_COUNT = "MODELFN_MAX_RECEIVE_COUNT"
"""The model queue's maxReceiveCount (on that receive a failing message's reason is written to errors/)."""
CHUNK_BYTES = "MODELFN_CHUNK_BYTES"
CHUNK_ROWS = "MODELFN_CHUNK_ROWS"
MAX_OBJECT_BYTES = "MODELFN_MAX_OBJECT_BYTES"
MAX_JSON_BYTES = "MODELFN_MAX_JSON_BYTES"
IDEMPOTENCY_TTL_S = "MODELFN_IDEMPOTENCY_TTL_S"

# --- authentication (the catalog's auth: section) -------------------------------------------------------------------
AUTH_MODE = "MODELFN_AUTH_MODE"
"""``iam`` or ``jwt`` when the model routes need more than an API key (unset: ``api_key``); /openapi.json says so."""

# --- metering -----------------------------------------------------------------------------------------------------
USAGE_TABLE = "MODELFN_USAGE_TABLE"
"""The DynamoDB table of per-tenant usage: the usage aggregator's (model functions write metering lines, not items)."""


def model_list(raw: str | None) -> list[str]:
    """The names in a comma-separated list such as ``MODELFN_MODELS`` (empty items dropped).

    Example:
        >>> model_list("digits,,mnist ")
        ['digits', 'mnist']
    """
    return [name.strip() for name in (raw or "").split(",") if name.strip()]
