"""Metering: each model function's log group and the usage aggregator that turns its metering lines into the usage
table's counters, off the request path.

A model function writes one line per request (``modelfn_runtime.metering.EmfMeter``) to its own log group
(``LoggingConfig``; the group is a resource here, KMS-encrypted with the stack's key and kept for
``FunctionLogRetentionDays``). A subscription filter per group sends the lines with a usage record to
``UsageAggregatorFunction`` (``functions/inference/usage_aggregator.py``: no numpy, no onnxruntime), which may
only put and update items of the usage table; deliveries it cannot write go to its dead-letter queue after
Lambda's retries. Model functions have no access to the table at all.

Example:
    >>> sorted(aggregator_resources())[:2]
    ['UsageAggregatorDeadLetterQueue', 'UsageAggregatorFunction']
"""

from __future__ import annotations

from typing import Any

from modelfn_runtime import environment as names

from . import ids
from .schema import Catalog, ModelEntry

AGGREGATOR = "UsageAggregatorFunction"
AGGREGATOR_HANDLER = "usage_aggregator.lambda_handler"
DEAD_LETTERS = "UsageAggregatorDeadLetterQueue"
LOGS_PERMISSION = "UsageAggregatorLogsPermission"
RETENTION_PARAMETER = "FunctionLogRetentionDays"
LOG_GROUP_PREFIX = "/modelfn/${AWS::StackName}/functions/"
"""Model functions' log groups: ``/modelfn/<stack>/functions/<model>`` (the logs permission is scoped to these)."""
_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]


def log_group_id(entry: ModelEntry) -> str:
    return entry.resource_id("LogGroup")


def add_metering(template: dict[str, Any], catalog: Catalog) -> None:
    """The aggregator, and per model function its log group (as the function's ``LoggingConfig``) and subscription."""
    template["Parameters"][RETENTION_PARAMETER] = {
        "Type": "Number", "Default": 90, "AllowedValues": [d for d in _RETENTION_DAYS if d >= 14],
        "Description": "Days model functions' logs are kept (their metering lines are the source of usage).",
    }
    resources = template["Resources"]
    if not catalog.models:
        return
    resources.update(aggregator_resources())
    for entry in catalog.models:
        group, subscription = log_group_id(entry), entry.resource_id("UsageSubscription")
        resources[group] = _log_group(entry)
        resources[subscription] = _subscription(group)
        function = resources[entry.logical_id]
        function["Properties"]["LoggingConfig"] = {"LogGroup": {"Ref": group}, "LogFormat": "Text"}
        # the subscription exists before the function logs there: a filter sees only lines written after it is made
        depends = function.get("DependsOn", [])
        function["DependsOn"] = [*([depends] if isinstance(depends, str) else depends), subscription]


def aggregator_resources() -> dict[str, Any]:
    """The aggregator function, its dead-letter queue and CloudWatch Logs' permission to invoke it."""
    statement = {
        "Sid": "AggregateUsage", "Effect": "Allow",
        # TransactWriteItems needs the item actions it carries: a marker Put and counter Updates
        "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"],
        "Resource": {"Fn::GetAtt": [ids.USAGE_TABLE, "Arn"]},
    }
    return {
        AGGREGATOR: {"Type": "AWS::Serverless::Function", "Properties": {
            "Description": "Adds the model functions' metering lines (CloudWatch Logs subscription) to the usage table, "
            "once per log event.",
            "Handler": AGGREGATOR_HANDLER,
            "MemorySize": 256,
            "Timeout": 60,
            "ReservedConcurrentExecutions": 5,  # few writers: fewer transaction conflicts on the same tenant-day items
            "Environment": {"Variables": {names.USAGE_TABLE: {"Ref": ids.USAGE_TABLE}}},
            "Policies": [{"Version": "2012-10-17", "Statement": [statement]}],
            "DeadLetterQueue": {"Type": "SQS", "TargetArn": {"Fn::GetAtt": [DEAD_LETTERS, "Arn"]}},
        }},
        DEAD_LETTERS: {"Type": "AWS::SQS::Queue", "Properties": {
            "MessageRetentionPeriod": 1209600,  # 14 days to replay a delivery that could not be written
            "SqsManagedSseEnabled": True,
        }},
        LOGS_PERMISSION: {"Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [AGGREGATOR, "Arn"]},
            "Principal": "logs.amazonaws.com",
            "SourceAccount": {"Ref": "AWS::AccountId"},
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                                     + LOG_GROUP_PREFIX + "*"},
        }},
    }


def _log_group(entry: ModelEntry) -> dict[str, Any]:
    return {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {
            "LogGroupName": {"Fn::Sub": LOG_GROUP_PREFIX + entry.name},
            "RetentionInDays": {"Ref": RETENTION_PARAMETER},
            "KmsKeyId": {"Fn::GetAtt": ["ModelKey", "Arn"]},
        },
    }


def _subscription(group: str) -> dict[str, Any]:
    from modelfn_runtime.usage import FILTER_PATTERN

    return {
        "Type": "AWS::Logs::SubscriptionFilter",
        "DependsOn": LOGS_PERMISSION,  # CloudWatch Logs checks it may invoke the destination when the filter is made
        "Properties": {
            "LogGroupName": {"Ref": group},
            "FilterPattern": FILTER_PATTERN,
            "DestinationArn": {"Fn::GetAtt": [AGGREGATOR, "Arn"]},
        },
    }
