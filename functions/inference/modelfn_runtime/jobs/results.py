"""Results of event-triggered work: chunk answers merged into one document, written exactly once.

A job's chunks answer as Open Inference Protocol responses (``.json``, ``.npy``, ``.npz`` inputs) or TF
Serving predictions (``.jsonl``); ``Collector`` concatenates them along the batch dimension, so a
million-row ``.npy`` gives one result with a million rows, spooled through /tmp rather than held in memory. The first refused chunk ends the job: its
error (with the rows it concerned) is the job's result. ``deliver`` writes the result to
``outbox/<model>/<name>.json`` (or the error to ``errors/<model>/<name>.json``) with metadata naming
model, version, request id and duration, and sends a summary to the job's reply queue, if any.

Example:
    >>> with Collector() as collector:
    ...     collector.add(HttpResponse.json(200, {"predictions": [[1.0]]}), rows=1)
    ...     collector.add(HttpResponse.json(200, {"predictions": [[2.0]]}), rows=1)
    ...     collector.finish().load()
    True
    True
    {'predictions': [[1.0], [2.0]]}
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from .. import aws
from ..http import HttpResponse, status_class
from .job import ERRORS, OUTBOX, Job, RetryableJobError, Settings

REPLY_INLINE_LIMIT = 200 * 1024
"""A reply message carries the result itself up to this size (SQS allows 256 KiB), else only its URI."""


@dataclass
class JobResult:
    """A job's one result: its status, and the result or error document (or, for a success, the file it is spooled
    to), with the number of items it covers."""

    status: int
    document: dict[str, Any] | None
    """The result or error as a dict; None when the result is spooled to ``path`` (a success)."""
    items: int
    path: str | None = None

    def body_size(self) -> int:
        return os.path.getsize(self.path) if self.path else len(_json(self.document or {}))

    def load(self) -> dict[str, Any]:
        if self.path:
            with open(self.path, "rb") as handle:
                return json.load(handle)
        return self.document or {}


class Collector:
    """Merges the answers to one job's chunks; stops at the first error.

    Memory holds one chunk's answer at a time: each output's values are appended to a spool file under
    /tmp, and ``finish`` writes the one result document from the spools (``JobResult.path``), which
    ``deliver`` streams to S3. ``close`` removes the files.
    """

    def __init__(self) -> None:
        self._head: dict[str, Any] | None = None
        self._outputs: list[dict[str, Any]] = []
        self._spools: dict[str, Any] = {}
        self._error: tuple[int, dict[str, Any]] | None = None
        self._result: str | None = None
        self.items = 0
        self.chunks = 0

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, response: HttpResponse, rows: int | None = None) -> bool:
        """Take one chunk's answer; False once the job has failed (the caller stops sending chunks)."""
        try:
            payload = json.loads(response.body) if response.body else {}
        except ValueError:
            payload = {"error": "the model's answer was not JSON"}
        if status_class(response.status) != "ok" or not isinstance(payload, dict):
            message = payload.get("error", f"status {response.status}") if isinstance(payload, dict) else "unreadable answer"
            if self.chunks:
                message = f"rows from {self.items}: {message}"
            self._error = (500 if status_class(response.status) == "ok" else response.status, {"error": message})
            return False
        self.items += _rows(payload) if rows is None else rows
        self.chunks += 1
        if "predictions" in payload:
            self._append("predictions", payload.pop("predictions"))
            self._head = self._head if self._head is not None else {**payload, "predictions": None}
            return True
        outputs = payload.pop("outputs", [])
        if self._head is None:
            self._head = payload
            self._outputs = [{k: v for k, v in o.items() if k != "data"} for o in outputs]
        else:
            by_name = {o["name"]: o for o in self._outputs}
            for output in outputs:
                by_name[output["name"]]["shape"][0] += output["shape"][0]
        for output in outputs:
            self._append(output["name"], output.get("data", []))
        return True

    def finish(self) -> JobResult:
        """The job's result: the error, or the merged result written to one file."""
        if self._error:
            return JobResult(self._error[0], self._error[1], self.items)
        handle, self._result = tempfile.mkstemp(prefix="modelfn-result-", suffix=".json")
        with os.fdopen(handle, "w") as out:
            head = dict(self._head or {})
            if "predictions" in head:
                head.pop("predictions")
                out.write(_json(head)[:-1] + ("," if head else "") + '"predictions":[')
                self._copy("predictions", out)
                out.write("]}")
            else:
                out.write(_json(head)[:-1] + ("," if head else "") + '"outputs":[')
                for index, output in enumerate(self._outputs):
                    out.write(("," if index else "") + _json(output)[:-1] + ',"data":[')
                    self._copy(output["name"], out)
                    out.write("]}")
                out.write("]}")
        self._discard_spools()
        return JobResult(200, None, self.items, self._result)

    def close(self) -> None:
        self._discard_spools()
        if self._result and os.path.exists(self._result):
            os.unlink(self._result)

    def _append(self, name: str, values: list[Any]) -> None:
        spool = self._spools.get(name)
        if spool is None:
            spool = self._spools[name] = tempfile.TemporaryFile("w+", prefix="modelfn-spool-")
            spool.written = False
        if values:
            text = _json(values)[1:-1]
            spool.write(("," if spool.written else "") + text)
            spool.written = True

    def _copy(self, name: str, out: Any) -> None:
        spool = self._spools.get(name)
        if spool is not None:
            spool.seek(0)
            shutil.copyfileobj(spool, out)

    def _discard_spools(self) -> None:
        for spool in self._spools.values():
            spool.close()
        self._spools.clear()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _rows(payload: dict[str, Any]) -> int:
    if "predictions" in payload:
        return len(payload["predictions"])
    outputs = payload.get("outputs") or []
    shape = outputs[0].get("shape") if outputs and isinstance(outputs[0], dict) else None
    return int(shape[0]) if shape else 1


def result_key(job: Job, status: int) -> str:
    return f"{OUTBOX if status_class(status) == 'ok' else ERRORS}/{job.model or '_unknown'}/{job.result_name}.json"


def deliver(job: Job, result: JobResult, *, model: str, version: str, settings: Settings) -> dict[str, Any]:
    """Write the job's one result (or error) to the data bucket, then reply; the job's summary."""
    if not settings.data_bucket:
        raise RetryableJobError("MODELFN_DATA_BUCKET is not set, so results have nowhere to go; deploy with the modelfn "
                                "template (or set it for local runs)")
    key = result_key(job, result.status)
    duration_ms = round((time.time() - job.started) * 1000, 1)
    metadata = {
        "model": model, "version": version, "request-id": job.request_id, "duration-ms": str(duration_ms),
        "status": str(result.status), "items": str(result.items), "source": job.source[:512], "trigger": job.trigger,
    }
    if job.tenant:
        metadata["tenant"] = job.tenant
    if result.path:
        _s3_upload(settings.data_bucket, key, result.path, metadata)
    else:
        document = dict(result.document or {})
        if status_class(result.status) != "ok":
            document.update(status=result.status, input=job.source, model=job.model, request_id=job.request_id)
        _s3_upload(settings.data_bucket, key, _json(document).encode(), metadata)
    summary = {"status": result.status, "output": f"s3://{settings.data_bucket}/{key}", "model": model, "version": version,
               "items": result.items, "source": job.source, "request_id": job.request_id}
    if status_class(result.status) != "ok":
        summary["error"] = (result.document or {}).get("error", "")
    if job.reply_to:
        reply = dict(summary)
        if status_class(result.status) == "ok" and result.body_size() <= REPLY_INLINE_LIMIT:
            reply["result"] = result.load()
        _sqs_send(job.reply_to, _json(reply))
    return summary


def _s3_upload(bucket: str, key: str, body: bytes | str, metadata: dict[str, str]) -> None:
    """One object: bytes in one PutObject, a file streamed by the transfer manager (multipart when large)."""
    extra = {"ContentType": "application/json", "Metadata": {k: _ascii(v) for k, v in metadata.items()}}
    try:
        if isinstance(body, str):
            aws.client("s3").upload_file(body, bucket, key, ExtraArgs=extra)
        else:
            aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, **extra)
    except Exception as error:
        raise RetryableJobError(f"writing s3://{bucket}/{key} failed ({aws.error_code(error) or type(error).__name__})") from error


def _sqs_send(queue_url: str, body: str) -> None:
    try:
        aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)
    except Exception as error:
        raise RetryableJobError(f"replying to {queue_url} failed ({aws.error_code(error) or type(error).__name__})") from error


def _ascii(value: str) -> str:
    return value.encode("ascii", "replace").decode("ascii")
