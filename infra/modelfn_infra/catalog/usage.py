"""Usage: what billing is made of. API keys on every model route, one API Gateway usage plan per catalog plan
(throttling and quota per key), the usage table, and the metering pipeline: each model function's own log group
(``LoggingConfig``) with a subscription filter that sends its metering lines to the usage-aggregator function,
the only writer of the usage table (``modelfn_runtime.usage``; docs/billing.md says why).

Example:
    >>> GATEWAY_ERRORS["THROTTLED"][0]
    429
"""

from __future__ import annotations

import json
from typing import Any

from . import ids
from .api import OPEN_EVENTS
from .metering import add_metering
from .schema import Catalog, UsagePlanEntry

PLAN_TAG = "modelfn:plan"
USAGE_TABLE = ids.USAGE_TABLE
API_KEY_HEADER = "x-api-key"
# API Gateway's own answers for refused keys, throttling and quotas: (status, its message, our hint).
# The template renders "$context.error.message: hint"; the local API answers the same text.
GATEWAY_ERRORS = {
    "INVALID_API_KEY": (403, "Forbidden", f"missing or invalid API key: send the key you were given in the {API_KEY_HEADER} "
                                          "header (an operator creates one with `modelfn tenants create NAME --plan PLAN`)"),
    "THROTTLED": (429, "Too Many Requests", "your plan's rate limit was exceeded; retry after a short, growing wait"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded", "your plan's request quota for this period is used up; wait for the next "
                                              "period or ask the operator for a larger plan"),
}


def add_billing(template: dict[str, Any], catalog: Catalog) -> None:
    """API keys on every model route, one usage plan per tier, the usage table and the meter's IAM and env."""
    resources = template["Resources"]
    _require_api_keys(resources)
    for plan in catalog.plans:
        resources[plan.logical_id] = _usage_plan(plan)
    resources[USAGE_TABLE] = usage_table_resource()
    add_metering(template, catalog)
    template["Outputs"]["UsageTableName"] = {
        "Description": "DynamoDB table of per-tenant usage (read by `modelfn usage` and `modelfn bill`).",
        "Value": {"Ref": USAGE_TABLE},
    }


def _require_api_keys(resources: dict[str, Any]) -> None:
    api = resources[ids.API]["Properties"]
    api["Auth"] = {"ApiKeyRequired": True}
    for response_type, (status, _, hint) in GATEWAY_ERRORS.items():
        api["GatewayResponses"][response_type] = {
            "StatusCode": str(status),
            "ResponseTemplates": {"application/json": json.dumps({"error": f"$context.error.message: {hint}"})},
        }
    events = resources[ids.SERVER_FUNCTION]["Properties"]["Events"]
    for name in OPEN_EVENTS:
        for event in (name, f"{name}Head"):
            if event in events:
                events[event]["Properties"]["Auth"] = {"ApiKeyRequired": False}


def _usage_plan(plan: UsagePlanEntry) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "UsagePlanName": {"Fn::Sub": f"${{AWS::StackName}}-{plan.name}"},
        "Description": plan.description or f"modelfn plan {plan.name}",
        # ModelApi.Stage makes CloudFormation create the stage before the plan that names it
        "ApiStages": [{"ApiId": {"Ref": ids.API}, "Stage": {"Ref": f"{ids.API}.Stage"}}],
        "Throttle": {"RateLimit": plan.rate_limit, "BurstLimit": plan.burst_limit},
        "Tags": [{"Key": PLAN_TAG, "Value": plan.name}],
    }
    if plan.quota is not None:
        properties["Quota"] = {"Limit": plan.quota, "Period": plan.quota_period}
    return {"Type": "AWS::ApiGateway::UsagePlan", "Properties": properties}


def usage_table_resource() -> dict[str, Any]:
    """The usage table the meter writes (``modelfn_runtime.usage``) and billing reads; also created by ``make demo``."""
    from modelfn_runtime.usage import MONTH_INDEX, TTL_ATTRIBUTE

    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",  # usage is what bills are made from: never dropped with the stack
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": {"Fn::Sub": "${AWS::StackName}-usage"},
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": "S"} for name in ("tenant", "usage_key", "month")
            ],
            "KeySchema": [{"AttributeName": "tenant", "KeyType": "HASH"}, {"AttributeName": "usage_key", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": MONTH_INDEX,
                    "KeySchema": [{"AttributeName": "month", "KeyType": "HASH"}, {"AttributeName": "usage_key", "KeyType": "RANGE"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            # the aggregator's per-log-event markers expire; usage items have no such attribute and stay
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    }
