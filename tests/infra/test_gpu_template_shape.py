"""The resource shape docs/gpu.md recommends for GPU functions, held against the installed tools: SAM's transform
passes it through, cfn-lint is clean with the one scoped exception, and that exception hides only AcceleratorConfig.
When cfn-lint or SAM learn AcceleratorConfig, these tests say so (drop the exception then)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = Path(__file__).with_name("gpu_function.template.yaml")
CFN_LINT = os.path.join(os.path.dirname(sys.executable), "cfn-lint")


class NoManagedPolicies:
    def load(self) -> dict:
        return {}


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CFN_LINT, "--format", "parseable", str(path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})


def test_sam_passes_the_plain_gpu_resources_through():
    resources = transform(yaml_parse(TEMPLATE.read_text()), {}, NoManagedPolicies())["Resources"]
    function = resources["GpuFunction"]["Properties"]
    assert function["AcceleratorConfig"] == {"AcceleratorMemorySize": 12}
    assert "LambdaManagedInstancesCapacityProviderConfig" in function["CapacityProviderConfig"]
    assert resources["GpuCapacity"]["Type"] == "AWS::Lambda::CapacityProvider"
    policy = resources["GpuCapacity"]["Properties"]["CapacityProviderScalingConfig"]["ScalingPolicies"][0]
    assert policy["PredefinedMetricType"] == "LambdaCapacityProviderAverageGPUUtilization"
    assert resources["GpuFunctionAliasLive"]["Properties"]["FunctionVersion"] == {"Fn::GetAtt": ["GpuFunctionVersion", "Version"]}


def test_sam_rejects_accelerator_config_on_a_serverless_function():
    template = yaml_parse(TEMPLATE.read_text())
    template["Resources"]["Serverless"] = {"Type": "AWS::Serverless::Function", "Properties": {
        "PackageType": "Image", "ImageUri": "x", "AcceleratorConfig": {"AcceleratorMemorySize": 12}}}
    with pytest.raises(Exception, match="property AcceleratorConfig not defined"):
        transform(template, {}, NoManagedPolicies())


def test_cfn_lint_is_clean_and_its_exception_hides_only_accelerator_config(tmp_path):
    clean = lint(TEMPLATE)
    assert clean.returncode == 0, clean.stdout
    text = TEMPLATE.read_text()
    exception = "    Metadata:\n      cfn-lint:\n        config:\n          ignore_checks: [E3002]\n"
    assert exception in text
    unscoped = tmp_path / "unscoped.yaml"
    unscoped.write_text(text.replace(exception, ""))
    findings = [line for line in lint(unscoped).stdout.splitlines() if line.strip()]
    assert len(findings) == 1 and ":E3002:" in findings[0] and "AcceleratorConfig" in findings[0], findings
