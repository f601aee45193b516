"""Lambda's event sources emulated over a local AWS endpoint (moto), for `make demo-events` and the tests.

SAM CLI emulates API Gateway but no event source, so this module plays the Lambda service's part with the
template's own settings; the queues, the bucket notifications and the redrive are moto's real ones:

* **SQS event source mapping**: receive up to ``BatchSize`` messages (waiting up to
  ``MaximumBatchingWindowInSeconds``), invoke the function with an SQS event, delete the messages not named in
  ``batchItemFailures``, delete none when the function fails. A message left in the queue reappears after the
  visibility timeout, and moto's redrive policy moves it to the dead-letter queue after ``maxReceiveCount``.
* **S3 -> Lambda** (an asynchronous invoke): moto sends the bucket's notifications for each model's
  ``inbox/<model>/`` prefix to a local queue; each notification is invoked, retried twice when the function
  fails, and then recorded on the function's OnFailure destination in Lambda's destination-record format.

The invoker is pluggable: ``LocalApp.invoke`` (the real Lambda runtime in a sandbox) for the demo, the handler
in-process for fast tests.

Example:
    >>> sources = EventSources.from_template(app, invoke=app_invoker(app), visibility_s=2)   # doctest: +SKIP
    >>> sources.drain(timeout_s=60)                                                           # doctest: +SKIP
    DrainReport(invocations=12, ...)
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import boto3

from modelfn_runtime import environment as names

S3_EVENTS_QUEUE = "modelfn-local-s3-events"
ASYNC_RETRIES = 2
"""Lambda's default retries of a failed asynchronous invoke, where the template sets no ``MaximumRetryAttempts``."""


@dataclass
class InvokeResult:
    payload: Any
    error: str | None = None
    """Lambda's function error (``errorType: errorMessage``), None when the function returned."""


Invoke = Callable[[str, Any], InvokeResult]


@dataclass
class QueueMapping:
    function: str
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    window_s: float = 0.0
    report_failures: bool = True


@dataclass
class InboxMapping:
    function: str
    bucket: str
    prefix: str
    on_failure_url: str | None = None
    on_success_url: str | None = None
    retries: int = ASYNC_RETRIES


@dataclass
class DrainReport:
    invocations: int = 0
    function_errors: int = 0
    async_failures: int = 0
    seconds: float = 0.0
    idle: bool = False
    errors: list[str] = field(default_factory=list)


class EventSources:
    """The event source mappings of one local deployment, polled until there is nothing left to deliver."""

    def __init__(self, invoke: Invoke, *, region: str = "us-east-1") -> None:
        self.invoke = invoke
        self.region = region
        self.sqs = boto3.client("sqs", region_name=region)
        self.s3 = boto3.client("s3", region_name=region)
        self.queues: list[QueueMapping] = []
        self.inboxes: list[InboxMapping] = []
        self._s3_events_url: str | None = None

    # -- set-up ---------------------------------------------------------------------------------------------

    @classmethod
    def from_template(cls, app: Any, invoke: Invoke, *, visibility_s: int | None = None) -> "EventSources":
        """Create the template's queues, buckets, notifications and tables on the local endpoint, and the mappings."""
        sources = cls(invoke, region=app.region)
        resources = app.resources
        for name in app.function_names():
            properties = resources.get(name, {}).get("Properties", {})
            env = app.function_environment(name)
            invoke_config = properties.get("EventInvokeConfig") or {}
            destinations = invoke_config.get("DestinationConfig") or {}
            for event in (properties.get("Events") or {}).values():
                kind, props = event.get("Type"), event.get("Properties") or {}
                if kind == "SQS":
                    queue = _logical_id(props["Queue"])
                    url, arn = sources.create_queue(queue, resources, visibility_s)
                    sources.queues.append(QueueMapping(
                        name, url, arn, int(props.get("BatchSize", 10)), float(props.get("MaximumBatchingWindowInSeconds", 0)),
                        "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    ))
                elif kind == "S3":
                    rules = props.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                    prefix = next((r["Value"] for r in rules if r["Name"].lower() == "prefix"), "")
                    bucket = env.get(names.DATA_BUCKET) or props["Bucket"]["Ref"]
                    sources.create_bucket(bucket)
                    sources.inboxes.append(InboxMapping(
                        name, bucket, prefix,
                        _destination(sources, destinations.get("OnFailure"), resources, visibility_s),
                        _destination(sources, destinations.get("OnSuccess"), resources, visibility_s),
                        int(invoke_config.get("MaximumRetryAttempts", ASYNC_RETRIES)),
                    ))
            table = env.get(names.IDEMPOTENCY_TABLE)
            if table and table in resources:
                sources.create_table(table, resources[table]["Properties"])
        sources.connect_inboxes()
        return sources

    def create_queue(self, logical_id: str, resources: dict[str, Any], visibility_s: int | None) -> tuple[str, str]:
        properties = dict(resources.get(logical_id, {}).get("Properties") or {})
        attributes: dict[str, str] = {}
        if "RedrivePolicy" in properties:
            policy = properties["RedrivePolicy"]
            _, dlq_arn = self.create_queue(_logical_id(policy["deadLetterTargetArn"]), resources, visibility_s)
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(policy["maxReceiveCount"])})
        visibility = visibility_s if visibility_s is not None else properties.get("VisibilityTimeout")
        if visibility is not None:
            attributes["VisibilityTimeout"] = str(visibility)
        url = self.sqs.create_queue(QueueName=logical_id, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def create_bucket(self, bucket: str) -> None:
        try:
            self.s3.create_bucket(Bucket=bucket)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass

    def create_table(self, name: str, properties: dict[str, Any]) -> None:
        dynamodb = boto3.client("dynamodb", region_name=self.region)
        try:
            dynamodb.create_table(TableName=name, KeySchema=properties["KeySchema"],
                                  AttributeDefinitions=properties["AttributeDefinitions"], BillingMode="PAY_PER_REQUEST")
        except dynamodb.exceptions.ResourceInUseException:
            pass

    def connect_inboxes(self) -> None:
        """Send each inbox prefix's object-created notifications to one local queue (moto's own S3 -> SQS)."""
        if not self.inboxes:
            return
        self._s3_events_url = self.sqs.create_queue(QueueName=S3_EVENTS_QUEUE)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self._s3_events_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        by_bucket: dict[str, list[InboxMapping]] = {}
        for inbox in self.inboxes:
            by_bucket.setdefault(inbox.bucket, []).append(inbox)
        for bucket, inboxes in by_bucket.items():
            self.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
                {"Id": inbox.function, "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": inbox.prefix}]}}}
                for inbox in inboxes
            ]})

    # -- delivery -------------------------------------------------------------------------------------------

    def drain(self, *, timeout_s: float = 60, settle_s: float = 0.3) -> DrainReport:
        """Deliver until no queue has a visible or in-flight message (or ``timeout_s`` passes)."""
        report = DrainReport()
        started = time.monotonic()
        quiet_since: float | None = None
        while time.monotonic() - started < timeout_s:
            delivered = self.poll_once(report)
            if delivered or self._pending():
                quiet_since = None
                if not delivered:
                    time.sleep(0.05)
                continue
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle_s:
                report.idle = True
                break
            time.sleep(0.05)
        report.seconds = time.monotonic() - started
        return report

    def poll_once(self, report: DrainReport | None = None) -> int:
        """One pass over every mapping; the number of invocations made."""
        report = report or DrainReport()
        count = 0
        for mapping in self.queues:
            count += self._poll_queue(mapping, report)
        if self._s3_events_url:
            count += self._poll_inboxes(report)
        report.invocations += count
        return count

    def _poll_queue(self, mapping: QueueMapping, report: DrainReport) -> int:
        messages = self._receive(mapping.queue_url, mapping.batch_size, mapping.window_s)
        if not messages:
            return 0
        event = {"Records": [self._sqs_record(message, mapping) for message in messages]}
        result = self.invoke(mapping.function, event)
        if result.error is not None:
            report.function_errors += 1
            report.errors.append(result.error)
            return 1  # nothing deleted: every message comes back after the visibility timeout
        failed = set()
        if mapping.report_failures and isinstance(result.payload, dict):
            failed = {item.get("itemIdentifier") for item in result.payload.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=mapping.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ])
        return 1

    def _poll_inboxes(self, report: DrainReport) -> int:
        count = 0
        for message in self._receive(self._s3_events_url, 10, 0):
            body = json.loads(message["Body"])
            records = body.get("Records") or []
            key = records[0]["s3"]["object"]["key"] if records else ""
            inbox = next((i for i in self.inboxes if _unquote(key).startswith(i.prefix)), None)
            if inbox is not None:
                count += self._invoke_async(inbox, body, report)
            self.sqs.delete_message(QueueUrl=self._s3_events_url, ReceiptHandle=message["ReceiptHandle"])
        return count

    def _invoke_async(self, inbox: InboxMapping, event: dict[str, Any], report: DrainReport) -> int:
        """Lambda's asynchronous invoke: the first try and two retries, then the OnFailure destination."""
        request_id = str(uuid.uuid4())
        for attempt in range(1, inbox.retries + 2):
            result = self.invoke(inbox.function, event)
            if result.error is None:
                if inbox.on_success_url:
                    self._destination(inbox.on_success_url, inbox, event, result, request_id, attempt, "Success")
                return attempt
            report.function_errors += 1
            report.errors.append(result.error)
        report.async_failures += 1
        if inbox.on_failure_url:
            self._destination(inbox.on_failure_url, inbox, event, result, request_id, inbox.retries + 1, "RetriesExhausted")
        return inbox.retries + 1

    def _destination(self, url: str, inbox: InboxMapping, event: Any, result: InvokeResult, request_id: str,
                     attempts: int, condition: str) -> None:
        failed = result.error is not None
        record = {
            "version": "1.0",
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "requestContext": {"requestId": request_id, "functionArn": f"arn:aws:lambda:{self.region}:123456789012:function:{inbox.function}:$LATEST",
                               "condition": condition, "approximateInvokeCount": attempts},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", **({"functionError": "Unhandled"} if failed else {})},
            "responsePayload": _error_payload(result.error) if failed else result.payload,
        }
        self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))

    def _receive(self, url: str, batch_size: int, window_s: float) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + window_s
        while len(messages) < batch_size:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, batch_size - len(messages)),
                                           AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            messages.extend(got)
            if not got and (time.monotonic() >= deadline or not messages and window_s == 0):
                break
            if not got:
                time.sleep(0.05)
        return messages

    def _sqs_record(self, message: dict[str, Any], mapping: QueueMapping) -> dict[str, Any]:
        attributes = {
            name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"), "stringListValues": [],
                   "binaryListValues": [], "dataType": value.get("DataType", "String")}
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        return {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": message.get("Attributes", {}), "messageAttributes": attributes,
            "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(), "eventSource": "aws:sqs",
            "eventSourceARN": mapping.queue_arn, "awsRegion": self.region,
        }

    def _pending(self) -> bool:
        urls = [m.queue_url for m in self.queues] + ([self._s3_events_url] if self._s3_events_url else [])
        for url in urls:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]) or int(attributes["ApproximateNumberOfMessagesNotVisible"]):
                return True
        return False


def app_invoker(app: Any) -> Invoke:
    """Invoke through ``LocalApp`` (the real runtime in a sandbox); Lambda's error payloads become function errors."""
    def invoke(function: str, event: Any) -> InvokeResult:
        payload = app.invoke(function, event)
        if isinstance(payload, dict) and "errorType" in payload and "errorMessage" in payload:
            return InvokeResult(payload, f"{payload['errorType']}: {payload['errorMessage']}")
        return InvokeResult(payload)

    return invoke


def _destination(sources: EventSources, config: Any, resources: dict[str, Any], visibility_s: int | None) -> str | None:
    if not isinstance(config, dict) or config.get("Type") != "SQS":
        return None
    return sources.create_queue(_logical_id(config["Destination"]), resources, visibility_s)[0]


def _logical_id(reference: Any) -> str:
    """The logical id behind ``Fn::GetAtt [Id, Arn]``, or behind the placeholder ARN SAM's local resolver made of it."""
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        target = reference["Fn::GetAtt"]
        return target[0] if isinstance(target, list) else str(target).split(".")[0]
    return str(reference).rsplit(":", 1)[-1]


def _error_payload(error: str | None) -> dict[str, str]:
    kind, _, message = (error or "").partition(": ")
    return {"errorType": kind, "errorMessage": message}


def _unquote(key: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(key)
