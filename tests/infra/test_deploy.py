"""Deployment: `modelfn build` -> the real `sam package` into moto's S3 -> SAM's transform -> moto CloudFormation.

The stack must hold what a deployed modelfn needs: both functions from lean zips, the ONNX Runtime layer on the
model function only, a `live` alias, a CodeDeploy deployment group rolling back on the two alarms, and the API.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
import yaml
from moto.codedeploy.models import codedeploy_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

from modelfn_infra.build import ZIPPED_LIMIT
from modelfn_infra.catalog import Catalog
from modelfn_infra.deploy import change_set, promote, transformed

from ..conftest import REPO
from . import moto_cloudformation

VENV_BIN = os.path.dirname(sys.executable)
STACK = "modelfn-test"


@pytest.fixture(scope="module")
def moto_endpoint():
    moto_cloudformation.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def deployed(built, moto_endpoint, tmp_path_factory):
    """The built template packaged by `sam package` and created as a stack in moto."""
    def client(service):
        return boto3.client(service, endpoint_url=moto_endpoint, region_name="us-east-1")

    s3 = client("s3")
    s3.create_bucket(Bucket="artifacts")  # `sam package`'s; the stack itself creates the model bucket (CreateModelBucket)
    packaged = tmp_path_factory.mktemp("packaged") / "packaged.yaml"
    result = subprocess.run(
        [os.path.join(VENV_BIN, "sam"), "package", "--template-file", str(built.template), "--s3-bucket", "artifacts",
         "--output-template-file", str(packaged)],
        env={**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    cloudformation = transformed(packaged, {"ModelBucket": "models"})
    cfn = client("cloudformation")
    cfn.create_stack(
        StackName=STACK, TemplateBody=json.dumps(cloudformation), Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": "ModelBucket", "ParameterValue": "models"}],
    )
    return client, yaml.safe_load(packaged.read_text()), cloudformation


def physical_ids(client) -> dict[str, tuple[str, str]]:
    summaries = client("cloudformation").list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    return {s["LogicalResourceId"]: (s["ResourceType"], s["PhysicalResourceId"]) for s in summaries}


def test_stack_creates_every_resource_the_transform_asks_for(deployed):
    client, _, cloudformation = deployed
    stack = client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    created = physical_ids(client)
    assert {k: v["Type"] for k, v in cloudformation["Resources"].items()} == {k: t for k, (t, _) in created.items()}


def test_artifacts_in_s3_are_lean_and_under_the_limits(deployed):
    client, packaged, _ = deployed
    s3 = client("s3")
    resources = packaged["Resources"]

    def archive(uri: str) -> zipfile.ZipFile:
        bucket, _, key = uri[len("s3://"):].partition("/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert len(body) <= ZIPPED_LIMIT
        return zipfile.ZipFile(io.BytesIO(body))

    server_names = archive(resources["ServerFunction"]["Properties"]["CodeUri"]).namelist()
    assert "app.py" in server_names and "modelfn_runtime/handler.py" in server_names
    assert not any(n.split("/")[0] in ("onnxruntime", "numpy", "tensorflow", "onnx", "botocore") for n in server_names)
    layer_names = archive(resources["OnnxRuntimeX8664Layer"]["Properties"]["ContentUri"]).namelist()
    assert "python/onnxruntime/__init__.py" in layer_names and "python/numpy/__init__.py" in layer_names
    assert not any(n.startswith(("python/onnxruntime/tools/", "python/onnxruntime/transformers/")) for n in layer_names)


def test_model_function_has_layer_alias_snapstart_and_the_catch_all_has_none(deployed):
    client, _, _ = deployed
    created = physical_ids(client)
    lam = client("lambda")
    digits = lam.get_function(FunctionName=created["DigitsFunction"][1])["Configuration"]
    server = lam.get_function(FunctionName=created["ServerFunction"][1])["Configuration"]
    layer_arn = [v for k, (t, v) in created.items() if t == "AWS::Lambda::LayerVersion"][0]
    assert [layer["Arn"] for layer in digits["Layers"]] == [layer_arn]
    assert not server.get("Layers")
    assert digits["Runtime"] == "python3.12" and digits["Environment"]["Variables"]["MODEL_NAME"] == "digits"
    aliases = lam.list_aliases(FunctionName=created["DigitsFunction"][1])["Aliases"]
    assert [alias["Name"] for alias in aliases] == ["live"]
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=created["DigitsFunction"][1])["Versions"]]
    assert aliases[0]["FunctionVersion"] in versions and aliases[0]["FunctionVersion"] != "$LATEST"
    assert lam.list_layers()["Layers"], "the ONNX Runtime layer was published"


def test_canary_deployment_rolls_back_on_error_rate_and_latency_alarms(deployed):
    client, _, cloudformation = deployed
    alarms = {a["AlarmName"]: a for a in client("cloudwatch").describe_alarms()["MetricAlarms"]}
    created = physical_ids(client)
    error_alarm, latency_alarm = created["DigitsErrorRateAlarm"][1], created["DigitsLatencyAlarm"][1]
    assert alarms[latency_alarm]["ExtendedStatistic"] == "p99" and alarms[latency_alarm]["MetricName"] == "Duration"
    expression = [m for m in alarms[error_alarm]["Metrics"] if "Expression" in m][0]["Expression"]
    assert "errors / invocations" in expression
    group = cloudformation["Resources"]["DigitsFunctionDeploymentGroup"]["Properties"]
    assert group["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": "Canary10Percent5Minutes"}
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    application = created["ServerlessDeploymentApplication"][1]
    info = client("codedeploy").get_deployment_group(
        applicationName=application, deploymentGroupName=created["DigitsFunctionDeploymentGroup"][1]
    )["deploymentGroupInfo"]
    assert info["serviceRoleArn"].endswith(created["CodeDeployServiceRole"][1])
    # moto's GetDeploymentGroup answers alarmConfiguration as {} (a TODO there), so read its backend directly
    group_model = codedeploy_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_deployment_group(
        application, created["DigitsFunctionDeploymentGroup"][1]
    )
    assert {a["name"] for a in group_model.alarm_configuration.alarms} == {error_alarm, latency_alarm}


def test_promote_changes_the_served_version_through_a_new_function_version(tmp_path, digits_store):
    catalog, template = tmp_path / "catalog.yaml", tmp_path / "template.yaml"
    catalog.write_text((REPO / "infra" / "catalog.yaml").read_text())
    template.write_text((REPO / "template.yaml").read_text())
    before = transformed(template, {"ModelBucket": "models"})
    (digits_store / "digits" / "2").mkdir(exist_ok=True)
    for name in ("model.onnx", "modelcard.json"):
        (digits_store / "digits" / "2" / name).write_bytes((digits_store / "digits" / "1" / name).read_bytes())
    with pytest.raises(Exception, match="holds no exported model"):
        promote(catalog, template, "digits", "3", store=str(digits_store))
    assert promote(catalog, template, "digits", "2", store=str(digits_store)) == "1"
    first_comment = (REPO / "infra" / "catalog.yaml").read_text().splitlines()[0]
    assert first_comment.startswith("#") and first_comment in catalog.read_text(), "comments survive"
    assert Catalog.read(catalog).models[0].version == "2"
    function = yaml.safe_load(template.read_text())["Resources"]["DigitsFunction"]["Properties"]
    assert function["Environment"]["Variables"]["MODEL_VERSION"] == "2" and function["AutoPublishAlias"] == "live"
    changes = {(c.action, c.resource_type) for c in change_set(template, {"ModelBucket": "models"}, against=before)}
    assert ("Modify", "AWS::Lambda::Function") in changes and ("Add", "AWS::Lambda::Version") in changes
    assert ("Modify", "AWS::Lambda::Alias") in changes, "the live alias moves, through CodeDeploy's canary"


def test_deploy_dry_run_prints_the_change_set_offline(built):
    result = subprocess.run(
        [sys.executable, "-m", "modelfn_infra.cli", "deploy", "--dry-run", "-t", str(built.template)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    )
    assert result.returncode == 0, result.stderr
    assert "Add     DigitsFunctionAliaslive" in result.stdout and "AWS::CodeDeploy::DeploymentGroup" in result.stdout
    assert "nothing was sent to AWS" in result.stdout and "sam deploy --template-file" in result.stdout
    assert "stack 'modelfn'" in result.stdout, "stack name from samconfig.toml"


def test_promote_cli_refuses_unknown_models(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text((REPO / "infra" / "catalog.yaml").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "modelfn_infra.cli", "promote", "nope", "2", "--catalog", str(catalog),
         "--template", str(tmp_path / "t.yaml")], cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 2 and "is not in" in result.stderr and not Path(tmp_path / "t.yaml").exists()


def test_each_model_functions_log_group_is_subscribed_by_the_usage_aggregator(deployed):
    client, _, _ = deployed
    created = physical_ids(client)
    group = created["DigitsLogGroup"][1]
    (subscription,) = client("logs").describe_subscription_filters(logGroupName=group)["subscriptionFilters"]
    aggregator = client("lambda").get_function(FunctionName=created["UsageAggregatorFunction"][1])["Configuration"]
    assert subscription["destinationArn"] == aggregator["FunctionArn"]
    assert subscription["filterPattern"] == "{ $.modelfn_usage.v = 1 }"
    assert aggregator["Handler"] == "usage_aggregator.lambda_handler" and not aggregator.get("Layers")
    digits = client("lambda").get_function(FunctionName=created["DigitsFunction"][1])["Configuration"]
    assert "MODELFN_USAGE_TABLE" not in digits["Environment"]["Variables"]
