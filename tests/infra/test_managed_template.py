"""Managed capacity in the catalog (issue 17): ``accelerator: gpu`` and ``capacity: managed`` entries render a capacity
provider, a plain function with ``CapacityProviderConfig`` (and ``AcceleratorConfig``), a version and the live alias
that the API, the S3 inbox, the SQS queue, async destinations and readiness all call; the template stays clean under
``sam validate --lint``, cfn-lint (one scoped E3002 exception, hiding only ``AcceleratorConfig``) and checkov."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from modelfn_infra.catalog import Catalog, CatalogError, dump_template, render_template
from modelfn_runtime import environment as names

from ..conftest import REPO
from .sam import sam_transform

VENV_BIN = os.path.dirname(sys.executable)
CHECKOV = REPO / ".venv" / "tools" / "bin" / "checkov"
PARAMETERS = {"ManagedSubnetIds": "subnet-0a1b,subnet-0c2d", "ManagedSecurityGroupIds": "sg-0e3f"}
GPU = """
  - name: resnet
    version: "1"
    package_type: Image
    snapstart: false
    deployment: AllAtOnce
    accelerator: gpu
    accelerator_memory_gib: 12
    instance_types: [g6.xlarge, g6.2xlarge]
    memory_mb: 8192
    environment_concurrency: 2
    model_size_mb: 102
"""
CATALOG = """
usage_plans:
  - {name: free, rate_limit: 2, burst_limit: 5}
models:
  - name: digits
    version: "1"
""" + GPU + """
  - name: tabular
    version: "1"
    package_type: Image
    snapstart: false
    deployment: AllAtOnce
    capacity: managed
    instance_types: [c7i.xlarge]
    memory_mb: 4096
"""


def read(tmp_path: Path, text: str) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(textwrap.dedent(text))
    return Catalog.read(path)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict, Path]:
    directory = tmp_path_factory.mktemp("managed")
    template = render_template(read(directory, CATALOG))
    path = directory / "template.yaml"
    path.write_text(dump_template(template))
    return template, path


def lint_env() -> dict:
    return {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}


@pytest.mark.parametrize("change, message", [
    ({"package_type": "Zip"}, "accelerator: gpu runs container images only (Python 3.13 on Lambda Managed Instances); set package_type: Image"),
    ({"architecture": "arm64"}, "Lambda attaches GPUs to x86_64 functions only; set architecture: x86_64"),
    ({"accelerator_memory_gib": 10}, "accelerator: gpu needs accelerator_memory_gib, one of 3, 6, 12, 16, 24, 48"),
    ({"deployment": "Canary10Percent5Minutes"}, "set deployment: AllAtOnce"),
    ({"environment_concurrency": 14}, "14 processes x ~0.91 GiB of GPU memory each (a 102 MB model, estimated as "
     "modelfn_runtime.providers.estimated_gpu_bytes) do not fit accelerator_memory_gib 12; set environment_concurrency to "
     "at most 13 or raise it"),
    ({"model_size_mb": 5000}, "do not fit accelerator_memory_gib 12; raise it"),
    ({"instance_types": ["g4dn.xlarge"], "accelerator_memory_gib": 24}, "g4dn.xlarge's GPU has 16 GiB, less than "
     "accelerator_memory_gib 24; lower it or allow larger types"),
    ({"instance_types": ["c7i.xlarge"]}, "c7i.xlarge is not a GPU instance type modelfn knows"),
    ({"instance_types": "g6.xlarge"}, "instance_types must be a list of EC2 instance types such as [g6.xlarge, g6.2xlarge]"),
    ({"model_size_mb": None}, "accelerator: gpu needs model_size_mb (model.onnx's size: the card's artifact.bytes / 1e6)"),
    ({"min_environments": 7}, "min_environments (7) must not exceed max_environments (6)"),
    ({"memory_gib_per_vcpu": 3}, "memory_gib_per_vcpu must be one of 2, 4, 8"),
    ({"accelerator": "none"}, "accelerator_memory_gib, model_size_mb, instance_types apply only to managed capacity; "
     "add accelerator: gpu (or capacity: managed for CPU) or remove them"),
    ({"accelerator": "tpu"}, "accelerator must be one of none, gpu"),
])
def test_managed_entries_refuse_what_aws_or_the_gpu_cannot_run_naming_the_fix(tmp_path, change, message):
    entry = yaml.safe_load(GPU)[0] | change
    entry = {key: value for key, value in entry.items() if value is not None}
    with pytest.raises(CatalogError) as caught:
        read(tmp_path, yaml.safe_dump({"models": [entry]}))
    assert message in str(caught.value)


def test_a_gpu_entry_renders_provider_function_version_and_live_alias(rendered):
    resources = rendered[0]["Resources"]
    provider = resources["ResnetCapacity"]["Properties"]
    assert resources["ResnetCapacity"]["Type"] == "AWS::Lambda::CapacityProvider"
    assert provider["VpcConfig"] == {"SubnetIds": {"Ref": "ManagedSubnetIds"}, "SecurityGroupIds": {"Ref": "ManagedSecurityGroupIds"}}
    assert provider["PermissionsConfig"]["CapacityProviderOperatorRoleArn"] == {"Fn::GetAtt": ["ResnetCapacityOperatorRole", "Arn"]}
    assert provider["InstanceRequirements"] == {"Architectures": ["x86_64"], "AllowedInstanceTypes": ["g6.xlarge", "g6.2xlarge"]}
    assert provider["CapacityProviderScalingConfig"]["ScalingPolicies"] == [
        {"PredefinedMetricType": "LambdaCapacityProviderAverageGPUUtilization", "TargetValue": 60.0}]
    assert provider["CapacityProviderScalingConfig"]["MaxVCpuCount"] == 12  # 6 environments x 8 GiB / 4 GiB per vCPU
    assert provider["PropagateTags"]["ExplicitTags"] == [{"Key": "modelfn:fleet", "Value": "resnet"}]
    function = resources["ResnetFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    assert function["Metadata"] == {"Dockerfile": "Dockerfile.gpu", "DockerContext": ".", "DockerTag": "python3.13-gpu",
                                    "cfn-lint": {"config": {"ignore_checks": ["E3002"]}}}
    properties = function["Properties"]
    assert properties["AcceleratorConfig"] == {"AcceleratorMemorySize": 12}
    assert properties["PackageType"] == "Image" and properties["Architectures"] == ["x86_64"]
    config = properties["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"]
    assert config["PerExecutionEnvironmentMaxConcurrency"] == 2 and config["ExecutionEnvironmentMemoryGiBPerVCpu"] == 4
    assert "${ResnetCapacity}" in config["CapacityProviderArn"]["Fn::Sub"]
    assert properties["FunctionScalingConfig"] == {"MinExecutionEnvironments": 3, "MaxExecutionEnvironments": 6}
    assert "ReservedConcurrentExecutions" not in properties and properties["TracingConfig"] == {"Mode": "Active"}
    variables = properties["Environment"]["Variables"]
    assert variables[names.ACCELERATOR_MEMORY_GIB] == "12" and variables[names.ENVIRONMENT_CONCURRENCY] == "2"
    assert resources["ResnetFunctionVersion"]["Properties"]["FunctionName"] == {"Ref": "ResnetFunction"}
    alias = resources["ResnetFunctionAliasLive"]["Properties"]
    assert alias == {"Name": "live", "FunctionName": {"Ref": "ResnetFunction"},
                     "FunctionVersion": {"Fn::GetAtt": ["ResnetFunctionVersion", "Version"]}}


def test_a_managed_cpu_entry_runs_the_cpu_image_on_python_3_13_without_an_accelerator(rendered):
    resources = rendered[0]["Resources"]
    function = resources["TabularFunction"]
    assert "AcceleratorConfig" not in function["Properties"] and "cfn-lint" not in function["Metadata"]
    assert function["Metadata"]["Dockerfile"] == "Dockerfile" and function["Metadata"]["DockerTag"] == "python3.13"
    assert function["Metadata"]["DockerBuildArgs"] == {"BASE_IMAGE": "public.ecr.aws/lambda/python:3.13"}
    policy = resources["TabularCapacity"]["Properties"]["CapacityProviderScalingConfig"]["ScalingPolicies"][0]
    assert policy["PredefinedMetricType"] == "LambdaCapacityProviderAverageCPUUtilization"
    assert names.ACCELERATOR_MEMORY_GIB not in function["Properties"]["Environment"]["Variables"]


def test_events_and_limits_work_the_same_on_the_alias(rendered):
    """S3, SQS and async go to the live alias; the function reads the same settings as a Lambda-capacity function,
    so the 6 MB synchronous limit and the S3 route for large batches are unchanged."""
    template = rendered[0]
    resources = template["Resources"]
    alias = {"Ref": "ResnetFunctionAliasLive"}
    mapping = resources["ResnetQueueEventSource"]["Properties"]
    assert mapping["FunctionName"] == alias and mapping["EventSourceArn"] == {"Fn::GetAtt": ["ResnetQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and mapping["BatchSize"] == 10
    notifications = resources["DataBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    inbox = [n for n in notifications if n["Function"] == alias]
    assert inbox and inbox[0]["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "inbox/resnet/"}]
    assert "ResnetInboxPermission" in resources["DataBucket"]["DependsOn"]
    assert resources["ResnetInboxPermission"]["Properties"]["FunctionName"] == alias
    invoke = resources["ResnetEventInvokeConfig"]["Properties"]
    assert invoke["Qualifier"] == "live" and invoke["DestinationConfig"]["OnFailure"] == {
        "Destination": {"Fn::GetAtt": ["ResnetDeadLetterQueue", "Arn"]}}
    statements = resources["ResnetFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    sids = {s.get("Sid") for s in statements}
    assert {"ReadOwnModel", "ReadOwnInputs", "WriteOwnResults", "PollOwnQueue", "AsyncDestinations"} <= sids
    # metered as every model function is: its log group (LoggingConfig) and that group's usage subscription
    assert resources["ResnetFunction"]["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": "ResnetLogGroup"}
    assert "ResnetUsageSubscription" in resources["ResnetFunction"]["DependsOn"]
    assert resources["ResnetUsageSubscription"]["Properties"]["LogGroupName"] == {"Ref": "ResnetLogGroup"}
    gpu_variables = resources["ResnetFunction"]["Properties"]["Environment"]["Variables"]
    cpu_variables = {**template["Globals"]["Function"]["Environment"]["Variables"],
                     **resources["DigitsFunction"]["Properties"]["Environment"]["Variables"]}
    assert set(gpu_variables) - set(cpu_variables) == {names.ACCELERATOR_MEMORY_GIB, names.ENVIRONMENT_CONCURRENCY}
    assert set(cpu_variables) <= set(gpu_variables) and gpu_variables[names.DATA_BUCKET] == cpu_variables[names.DATA_BUCKET]


def test_the_api_routes_every_function_and_the_managed_ones_through_their_alias(rendered):
    template, _ = rendered
    resources = sam_transform(template, PARAMETERS)["Resources"]
    paths = resources["ModelApi"]["Properties"]["Body"]["paths"]
    infer = paths["/v2/models/resnet/{proxy+}"]["x-amazon-apigateway-any-method"]
    assert infer["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"][1] == {"Target": {"Ref": "ResnetFunctionAliasLive"}}
    assert infer["security"] == [{"api_key": []}]
    digits = paths["/v2/models/digits/{proxy+}"]["x-amazon-apigateway-any-method"]
    assert digits["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"][1] == {"Target": {"Ref": "DigitsFunctionAliaslive"}}
    assert paths["/v2/health/{proxy+}"]["get"]["security"] == []  # open routes stay open
    assert all(key in ("get", "head", "post", "x-amazon-apigateway-any-method") for ops in paths.values() for key in ops)
    assert resources["ResnetApiPermission"]["Properties"]["Principal"] == "apigateway.amazonaws.com"
    server = resources["ServerFunction"]["Properties"]["Environment"]["Variables"][names.MODEL_FUNCTIONS]
    assert {"Fn::Sub": "resnet=${ResnetFunction}:live"} in server["Fn::Join"][1]


def test_sam_validate_lint_and_cfn_lint_are_clean(rendered):
    path = rendered[1]
    result = subprocess.run([os.path.join(VENV_BIN, "sam"), "validate", "--lint", "--template-file", str(path)],
                            cwd=path.parent, capture_output=True, text=True, env=lint_env(), timeout=300)
    assert result.returncode == 0 and "is a valid SAM Template" in result.stdout + result.stderr, result.stdout + result.stderr
    lint = subprocess.run([os.path.join(VENV_BIN, "cfn-lint"), str(path)], capture_output=True, text=True, env=lint_env(), timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_lint_exception_hides_only_accelerator_config(rendered, tmp_path):
    template = json.loads(json.dumps(rendered[0]))
    del template["Resources"]["ResnetFunction"]["Metadata"]["cfn-lint"]
    unscoped = tmp_path / "unscoped.yaml"
    unscoped.write_text(dump_template(template))
    result = subprocess.run([os.path.join(VENV_BIN, "cfn-lint"), "--format", "parseable", str(unscoped)],
                            capture_output=True, text=True, env=lint_env(), timeout=300)
    findings = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(findings) == 1 and ":E3002:" in findings[0] and "AcceleratorConfig" in findings[0], findings


def test_checkov_finds_nothing_beyond_the_justified_exceptions(rendered, tmp_path):
    if not CHECKOV.is_file():
        pytest.skip(f"{CHECKOV} is missing: run `make install` (it builds the scanner's own virtual environment)")
    template = rendered[0]
    exceptions = template["Metadata"]["modelfn"]["checkov_exceptions"]
    assert exceptions["CKV_AWS_115"]["resources"] == ["ResnetFunction", "TabularFunction"]
    path = tmp_path / "transformed.json"
    path.write_text(json.dumps(sam_transform(template, PARAMETERS)))
    result = subprocess.run([str(CHECKOV), "-f", str(path), "--framework", "cloudformation", "--skip-download", "--quiet",
                             "--compact", "-o", "json"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report

    def accepted(check: dict) -> bool:
        rule = exceptions.get(check["check_id"])
        logical_id = check["resource"].split(".", 1)[1]
        return rule is not None and any(fnmatch.fnmatchcase(logical_id, pattern) for pattern in rule["resources"])

    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"] if not accepted(c)]
    assert report["summary"]["parsing_errors"] == 0 and failed == []


@pytest.mark.parametrize("auth, authorizer", [
    ("auth:\n  mode: iam\n", "AWS_IAM"),
    ("auth:\n  mode: jwt\n  issuer: https://issuer.example.com/\n  audience: models\n", "JwtAuthorizer"),
])
def test_the_whole_api_body_keeps_the_auth_sections_authorizer_on_every_model_route(tmp_path, auth, authorizer):
    """With a managed entry the API's body is rendered whole: each model route (managed or not) still carries the
    auth: section's authorizer beside the API key, and the open routes stay open."""
    template = render_template(read(tmp_path, CATALOG + "\n" + auth))
    body = sam_transform(template, PARAMETERS)["Resources"]["ModelApi"]["Properties"]["Body"]
    assert authorizer in body["securityDefinitions"]
    for model in ("resnet", "digits"):
        operation = body["paths"][f"/v2/models/{model}/{{proxy+}}"]["x-amazon-apigateway-any-method"]
        assert operation["security"] == [{authorizer: []}, {"api_key": []}]
    assert body["paths"]["/v2/health/{proxy+}"]["get"]["security"] == []
