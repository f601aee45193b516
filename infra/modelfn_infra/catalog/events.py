"""The event-triggered half of the template: data bucket, idempotency table, and per model a queue, its
dead-letter queue, async-invoke destinations, S3 and SQS event sources and least-privilege policies.

Layout of the data bucket (one rule, shared with the runtime's ``jobs`` module)::

    inbox/<model>/[<tenant>/]<name>      putting an object runs the model (S3 -> Lambda, async)
    requests/<model>/<name>              large requests that SQS messages / async invokes point to
    outbox/<model>/<name>.json           one result per input
    errors/<model>/<name>.json           one reason per refused input

The bucket's name is derived from the stack id (``modelfn-data-<uuid>``) rather than ``!Ref``: a
function's policy naming the bucket by ``!Ref`` while the bucket's notification names the function is
CloudFormation's classic circular dependency.

Example:
    >>> resources = shared_resources()
    >>> sorted(resources)
    ['DataBucket', 'DataBucketPolicy', 'IdempotencyTable']
"""

from __future__ import annotations

from typing import Any

from modelfn_runtime import environment as names
from modelfn_runtime.jobs import ERRORS, INBOX, OUTBOX, REQUESTS

from .schema import ModelEntry

DATA_BUCKET_NAME: dict[str, Any] = {
    "Fn::Join": ["-", ["modelfn-data", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]]
}
REPLY_QUEUE_PREFIX: dict[str, Any] = {"Fn::Sub": "${AWS::StackName}-reply-"}
ASYNC_RETRIES = 2
DLQ_RETENTION_S = 14 * 24 * 3600


def shared_resources() -> dict[str, Any]:
    """The data bucket (private, encrypted, TLS only) and the idempotency table every model function uses."""
    return {
        "DataBucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "BucketName": DATA_BUCKET_NAME,
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
                },
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            },
        },
        "DataBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "DataBucket"},
                "PolicyDocument": {
                    "Statement": [{
                        "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                        "Resource": [{"Fn::Sub": "${DataBucket.Arn}"}, {"Fn::Sub": "${DataBucket.Arn}/*"}],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }]
                },
            },
        },
        "IdempotencyTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
                "SSESpecification": {"SSEEnabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            },
        },
    }


def add_model_events(resources: dict[str, Any], entry: ModelEntry) -> None:
    """Queues and event sources of one model's function (already in ``resources``), and its policies."""
    queue, dlq, results = entry.resource_id("Queue"), entry.resource_id("DeadLetterQueue"), entry.resource_id("AsyncResultsQueue")
    resources[dlq] = _queue({"MessageRetentionPeriod": DLQ_RETENTION_S})
    resources[results] = _queue({})
    resources[queue] = _queue({
        # Lambda's guidance: at least six times the function timeout, so a batch in flight is never redelivered
        "VisibilityTimeout": max(30, 6 * entry.timeout_s),
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": entry.max_receive_count},
    })
    properties = resources[entry.logical_id]["Properties"]
    properties["Environment"]["Variables"].update({
        names.DATA_BUCKET: DATA_BUCKET_NAME,
        names.IDEMPOTENCY_TABLE: {"Ref": "IdempotencyTable"},
        names.REPLY_QUEUE_PREFIX: REPLY_QUEUE_PREFIX,
        names.MAX_RECEIVE_COUNT: str(entry.max_receive_count),
    })
    properties["Events"].update({
        "Inbox": {
            "Type": "S3",
            "Properties": {
                "Bucket": {"Ref": "DataBucket"},
                "Events": "s3:ObjectCreated:*",
                "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": f"{INBOX}/{entry.name}/"}]}},
            },
        },
        "Queue": {
            "Type": "SQS",
            "Properties": {
                "Queue": {"Fn::GetAtt": [queue, "Arn"]},
                "BatchSize": entry.queue_batch_size,
                "MaximumBatchingWindowInSeconds": entry.queue_batching_window_s,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        },
    })
    properties["EventInvokeConfig"] = {
        "MaximumRetryAttempts": ASYNC_RETRIES,
        "DestinationConfig": {
            "OnSuccess": {"Type": "SQS", "Destination": {"Fn::GetAtt": [results, "Arn"]}},
            "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [dlq, "Arn"]}},
        },
    }
    properties.setdefault("Policies", []).append({"Statement": _statements(entry.name)})


def outputs(entries: list[ModelEntry]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "DataBucketName": {"Description": "Bucket of event-triggered work: inbox/, requests/, outbox/, errors/.", "Value": {"Ref": "DataBucket"}},
    }
    for entry in entries:
        queue, dlq = entry.resource_id("Queue"), entry.resource_id("DeadLetterQueue")
        result[f"{queue}Url"] = {"Description": f"Send {entry.name} requests here (docs/events.md).", "Value": {"Ref": queue}}
        result[f"{dlq}Url"] = {"Description": f"Failed {entry.name} events end here.", "Value": {"Ref": dlq}}
    return result


def _queue(properties: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": True, **properties}}


def _statements(model: str) -> list[dict[str, Any]]:
    def objects(*prefixes: str) -> list[dict[str, Any]]:
        return [{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", DATA_BUCKET_NAME, f"/{p}/{model}/*"]]} for p in prefixes]

    # No s3:ListBucket: it cannot be limited to one model's keys for HeadObject, so a missing input answers
    # 403 (the runtime's message says "does not exist or may not be read") rather than exposing every key.
    return [
        {"Sid": "ReadOwnInputs", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": objects(INBOX, REQUESTS)},
        {"Sid": "WriteOwnResults", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": objects(OUTBOX, ERRORS)},
        {
            "Sid": "IdempotencyRecords", "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            "Resource": {"Fn::GetAtt": ["IdempotencyTable", "Arn"]},
        },
        {
            "Sid": "ReplyQueues", "Effect": "Allow", "Action": ["sqs:SendMessage"],
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-reply-*"},
        },
    ]
