"""Record triggers: S3 event notifications and SQS batches, each record run as one idempotent job.

S3 (``inbox/<model>/…`` object created, delivered by Lambda as an asynchronous invoke): every record's
job runs; when any must be retried the invocation fails, so Lambda retries it (twice, then the
OnFailure destination, the model's dead-letter queue). Records already finished are skipped on retry
by idempotency.

SQS: powertools' ``BatchProcessor`` reports each failed message in ``batchItemFailures``
(``ReportBatchItemFailures``), so good messages are deleted and never run twice; a failed message comes
back after its visibility timeout and goes to the dead-letter queue after ``maxReceiveCount`` receives.
A message body is one of (docs/events.md has the full contract)::

    {"inputs": [...], "id": "...", "parameters": {...}}     an Open Inference Protocol request, inline
    {"input_uri": "s3://<data bucket>/requests/<model>/x.npy"}   a pointer to a large request
    {"Records": [{"eventSource": "aws:s3", ...}]}           an S3 event notification (S3 -> SQS)

each optionally with ``"tenant"`` and ``"reply_to"`` (an SQS queue URL), also accepted as message
attributes. Results land in ``outbox/<model>/messages/<messageId>.json`` (errors in ``errors/…``).

Example:
    >>> SqsTrigger().matches({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})
    True
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..envelope import request_id
from ..observability import logger
from .base import Serving, Trigger

if TYPE_CHECKING:  # the jobs package loads with the first record event, not at init (an API cold start needs none)
    from ..jobs.job import Job, Settings

OIP_FIELDS = ("inputs", "outputs", "parameters", "id")
MESSAGE_FORMS = ('an Open Inference Protocol request ({"inputs": [...]}), an S3 pointer ({"input_uri": "s3://..."}) '
                 "or an S3 event notification")


class RecordTrigger(Trigger):
    """Shared by S3 and SQS: an event of ``Records`` from ``source``, each record run as one job."""

    source = ""

    def matches(self, event: Any) -> bool:
        records = event.get("Records") if isinstance(event, dict) else None
        return (isinstance(records, list) and bool(records) and isinstance(records[0], dict)
                and records[0].get("eventSource") == self.source)


class S3Trigger(RecordTrigger):
    name = "s3"
    source = "aws:s3"

    def dispatch(self, event: dict[str, Any], context: Any, serving: Serving) -> None:
        run = serving.jobs().idempotent(context)
        rid = request_id(context)
        served = serving.service.served_name
        retry = []
        for record in event["Records"]:
            job = s3_job(record, request_id=rid, trigger=self.name, served=served)
            if job is None:
                continue
            try:
                run(job)
            except Exception as error:  # transient, in progress elsewhere, or a fault: Lambda retries the event
                logger.warning("job must be retried", source=job.source[:200], reason=str(error)[:300])
                retry.append(job.source)
        if retry:
            from ..jobs.job import RetryableJobError

            raise RetryableJobError(f"{len(retry)} of {len(event['Records'])} objects must be retried: {', '.join(retry)[:500]}")
        return None


class SqsTrigger(RecordTrigger):
    name = "sqs"
    source = "aws:sqs"

    def dispatch(self, event: dict[str, Any], context: Any, serving: Serving) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        runner = serving.jobs()
        run = runner.idempotent(context)
        served = serving.service.served_name

        def record_handler(record: Any) -> None:
            for job in sqs_jobs(record.raw_event, served=served, settings=runner.settings, request_id=request_id(context)):
                try:
                    run(job)
                except Exception as error:
                    if _last_receive(record.raw_event, runner.settings):
                        runner.dead_letter(job, error)
                    raise

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


def s3_job(record: dict[str, Any], *, request_id: str, trigger: str, served: str | None) -> Job | None:
    """The job for one S3 event record; None for records that are not object creations (e.g. test events)."""
    from ..jobs.job import Job, S3Object

    if not str(record.get("eventName", "")).startswith("ObjectCreated"):
        logger.info("ignoring S3 event", event_name=str(record.get("eventName"))[:80])
        return None
    s3 = record.get("s3") if isinstance(record.get("s3"), dict) else {}
    bucket, obj = s3.get("bucket") or {}, s3.get("object") or {}
    if not isinstance(bucket, dict) or not isinstance(obj, dict) or not bucket.get("name") or not obj.get("key"):
        return _served_job(Job(model=served or "", source="s3:malformed", result_name=f"malformed/{request_id}",
                               idempotency_key=f"s3-malformed:{request_id}", trigger=trigger, request_id=request_id,
                               refusal="the S3 event record has no s3.bucket.name or s3.object.key"), served)
    target = S3Object(str(bucket["name"]), str(obj["key"]), str(obj.get("eTag", "")), obj.get("size"), obj.get("versionId"))
    return _served_job(Job.for_object(target, trigger=trigger, request_id=request_id), served)


def sqs_jobs(record: dict[str, Any], *, served: str | None, settings: Settings, request_id: str = "") -> list[Job]:
    """The jobs one SQS message carries (an S3 notification may carry several objects)."""
    from ..jobs.job import Job, json_outputs, pointer_job

    message_id = str(record.get("messageId", ""))
    base = Job(model=served or "", source=f"sqs:{message_id}", result_name=f"messages/{message_id}",
               idempotency_key=f"sqs:{message_id}", trigger="sqs", request_id=request_id or message_id)
    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        return [replace(base, refusal=f"the message body is not JSON; send {MESSAGE_FORMS}")]
    if not isinstance(body, dict):
        return [replace(base, refusal=f"the message body must be a JSON object: {MESSAGE_FORMS}")]
    if body.get("Event") == "s3:TestEvent":
        return []
    if isinstance(body.get("Records"), list):
        jobs = [s3_job(item, request_id=base.request_id, trigger="sqs", served=served)
                for item in body["Records"] if isinstance(item, dict)]
        return [job for job in jobs if job is not None]
    attributes = record.get("messageAttributes") or {}
    tenant = _text(body.get("tenant")) or _attribute(attributes, "tenant")
    reply_to = _text(body.get("reply_to")) or _attribute(attributes, "reply_to")
    version = body.get("model_version")
    job = replace(base, tenant=tenant, reply_to=reply_to, version=str(version) if version is not None else None)
    problem = _reply_problem(reply_to, settings) or _model_problem(body, served)
    if problem:
        return [replace(job, reply_to=None if "reply_to" in problem else reply_to, refusal=problem)]
    if "input_uri" in body:
        return [pointer_job(job, body["input_uri"], settings)]
    if "inputs" in body:
        return [replace(job, payload=json_outputs({k: body[k] for k in OIP_FIELDS if k in body}))]
    return [replace(job, refusal=f"the message has neither \"inputs\" nor \"input_uri\"; send {MESSAGE_FORMS}")]


def _served_job(job: Job, served: str | None) -> Job:
    from ..jobs.job import INBOX

    if served is None:
        return replace(job, refusal="this function serves no model; route events to a model's function")
    if job.model != served:
        problem = f"input for model {job.model!r} reached the function of model {served!r}; put it under {INBOX}/{served}/ or the right model's prefix"
        return replace(job, model=served, result_name=f"misrouted/{job.result_name}", refusal=job.refusal or problem)
    return job


def _model_problem(body: dict[str, Any], served: str | None) -> str | None:
    named = body.get("model_name", body.get("model"))
    if served is None:
        return "this function serves no model; send messages to a model's queue"
    if named is not None and named != served:
        return f"this queue feeds model {served!r} but the message names {str(named)[:80]!r}; send it to that model's queue"
    return None


def _reply_problem(reply_to: str | None, settings: Settings) -> str | None:
    if reply_to is None:
        return None
    name = reply_to.rstrip("/").rsplit("/", 1)[-1]
    if not reply_to.startswith(("https://", "http://")) or not name:
        return f"reply_to must be an SQS queue URL, got {reply_to[:80]!r}"
    if settings.reply_queue_prefix and not name.startswith(settings.reply_queue_prefix):
        return f"reply_to queue {name[:80]!r} is not allowed; reply queues must be named {settings.reply_queue_prefix}*"
    return None


def _last_receive(record: dict[str, Any], settings: Settings) -> bool:
    """True when this failure sends the message to the dead-letter queue (its queue's maxReceiveCount)."""
    received = str((record.get("attributes") or {}).get("ApproximateReceiveCount", "0"))
    return bool(settings.max_receive_count) and received.isdigit() and int(received) >= settings.max_receive_count


def _attribute(attributes: Any, name: str) -> str | None:
    value = attributes.get(name) if isinstance(attributes, dict) else None
    return _text(value.get("stringValue")) if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

