"""The template's billing parts: keys required on model routes (after SAM's transform), usage plans, the usage table."""

from __future__ import annotations

import pytest

from modelfn_infra.catalog import Catalog, CatalogError, render_template

from ..conftest import REPO
from .sam import sam_transform

CATALOG = REPO / "infra" / "catalog.yaml"


def transformed() -> dict:
    return sam_transform(parameters={"ModelBucket": "bucket"})["Resources"]


def test_every_model_route_needs_an_api_key_and_health_does_not():
    resources = transformed()
    swagger = next(r for r in resources.values() if r["Type"] == "AWS::ApiGateway::RestApi")["Properties"]["Body"]
    open_paths = {"/v2", "/v2/health/{proxy+}", "/"}  # and the playground page, which a browser loads without a key
    for path, methods in swagger["paths"].items():
        for method, operation in methods.items():
            needs_key = {"api_key": []} in operation.get("security", [])
            assert needs_key == (path not in open_paths), (path, method)
    assert "api_key" in swagger["securityDefinitions"]


def test_one_usage_plan_per_tier_on_the_api_stage():
    resources = transformed()
    catalog = Catalog.read(CATALOG)
    stage = next(name for name, r in resources.items() if r["Type"] == "AWS::ApiGateway::Stage")
    plans = {name: r for name, r in resources.items() if r["Type"] == "AWS::ApiGateway::UsagePlan"}
    assert set(plans) == {plan.logical_id for plan in catalog.plans}
    for plan in catalog.plans:
        properties = plans[plan.logical_id]["Properties"]
        assert properties["ApiStages"] == [{"ApiId": {"Ref": "ModelApi"}, "Stage": {"Ref": stage}}]
        assert properties["Throttle"] == {"RateLimit": plan.rate_limit, "BurstLimit": plan.burst_limit}
        assert properties["Quota"] == {"Limit": plan.quota, "Period": plan.quota_period}
        assert properties["UsagePlanName"] == {"Fn::Sub": f"${{AWS::StackName}}-{plan.name}"}


def test_only_the_aggregator_writes_the_usage_table_fed_by_each_model_functions_log_group():
    template = render_template(Catalog.read(CATALOG))
    resources = template["Resources"]
    table = resources["UsageTable"]
    assert table["DeletionPolicy"] == "Retain" and table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    aggregator = resources["UsageAggregatorFunction"]["Properties"]
    assert aggregator["Handler"] == "usage_aggregator.lambda_handler" and "Layers" not in aggregator  # no onnxruntime
    assert aggregator["Environment"]["Variables"]["MODELFN_USAGE_TABLE"] == {"Ref": "UsageTable"}
    assert aggregator["Policies"] == [{"Version": "2012-10-17", "Statement": [{
        "Sid": "AggregateUsage", "Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"],
        "Resource": {"Fn::GetAtt": ["UsageTable", "Arn"]}}]}]
    assert aggregator["DeadLetterQueue"]["TargetArn"] == {"Fn::GetAtt": ["UsageAggregatorDeadLetterQueue", "Arn"]}
    permission = resources["UsageAggregatorLogsPermission"]["Properties"]
    assert permission["Principal"] == "logs.amazonaws.com" and "log-group:/modelfn/" in permission["SourceArn"]["Fn::Sub"]
    for entry in Catalog.read(CATALOG).models:
        properties = resources[entry.logical_id]["Properties"]
        assert "UsageTable" not in str(properties)  # a model function never touches the table
        group = entry.resource_id("LogGroup")
        assert properties["LoggingConfig"] == {"LogGroup": {"Ref": group}, "LogFormat": "Text"}
        assert resources[group]["Properties"]["LogGroupName"] == {"Fn::Sub": f"/modelfn/${{AWS::StackName}}/functions/{entry.name}"}
        assert entry.resource_id("UsageSubscription") in resources[entry.logical_id]["DependsOn"]  # filter first, then logs
        subscription = resources[entry.resource_id("UsageSubscription")]
        assert subscription["DependsOn"] == "UsageAggregatorLogsPermission"
        assert subscription["Properties"] == {"LogGroupName": {"Ref": group}, "FilterPattern": "{ $.modelfn_usage.v = 1 }",
                                              "DestinationArn": {"Fn::GetAtt": ["UsageAggregatorFunction", "Arn"]}}
    assert "MODELFN_USAGE_TABLE" not in str(template["Resources"]["ServerFunction"])


@pytest.mark.parametrize(
    "plan,message",
    [
        ("- name: Free\n    rate_limit: 1\n    burst_limit: 1", "name must match"),
        ("- name: free\n    rate_limit: 0\n    burst_limit: 1", "rate_limit must be a positive number"),
        ("- name: free\n    rate_limit: 1\n    burst_limit: 0", "burst_limit must be a positive integer"),
        ("- name: free\n    rate_limit: 1\n    burst_limit: 1\n    quota: 0", "quota must be a positive integer"),
        ("- name: free\n    rate_limit: 1\n    burst_limit: 1\n    quota_period: YEAR", "quota_period must be one of"),
        ("- name: free\n    rate_limit: 1\n    burst_limit: 1\n    price: 3", "unknown key 'price'; known keys: name, rate_limit"),
        ("- name: free\n    rate_limit: 1\n    burst_limit: 1\n  - name: free\n    rate_limit: 2\n    burst_limit: 2", "appear twice"),
    ],
)
def test_plan_errors_name_the_fix(tmp_path, plan, message):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("usage_plans:\n  " + plan + "\nmodels:\n  - name: digits\n    version: '1'\n")
    with pytest.raises(CatalogError, match=message):
        Catalog.read(catalog)
