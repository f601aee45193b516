"""Lambda Managed Instances: a model with ``accelerator: gpu`` or ``capacity: managed`` runs on a capacity provider.

What this pass renders for such an entry, in place of the SAM function the other modules laid out (their routes,
events, policies and environment are carried over, so one rule still makes each of them):

* ``<Model>Capacity`` (``AWS::Lambda::CapacityProvider``) in the VPC subnets and security groups of the stack
  parameters ``ManagedSubnetIds`` / ``ManagedSecurityGroupIds``, the entry's instance types, a scaling policy on GPU
  utilization (``accelerator: gpu``) or CPU utilization, and the ``modelfn:fleet`` tag its instances carry (bills
  read instance time by it); ``<Model>CapacityOperatorRole``, the role Lambda manages the instances with;
* ``<Model>Function`` as a plain ``AWS::Lambda::Function`` with ``CapacityProviderConfig``,
  ``FunctionScalingConfig`` and, for a GPU, ``AcceleratorConfig``, its own ``<Model>FunctionRole``, and the image
  build metadata (``Dockerfile.gpu``, or ``Dockerfile`` on Python 3.13);
* ``<Model>FunctionVersion`` (published, what LMI runs) and ``<Model>FunctionAliasLive``, the ``live`` alias that the
  API routes, the S3 inbox, the SQS queue, the async destinations, readiness and the alarms all name.

Why plain resources: aws-sam-translator 1.115 rejects ``AcceleratorConfig`` on ``AWS::Serverless::Function`` and its
``AWS::Serverless::CapacityProvider`` has no GPU-utilization target (docs/gpu.md). So SAM's event sugar does not
apply and this module wires each event to the alias itself: every route of the API in its ``DefinitionBody``
(``api_definition``), the inbox in the data bucket's notification
configuration (SAM appends the other functions'), an ``EventSourceMapping``, an ``EventInvokeConfig`` and the
invoke permissions. cfn-lint 1.58 does not know ``AcceleratorConfig`` either (E3002): a GPU function carries the one
scoped exception ``ignore_checks: [E3002]``, and tests/infra/test_managed_template.py proves it hides nothing else.
``modelfn build`` renames the version after the built image so that every new image publishes a new version.

Example:
    >>> entry = ModelEntry("resnet", "1", package_type="Image", snapstart=False, deployment="AllAtOnce",
    ...                    accelerator="gpu", accelerator_memory_gib=12, model_size_mb=100)
    >>> sorted(capacity_resources(entry))
    ['ResnetCapacity', 'ResnetCapacityOperatorRole']
"""

from __future__ import annotations

import math
from typing import Any

from modelfn_runtime import environment as names

from ..capacity import FLEET_TAG  # the tag the provider puts on its instances; `modelfn bill --fleet` reads by it
from ..images import image_flavor
from . import ids
from .events import DATA_BUCKET_NAME
from .releases import IMAGE_CONTEXT, LIVE_ALIAS
from .schema import Catalog, ModelEntry

SUBNETS = "ManagedSubnetIds"
SECURITY_GROUPS = "ManagedSecurityGroupIds"
UTILIZATION_METRICS = {"gpu": "LambdaCapacityProviderAverageGPUUtilization", "none": "LambdaCapacityProviderAverageCPUUtilization"}
LAMBDA_ASSUME = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
ACCELERATOR_LINT_EXCEPTION = {"cfn-lint": {"config": {"ignore_checks": ["E3002"]}}}
"""cfn-lint 1.58's schema lacks AWS::Lambda::Function.AcceleratorConfig; the exception is on the GPU function only."""


def alias_id(entry: ModelEntry) -> str:
    return entry.resource_id("FunctionAlias" + ids.pascal(LIVE_ALIAS))


def version_id(entry: ModelEntry) -> str:
    return entry.resource_id("FunctionVersion")


def apply_managed_capacity(template: dict[str, Any], catalog: Catalog) -> None:
    """Every managed entry's SAM function becomes the capacity provider, function, version and live alias above."""
    managed = [entry for entry in catalog.models if entry.managed]
    if not managed:
        return
    template["Parameters"].update(parameters())
    resources = template["Resources"]
    function_globals = template["Globals"]["Function"]
    api_definition(resources, managed)
    for entry in managed:
        serverless = resources.pop(entry.logical_id)
        resources.update(capacity_resources(entry))
        resources.update(function_resources(entry, serverless, function_globals))
        wire_events(resources, entry, serverless["Properties"])
        _accept_scan_findings(template, entry)


def parameters() -> dict[str, Any]:
    return {
        SUBNETS: {"Type": "List<AWS::EC2::Subnet::Id>",
                  "Description": "Subnets (1-16, one per Availability Zone you want instances in) of the managed-instance "
                  "capacity providers; they need a route to S3, DynamoDB, SQS and CloudWatch (NAT or VPC endpoints)."},
        SECURITY_GROUPS: {"Type": "List<AWS::EC2::SecurityGroup::Id>",
                          "Description": "Security groups (0-5) of the managed instances: egress to the AWS APIs only."},
    }


def capacity_resources(entry: ModelEntry) -> dict[str, Any]:
    """The capacity provider of ``entry`` and its operator role."""
    operator = entry.resource_id("CapacityOperatorRole")
    requirements: dict[str, Any] = {"Architectures": [entry.architecture]}
    if entry.instance_types:
        requirements["AllowedInstanceTypes"] = list(entry.instance_types)
    return {
        operator: {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": LAMBDA_ASSUME,
            "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator"}],
        }},
        entry.resource_id("Capacity"): {"Type": "AWS::Lambda::CapacityProvider", "Properties": {
            "CapacityProviderName": {"Fn::Sub": f"${{AWS::StackName}}-{entry.name}"},
            "VpcConfig": {"SubnetIds": {"Ref": SUBNETS}, "SecurityGroupIds": {"Ref": SECURITY_GROUPS}},
            "PermissionsConfig": {"CapacityProviderOperatorRoleArn": {"Fn::GetAtt": [operator, "Arn"]}},
            "InstanceRequirements": requirements,
            "CapacityProviderScalingConfig": {
                "MaxVCpuCount": max_vcpus(entry),
                "ScalingMode": "Manual",
                "ScalingPolicies": [{"PredefinedMetricType": UTILIZATION_METRICS[entry.accelerator],
                                     "TargetValue": entry.scaling_target_percent}],
            },
            "PropagateTags": {"Mode": "Explicit", "ExplicitTags": [{"Key": FLEET_TAG, "Value": entry.name}]},
        }},
    }


def max_vcpus(entry: ModelEntry) -> int:
    """The provider's vCPU ceiling: ``max_environments`` environments of ``memory_mb`` at ``memory_gib_per_vcpu``."""
    per_environment = math.ceil(entry.memory_mb / 1024 / entry.memory_gib_per_vcpu)
    return max(2, entry.max_environments * per_environment)


def function_resources(entry: ModelEntry, serverless: dict[str, Any], function_globals: dict[str, Any]) -> dict[str, Any]:
    """The plain function (with what SAM's Globals would have given it), its role, its version and its live alias."""
    source = serverless["Properties"]
    flavor = image_flavor(entry.accelerator, entry.architecture, managed=True)
    variables = {**function_globals["Environment"]["Variables"], **source["Environment"]["Variables"],
                 names.ENVIRONMENT_CONCURRENCY: str(entry.environment_concurrency)}
    if entry.accelerator == "gpu":
        variables[names.ACCELERATOR_MEMORY_GIB] = str(entry.accelerator_memory_gib)
    scaling = {"MinExecutionEnvironments": entry.min_environments, "MaxExecutionEnvironments": entry.max_environments}
    role = entry.resource_id("FunctionRole")
    properties: dict[str, Any] = {
        "Description": source["Description"],
        "PackageType": "Image",
        "Code": {"ImageUri": flavor.tag(entry.logical_id)},  # the local tag `modelfn build` gives the image
        "Architectures": [entry.architecture],
        "MemorySize": entry.memory_mb,
        "Timeout": entry.timeout_s,
        "Role": {"Fn::GetAtt": [role, "Arn"]},
        "Environment": {"Variables": variables},
        "CapacityProviderConfig": {"LambdaManagedInstancesCapacityProviderConfig": {
            "CapacityProviderArn": {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:"
                                    f"capacity-provider:${{{entry.resource_id('Capacity')}}}"},
            "ExecutionEnvironmentMemoryGiBPerVCpu": entry.memory_gib_per_vcpu,
            "PerExecutionEnvironmentMaxConcurrency": entry.environment_concurrency,
        }},
        "FunctionScalingConfig": dict(scaling),
    }
    if function_globals.get("Tracing") == "Active":
        properties["TracingConfig"] = {"Mode": "Active"}
    if "LoggingConfig" in source:  # the metering pass's log group, which its usage subscription reads
        properties["LoggingConfig"] = source["LoggingConfig"]
    metadata: dict[str, Any] = {"Dockerfile": flavor.dockerfile, "DockerContext": IMAGE_CONTEXT, "DockerTag": flavor.docker_tag}
    if entry.accelerator == "gpu":
        properties["AcceleratorConfig"] = {"AcceleratorMemorySize": entry.accelerator_memory_gib}
        metadata.update(ACCELERATOR_LINT_EXCEPTION)
    elif flavor.base_image:
        metadata["DockerBuildArgs"] = {"BASE_IMAGE": flavor.base_image}
    return {
        role: _function_role(entry, source),
        entry.logical_id: {"Type": "AWS::Lambda::Function", "Metadata": metadata, "Properties": properties,
                           **({"DependsOn": serverless["DependsOn"]} if "DependsOn" in serverless else {})},
        version_id(entry): {"Type": "AWS::Lambda::Version", "DeletionPolicy": "Delete", "Properties": {
            "FunctionName": {"Ref": entry.logical_id}, "FunctionScalingConfig": dict(scaling),
        }},
        alias_id(entry): {"Type": "AWS::Lambda::Alias", "Properties": {
            "Name": LIVE_ALIAS, "FunctionName": {"Ref": entry.logical_id},
            "FunctionVersion": {"Fn::GetAtt": [version_id(entry), "Version"]},
        }},
    }


def _function_role(entry: ModelEntry, source: dict[str, Any]) -> dict[str, Any]:
    """The function's role: logs, X-Ray, the statements the other modules gave it (its model, its data, its meter)
    and what SAM's event sources would have added (polling its queue, sending to its async destinations)."""
    statements = [statement for policy in source.get("Policies", []) for statement in policy["Statement"]]
    queues = _queue_arns(source)
    if queues["poll"]:
        statements.append({"Sid": "PollOwnQueue", "Effect": "Allow", "Resource": queues["poll"], "Action": [
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]})
    if queues["destinations"]:
        statements.append({"Sid": "AsyncDestinations", "Effect": "Allow", "Action": ["sqs:SendMessage"],
                           "Resource": queues["destinations"]})
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": LAMBDA_ASSUME,
        "ManagedPolicyArns": [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXrayWriteOnlyAccess"},
        ],
        "Policies": [{"PolicyName": f"{entry.name}-function", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}],
    }}


def _queue_arns(source: dict[str, Any]) -> dict[str, list[Any]]:
    poll = [event["Properties"]["Queue"] for event in source.get("Events", {}).values() if event["Type"] == "SQS"]
    destinations = [target["Destination"] for target in source.get("EventInvokeConfig", {}).get("DestinationConfig", {}).values()]
    return {"poll": poll, "destinations": destinations}


def wire_events(resources: dict[str, Any], entry: ModelEntry, source: dict[str, Any]) -> None:
    """Each of the SAM function's events, as plain resources on the live alias (its routes: ``api_definition``)."""
    alias = {"Ref": alias_id(entry)}  # an alias's Ref is its ARN
    events = source.get("Events", {})
    for name, event in events.items():
        properties = event["Properties"]
        if event["Type"] == "S3":
            _add_inbox(resources, entry, name, alias, properties)
        elif event["Type"] == "SQS":
            resources[entry.resource_id(name + "EventSource")] = {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                "EventSourceArn": properties["Queue"], "FunctionName": alias, "BatchSize": properties["BatchSize"],
                "MaximumBatchingWindowInSeconds": properties["MaximumBatchingWindowInSeconds"],
                "FunctionResponseTypes": properties["FunctionResponseTypes"],
            }}
        elif event["Type"] != "Api":
            raise ValueError(f"{entry.where}: no managed-capacity wiring for a {event['Type']} event; add it to {__name__}")
    if any(event["Type"] == "Api" for event in events.values()):
        resources[entry.resource_id("ApiPermission")] = _permission(alias, "apigateway.amazonaws.com", {
            "Fn::Sub": f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{ids.API}}}/*"})
    invoke_config = source.get("EventInvokeConfig")
    if invoke_config:
        destinations = {outcome: {"Destination": target["Destination"]} for outcome, target in invoke_config["DestinationConfig"].items()}
        resources[entry.resource_id("EventInvokeConfig")] = {
            "Type": "AWS::Lambda::EventInvokeConfig", "DependsOn": alias_id(entry), "Properties": {
                "FunctionName": {"Ref": entry.logical_id}, "Qualifier": LIVE_ALIAS,
                "MaximumRetryAttempts": invoke_config["MaximumRetryAttempts"], "DestinationConfig": destinations,
            }}


def api_definition(resources: dict[str, Any], managed: list[ModelEntry]) -> None:
    """The API's whole OpenAPI body: every Api event of every function, integrated as SAM would (Lambda proxy, on
    the function's live alias where it has one), the managed functions' on their plain alias.

    Not ``MergeDefinitions``: aws-sam-translator 1.115 merges an ``ANY`` event under the key ``any`` instead of
    ``x-amazon-apigateway-any-method``, which API Gateway does not read as a method. With a body and no merge, SAM's
    Api events only add their invoke permissions; ``Auth.ApiKeyRequired`` still puts the key on every method, and
    an open route says ``api_key_false`` (SAM's own marker for ``ApiKeyRequired: false``)."""
    body: dict[str, Any] = {"swagger": "2.0", "info": {"title": {"Ref": "AWS::StackName"}, "version": "1.0"}, "paths": {}}
    managed_ids = {entry.logical_id: entry for entry in managed}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        if logical_id in managed_ids:
            target: Any = {"Ref": alias_id(managed_ids[logical_id])}
        elif "AutoPublishAlias" in resource["Properties"]:
            target = {"Ref": f"{logical_id}.Alias"}  # SAM resolves it to the live alias's ARN
        else:
            target = {"Fn::GetAtt": [logical_id, "Arn"]}
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                _add_route(body, target, event["Properties"])
    resources[ids.API]["Properties"]["DefinitionBody"] = body


def _add_route(body: dict[str, Any], target: Any, route: dict[str, Any]) -> None:
    method = route["Method"].lower()
    operation: dict[str, Any] = {"x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST",
        "uri": {"Fn::Sub": ["arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Target}/invocations",
                            {"Target": target}]},
    }}
    auth = route.get("Auth", {})
    if auth.get("ApiKeyRequired") is False:
        operation["security"] = [{"api_key_false": []}]
    elif auth.get("Authorizer"):  # the auth: section's authorizer on this route (SAM adds the API key beside it)
        operation["security"] = [{auth["Authorizer"]: []}]
        if auth["Authorizer"] == "AWS_IAM":  # SAM defines the named authorizers, not AWS_IAM, in a body it does not manage
            body.setdefault("securityDefinitions", {})["AWS_IAM"] = {
                "type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"}
    body["paths"].setdefault(route["Path"], {})["x-amazon-apigateway-any-method" if method == "any" else method] = operation


def _add_inbox(resources: dict[str, Any], entry: ModelEntry, name: str, alias: dict[str, Any], s3: dict[str, Any]) -> None:
    """The data bucket notifies the alias of new inbox objects (SAM appends its own functions' notifications)."""
    bucket = resources[s3["Bucket"]["Ref"]]
    permission = entry.resource_id(name + "Permission")
    resources[permission] = _permission(alias, "s3.amazonaws.com", {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", DATA_BUCKET_NAME]]})
    resources[permission]["Properties"]["SourceAccount"] = {"Ref": "AWS::AccountId"}
    configurations = bucket["Properties"].setdefault("NotificationConfiguration", {}).setdefault("LambdaConfigurations", [])
    configurations.append({"Event": s3["Events"], "Filter": s3["Filter"], "Function": alias})
    depends = bucket.get("DependsOn", [])
    bucket["DependsOn"] = [*([depends] if isinstance(depends, str) else depends), permission]


def _permission(alias: dict[str, Any], principal: str, source_arn: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::Lambda::Permission", "Properties": {
        "Action": "lambda:InvokeFunction", "FunctionName": alias, "Principal": principal, "SourceArn": source_arn}}


def _accept_scan_findings(template: dict[str, Any], entry: ModelEntry) -> None:
    """checkov's CKV_AWS_115 asks for reserved concurrency, which managed capacity bounds otherwise."""
    exceptions = template["Metadata"]["modelfn"]["checkov_exceptions"]
    rule = exceptions.setdefault("CKV_AWS_115", {"resources": [], "reason": (
        "Managed-instance functions have no reserved concurrency: their concurrency is bounded by the capacity "
        "provider, max_environments x environment_concurrency (catalog), and MaxVCpuCount.")})
    rule["resources"].append(entry.logical_id)
