"""Event-triggered work: one input in (an S3 object or an inline request), exactly one result out.

S3 records, SQS messages and direct invokes that carry an S3 pointer all become ``Job``\\ s (the trigger adapters
build them with ``Job.for_object``, ``pointer_job`` and ``json_outputs``). ``runner.JobRunner`` runs each on the
request line — ``inputs.envelopes`` (decode, in bounded chunks) -> ``Service.handle`` (session.run, metered once
per chunk) -> ``results.Collector`` (merge) -> ``results.deliver`` (``outbox/`` or ``errors/``, and a reply
queue when asked) — and says whether it is finished or must be retried:

* the model answered (2xx): the predictions land in ``outbox/<model>/<name>.json``;
* the input is bad (4xx: poison): the reason lands in ``errors/<model>/<name>.json`` and the job is
  finished — retrying cannot fix it;
* anything transient (S3 throttling or 5xx, a timeout, a model fault): ``RetryableJobError`` is raised,
  the event source redelivers, and after ``maxReceiveCount`` receives (SQS) or two retries (async
  invokes, S3 events) the event goes to the dead-letter queue.

Example:
    >>> job = Job.for_object(S3Object("data", "inbox/digits/acme/batch.npy", etag="e1"), trigger="s3")
    >>> job.model, job.tenant, job.result_name
    ('digits', 'acme', 'acme/batch.npy')
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import unquote_plus

from .. import environment as names
from ..errors import BadRequest, ModelfnError
from ..protocols.oip_routes import INFER
from ..protocols.tfserving_routes import PREDICT
from ..validation import DEFAULT_MAX_BATCH_SIZE, Limits

INBOX = "inbox"
"""``inbox/<model>/[<tenant>/]<name>``: putting an object here runs the model (the S3 trigger)."""
REQUESTS = "requests"
"""``requests/<model>/<name>``: large requests that SQS messages and async invokes point to (no trigger)."""
OUTBOX = "outbox"
ERRORS = "errors"

FORMATS = (".json", ".npy", ".npz", ".jsonl")

Summary = dict[str, Any]
"""What a finished job answers: its status, where its result went, how many items it covered."""


class RetryableJobError(RuntimeError):
    """A transient failure: the job is not finished and its event must be delivered again."""


@dataclass(frozen=True)
class Settings:
    """Limits and locations of event-triggered work (the template sets the environment variables)."""

    data_bucket: str | None = None
    idempotency_table: str | None = None
    reply_queue_prefix: str | None = None
    chunk_bytes: int = 4 << 20
    max_rows: int = DEFAULT_MAX_BATCH_SIZE
    max_object_bytes: int = 256 << 20
    max_json_bytes: int = 16 << 20
    idempotency_ttl_s: int = 4 * 24 * 3600
    max_receive_count: int = 0
    """The model queue's maxReceiveCount: on that receive a failing message's reason is written to errors/."""

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ

        def number(name: str, default: int) -> int:
            raw = env.get(name, "")
            return int(raw) if raw.isdigit() and int(raw) > 0 else default

        return cls(
            data_bucket=env.get(names.DATA_BUCKET) or None,
            idempotency_table=env.get(names.IDEMPOTENCY_TABLE) or None,
            reply_queue_prefix=env.get(names.REPLY_QUEUE_PREFIX) or None,
            chunk_bytes=number(names.CHUNK_BYTES, cls.chunk_bytes),
            # a chunk is one request: never more rows than the model accepts (MODELFN_MAX_BATCH_SIZE)
            max_rows=min(number(names.CHUNK_ROWS, cls.max_rows), Limits.from_env(env).max_batch_size),
            max_object_bytes=number(names.MAX_OBJECT_BYTES, cls.max_object_bytes),
            max_json_bytes=number(names.MAX_JSON_BYTES, cls.max_json_bytes),
            idempotency_ttl_s=number(names.IDEMPOTENCY_TTL_S, cls.idempotency_ttl_s),
            max_receive_count=number(names.MAX_RECEIVE_COUNT, 0),
        )


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    etag: str = ""
    size: int | None = None
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def parse(cls, uri: str) -> "S3Object":
        """``s3://bucket/key`` -> S3Object; BadRequest naming the expected form otherwise."""
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise BadRequest(f"input_uri must be an s3://bucket/key URI, got {str(uri)[:80]!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or not key or key.endswith("/"):
            raise BadRequest(f"input_uri {uri[:80]!r} must name one object: s3://bucket/key")
        return cls(bucket, key)


@dataclass(frozen=True)
class Job:
    """One unit of event-triggered work and where its one result goes."""

    model: str
    source: str
    result_name: str
    idempotency_key: str
    trigger: str
    tenant: str | None = None
    request_id: str = ""
    version: str | None = None
    payload: dict[str, Any] | None = None
    object: S3Object | None = None
    reply_to: str | None = None
    refusal: str | None = None
    started: float = field(default_factory=time.time, compare=False)

    @classmethod
    def for_object(cls, obj: S3Object, *, trigger: str, request_id: str = "") -> "Job":
        """The job for an object put under ``inbox/<model>/``; the tenant is the next key segment, if any."""
        key = unquote_plus(obj.key)
        obj = S3Object(obj.bucket, key, obj.etag, obj.size, obj.version_id)
        parts = key.split("/")
        model = parts[1] if len(parts) > 2 and parts[0] == INBOX else ""
        name = "/".join(parts[2:])
        tenant = parts[2] if len(parts) > 3 else None
        identity = f"s3:{obj.bucket}/{key}@{obj.version_id or obj.etag}"
        refusal = None
        if not model or not name:
            refusal = f"object {obj.uri[:120]} is not under {INBOX}/<model>/; put inputs at s3://{obj.bucket}/{INBOX}/<model>/<name>"
        return cls(model=model, source=obj.uri, result_name=name or key, idempotency_key=identity, trigger=trigger,
                   tenant=tenant, request_id=request_id, object=obj, refusal=refusal)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("started")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        data = dict(data)
        if data.get("object"):
            data["object"] = S3Object(**data["object"])
        return cls(**data)

    @property
    def infer_path(self) -> str:
        return INFER.path_for(self.model, self.version or None)

    @property
    def predict_path(self) -> str:
        return PREDICT.path_for(self.model, self.version or None)


def pointer_job(job: Job, uri: Any, settings: Settings) -> Job:
    """``job`` reading its request from the object ``uri`` names, which must be under ``requests/<model>/`` in the
    data bucket; the job refused (with the fix) otherwise."""
    try:
        target = S3Object.parse(uri)
    except ModelfnError as error:
        return replace(job, refusal=error.message)
    prefix = f"{REQUESTS}/{job.model}/"
    if target.bucket != settings.data_bucket or not target.key.startswith(prefix):
        return replace(job, refusal=f"input_uri must name an object under s3://{settings.data_bucket}/{prefix}; "
                                    f"copy it there (objects under {INBOX}/ run by themselves)")
    return replace(job, object=target, source=target.uri)


def json_outputs(payload: dict[str, Any]) -> dict[str, Any]:
    """An OIP request asking for JSON outputs: a job's results travel as JSON documents, never binary sections."""
    payload = dict(payload)
    parameters = payload.get("parameters")
    if isinstance(parameters, dict) and "binary_data_output" in parameters:
        payload["parameters"] = {k: v for k, v in parameters.items() if k != "binary_data_output"}
    outputs = payload.get("outputs")
    if isinstance(outputs, list):
        payload["outputs"] = [
            {**o, "parameters": {k: v for k, v in o["parameters"].items() if k != "binary_data"}}
            if isinstance(o, dict) and isinstance(o.get("parameters"), dict) else o
            for o in outputs
        ]
    return payload
