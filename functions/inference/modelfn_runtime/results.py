"""Results of event-triggered work: chunk answers merged into one document, written exactly once.

A job's chunks answer as Open Inference Protocol responses (``.json``, ``.npy``, ``.npz`` inputs) or TF
Serving predictions (``.jsonl``); ``Collector`` concatenates them along the batch dimension, so a
million-row ``.npy`` gives one result with a million rows. The first refused chunk ends the job: its
error (with the rows it concerned) is the job's result. ``deliver`` writes the result to
``outbox/<model>/<name>.json`` (or the error to ``errors/<model>/<name>.json``) with metadata naming
model, version, request id and duration, and sends a summary to the job's reply queue, if any.

Example:
    >>> collector = Collector()
    >>> collector.add(HttpResponse.json(200, {"predictions": [[1.0]]}), rows=1)
    True
    >>> collector.add(HttpResponse.json(200, {"predictions": [[2.0]]}), rows=1)
    True
    >>> collector.document()
    {'predictions': [[1.0], [2.0]]}
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from . import aws
from .http import HttpResponse
from .jobs import ERRORS, OUTBOX, Job, RetryableJobError, Settings

REPLY_INLINE_LIMIT = 200 * 1024
"""A reply message carries the result itself up to this size (SQS allows 256 KiB), else only its URI."""


@dataclass
class Outcome:
    status: int
    document: dict[str, Any]
    items: int


class Collector:
    """Merges the answers to one job's chunks; stops at the first error."""

    def __init__(self) -> None:
        self._document: dict[str, Any] | None = None
        self._error: tuple[int, dict[str, Any]] | None = None
        self.items = 0
        self.chunks = 0

    def add(self, response: HttpResponse, rows: int | None = None) -> bool:
        """Take one chunk's answer; False once the job has failed (the caller stops sending chunks)."""
        try:
            payload = json.loads(response.body) if response.body else {}
        except ValueError:
            payload = {"error": "the model's answer was not JSON"}
        start = self.items
        if response.status >= 400:
            message = payload.get("error", f"status {response.status}")
            if self.chunks:
                message = f"rows from {start}: {message}"
            self._error = (response.status, {"error": message})
            return False
        count = _rows(payload) if rows is None else rows
        self.items += count
        self.chunks += 1
        self._document = payload if self._document is None else _merge(self._document, payload)
        return True

    @property
    def status(self) -> int:
        return self._error[0] if self._error else 200

    def document(self) -> dict[str, Any]:
        if self._error:
            return self._error[1]
        return self._document or {}

    def outcome(self) -> Outcome:
        return Outcome(self.status, self.document(), self.items)


def _rows(payload: dict[str, Any]) -> int:
    if "predictions" in payload:
        return len(payload["predictions"])
    outputs = payload.get("outputs") or []
    shape = outputs[0].get("shape") if outputs and isinstance(outputs[0], dict) else None
    return int(shape[0]) if shape else 1


def _merge(document: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    if "predictions" in document:
        document["predictions"].extend(chunk.get("predictions", []))
        return document
    by_name = {output["name"]: output for output in chunk.get("outputs", [])}
    for output in document.get("outputs", []):
        part = by_name[output["name"]]
        output["data"].extend(part["data"])
        output["shape"][0] += part["shape"][0]
    return document


def result_key(job: Job, status: int) -> str:
    return f"{OUTBOX if status < 400 else ERRORS}/{job.model or '_unknown'}/{job.result_name}.json"


def deliver(job: Job, outcome: Outcome, *, model: str, version: str, settings: Settings) -> dict[str, Any]:
    """Write the job's one result (or error) to the data bucket, then reply; the job's summary."""
    if not settings.data_bucket:
        raise RetryableJobError("MODELFN_DATA_BUCKET is not set, so results have nowhere to go; deploy with the modelfn "
                                "template (or set it for local runs)")
    key = result_key(job, outcome.status)
    duration_ms = round((time.time() - job.started) * 1000, 1)
    document = outcome.document
    if outcome.status >= 400:
        document = {**document, "status": outcome.status, "input": job.source, "model": job.model, "request_id": job.request_id}
    body = json.dumps(document, separators=(",", ":")).encode()
    metadata = {
        "model": model, "version": version, "request-id": job.request_id, "duration-ms": str(duration_ms),
        "status": str(outcome.status), "items": str(outcome.items), "source": job.source[:512], "trigger": job.trigger,
    }
    if job.tenant:
        metadata["tenant"] = job.tenant
    _s3_put(settings.data_bucket, key, body, metadata)
    summary = {"status": outcome.status, "output": f"s3://{settings.data_bucket}/{key}", "model": model, "version": version,
               "items": outcome.items, "source": job.source, "request_id": job.request_id}
    if outcome.status >= 400:
        summary["error"] = outcome.document.get("error", "")
    if job.reply_to:
        reply = dict(summary)
        if outcome.status < 400 and len(body) <= REPLY_INLINE_LIMIT:
            reply["result"] = document
        _sqs_send(job.reply_to, json.dumps(reply, separators=(",", ":")))
    return summary


def _s3_put(bucket: str, key: str, body: bytes, metadata: dict[str, str]) -> None:
    try:
        aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                                    Metadata={k: _ascii(v) for k, v in metadata.items()})
    except Exception as error:
        raise RetryableJobError(f"writing s3://{bucket}/{key} failed ({aws.error_code(error) or type(error).__name__})") from error


def _sqs_send(queue_url: str, body: str) -> None:
    try:
        aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)
    except Exception as error:
        raise RetryableJobError(f"replying to {queue_url} failed ({aws.error_code(error) or type(error).__name__})") from error


def _ascii(value: str) -> str:
    return value.encode("ascii", "replace").decode("ascii")
