"""Releases: how a model function is packaged and rolled out. A ``live`` alias, a CodeDeploy canary or linear
deployment with two rollback alarms, SnapStart, the ONNX Runtime layer (Zip) or the container image (Image).

Example:
    >>> layer_logical_id("arm64")
    'OnnxRuntimeArm64Layer'
"""

from __future__ import annotations

from typing import Any

from . import ids
from .schema import Catalog, ModelEntry

LIVE_ALIAS = "live"
LAYER_CODE = "layers/onnxruntime/"
LAMBDA_RUNTIME = "python3.12"
"""The Lambda runtime of every Zip function and layer, and the tag of every image."""
IMAGE_DOCKERFILE = "Dockerfile"
IMAGE_CONTEXT = "."


def layer_logical_id(architecture: str) -> str:
    """``OnnxRuntimeX8664Layer`` / ``OnnxRuntimeArm64Layer``: the ONNX Runtime + numpy layer for one architecture."""
    return ids.logical_id(architecture, "Layer", prefix="OnnxRuntime")


def alarm_logical_ids(entry: ModelEntry) -> tuple[str, str]:
    """The error-rate and p99-latency alarms that roll back ``entry``'s deployments."""
    return entry.resource_id("ErrorRateAlarm"), entry.resource_id("LatencyAlarm")


def release_properties(entry: ModelEntry) -> dict[str, Any]:
    """Function properties for safe rollouts: a ``live`` alias, a canary/linear deployment with rollback alarms,
    SnapStart, and the ONNX Runtime layer (Zip) or the container image (Image)."""
    error_alarm, latency_alarm = alarm_logical_ids(entry)
    properties: dict[str, Any] = {
        "AutoPublishAlias": LIVE_ALIAS,
        "DeploymentPreference": {"Type": entry.deployment, "Alarms": [{"Ref": error_alarm}, {"Ref": latency_alarm}]},
    }
    if entry.package_type == "Image":
        properties["PackageType"] = "Image"
        return properties
    properties["Layers"] = [{"Ref": layer_logical_id(entry.architecture)}]
    if entry.snapstart:
        properties["SnapStart"] = {"ApplyOn": "PublishedVersions"}
    return properties


def release_resources(catalog: Catalog) -> dict[str, Any]:
    """One ONNX Runtime layer per architecture that Zip models use, and two rollback alarms per model."""
    resources: dict[str, Any] = {}
    for architecture in sorted({e.architecture for e in catalog.models if e.package_type == "Zip"}):
        resources[layer_logical_id(architecture)] = _onnxruntime_layer(architecture)
    for entry in catalog.models:
        resources.update(_rollback_alarms(entry))
    return resources


def apply_package_types(template: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """Image functions take no Runtime, Handler or CodeUri, so with any Image model these move from Globals into
    each Zip function, and each Image function names its Dockerfile (built by ``sam build``)."""
    images = [entry for entry in catalog.models if entry.package_type == "Image"]
    if not images:
        return template
    function_globals = template["Globals"]["Function"]
    zip_settings = {key: function_globals.pop(key) for key in ("Runtime", "CodeUri", "Handler")}
    image_ids = {entry.logical_id for entry in images}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        if logical_id in image_ids:
            resource["Metadata"] = {
                "Dockerfile": IMAGE_DOCKERFILE,
                "DockerContext": IMAGE_CONTEXT,
                "DockerTag": LAMBDA_RUNTIME,
            }
        else:
            resource["Properties"] = {**zip_settings, **resource["Properties"]}
    return template


def _onnxruntime_layer(architecture: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::LayerVersion",
        "Properties": {
            "LayerName": {"Fn::Sub": f"${{AWS::StackName}}-onnxruntime-{architecture.replace('_', '-')}"},
            "Description": f"ONNX Runtime and numpy for {LAMBDA_RUNTIME} on {architecture} (built by `modelfn build`).",
            "ContentUri": LAYER_CODE,
            "CompatibleRuntimes": [LAMBDA_RUNTIME],
            "CompatibleArchitectures": [architecture],
            "RetentionPolicy": "Retain",
        },
        # What `sam build` would do with python3.12 on PATH; `modelfn build` does it without one.
        "Metadata": {"BuildMethod": LAMBDA_RUNTIME, "BuildArchitecture": architecture},
    }


def _rollback_alarms(entry: ModelEntry) -> dict[str, Any]:
    """Alarms on the ``live`` alias, which carries both versions' traffic while CodeDeploy shifts it."""
    error_alarm, latency_alarm = alarm_logical_ids(entry)

    def dimensions() -> list[dict[str, Any]]:  # a fresh list per use: the YAML stays free of anchors
        return [
            {"Name": "FunctionName", "Value": {"Ref": entry.logical_id}},
            {"Name": "Resource", "Value": {"Fn::Sub": f"${{{entry.logical_id}}}:{LIVE_ALIAS}"}},
        ]

    def lambda_metric(metric_id: str, metric: str) -> dict[str, Any]:
        return {
            "Id": metric_id,
            "ReturnData": False,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dimensions()},
                "Period": 60,
                "Stat": "Sum",
            },
        }

    common = {
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    return {
        error_alarm: {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": f"{entry.name}: more than {entry.alarm_error_rate_percent}% of invocations of the "
                f"{LIVE_ALIAS} alias fail (function errors, timeouts, init failures); rolls a deployment back.",
                "Metrics": [
                    lambda_metric("errors", "Errors"),
                    lambda_metric("invocations", "Invocations"),
                    {
                        "Id": "error_rate",
                        "Label": "error rate (%)",
                        "Expression": "IF(invocations > 0, 100 * errors / invocations, 0)",
                        "ReturnData": True,
                    },
                ],
                "Threshold": entry.alarm_error_rate_percent,
                **common,
            },
        },
        latency_alarm: {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": f"{entry.name}: p99 duration of the {LIVE_ALIAS} alias above {entry.alarm_p99_ms} ms; "
                "rolls a deployment back.",
                "Namespace": "AWS/Lambda",
                "MetricName": "Duration",
                "Dimensions": dimensions(),
                "ExtendedStatistic": "p99",
                "Period": 60,
                "Unit": "Milliseconds",
                "Threshold": entry.alarm_p99_ms,
                **common,
            },
        },
    }
