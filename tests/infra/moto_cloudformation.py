"""CloudFormation resource types a SAM deployment needs that moto 5.2's CloudFormation does not create.

moto creates functions, versions, layers, roles, permissions and the REST API from a template, but logs
"No Moto CloudFormation support" for ``AWS::Lambda::Alias``, ``AWS::CloudWatch::Alarm``,
``AWS::CodeDeploy::Application``/``DeploymentGroup``, ``AWS::ApiGateway::Stage``,
``AWS::Lambda::EventInvokeConfig``, ``AWS::S3::BucketPolicy`` and ``AWS::Logs::SubscriptionFilter`` and leaves them out (and a
permission on an alias then fails). These adapters plug into moto's own model registry
(``CloudFormationModel`` subclasses) and call moto's backends, so the stack's resources really exist in moto
and can be read back through the ordinary APIs.

Example:
    >>> install()      # before the first create_stack
"""

from __future__ import annotations

import json
from typing import Any

from moto.apigateway.models import apigateway_backends
from moto.awslambda.models import LambdaFunction, LambdaVersion, LayerVersion, lambda_backends
from moto.cloudformation import parsing
from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.codedeploy.models import AlarmConfiguration, codedeploy_backends
from moto.core.common_models import CloudFormationModel
from moto.logs.models import logs_backends
from moto.s3.models import s3_backends
from moto.utilities.utils import get_partition


class _Created:
    """What every adapter shares; each adapter also subclasses CloudFormationModel directly, which is how moto finds it."""

    def __init__(self, physical_id: str, **attributes: Any) -> None:
        self._physical_id = physical_id
        self.attributes = attributes

    @property
    def physical_resource_id(self) -> str:
        return self._physical_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.attributes.get(attribute_name, self._physical_id)


class LambdaAlias(_Created, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Alias"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        properties = cloudformation_json["Properties"]
        backend = lambda_backends[account_id][region_name]
        function = backend.get_function(properties["FunctionName"])
        version = str(properties["FunctionVersion"])
        alias = backend.create_alias(properties["Name"], function.function_name, version, properties.get("Description", ""), {})
        return cls(alias.arn, Name=properties["Name"])


class CloudWatchAlarm(_Created, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]
        queries = [
            MetricDataQuery(
                query_id=m["Id"],
                label=m.get("Label", ""),
                period=m.get("Period"),
                return_data=m.get("ReturnData", True),
                expression=m.get("Expression"),
                metric_stat=MetricStat(
                    metric=Metric(
                        metric_name=m["MetricStat"]["Metric"]["MetricName"],
                        namespace=m["MetricStat"]["Metric"]["Namespace"],
                        dimensions=[Dimension(d["Name"], d["Value"]) for d in m["MetricStat"]["Metric"].get("Dimensions", [])],
                    ),
                    period=m["MetricStat"]["Period"],
                    stat=m["MetricStat"]["Stat"],
                    unit=m["MetricStat"].get("Unit"),
                ) if "MetricStat" in m else None,
            )
            for m in p.get("Metrics", [])
        ]
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=p.get("AlarmName") or resource_name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=p["EvaluationPeriods"],
            period=p.get("Period"),
            threshold=p["Threshold"],
            statistic=p.get("Statistic"),
            description=p.get("AlarmDescription", ""),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            metric_data_queries=queries or None,
            datapoints_to_alarm=p.get("DatapointsToAlarm"),
            extended_statistic=p.get("ExtendedStatistic"),
            unit=p.get("Unit"),
            treat_missing_data=p.get("TreatMissingData"),
        )
        return cls(alarm.name, Arn=alarm.alarm_arn)


class CodeDeployApplication(_Created, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CodeDeploy::Application"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]
        name = p.get("ApplicationName") or f"{kwargs.get('stack_name', 'stack')}-{resource_name}"
        codedeploy_backends[account_id][region_name].create_application(name, p.get("ComputePlatform", "Lambda"), [])
        return cls(name)


class CodeDeployDeploymentGroup(_Created, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CodeDeploy::DeploymentGroup"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]
        alarms = p.get("AlarmConfiguration") or {}
        name = p.get("DeploymentGroupName") or resource_name
        codedeploy_backends[account_id][region_name].create_deployment_group(
            application_name=p["ApplicationName"],
            deployment_group_name=name,
            deployment_config_name=p.get("DeploymentConfigName"),
            ec2_tag_filters=None,
            on_premises_instance_tag_filters=None,
            auto_scaling_groups=None,
            service_role_arn=p["ServiceRoleArn"],
            alarm_configuration=AlarmConfiguration(
                alarms=[{"name": a["Name"]} for a in alarms.get("Alarms", [])], enabled=alarms.get("Enabled", False)
            ),
            auto_rollback_configuration=p.get("AutoRollbackConfiguration"),
            deployment_style=p.get("DeploymentStyle"),
        )
        return cls(name)


class LogsSubscriptionFilter(_Created, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Logs::SubscriptionFilter"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]
        name = p.get("FilterName", resource_name)
        # moto checks the destination function exists, as CloudWatch Logs does
        logs_backends[account_id][region_name].put_subscription_filter(
            p["LogGroupName"], name, p["FilterPattern"], p["DestinationArn"], p.get("RoleArn", ""))
        return cls(name)


class ApiGatewayStage(_Created, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Stage"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]
        apigateway_backends[account_id][region_name].create_stage(
            p["RestApiId"], p["StageName"], p["DeploymentId"], variables=p.get("Variables"),
            tracing_enabled=p.get("TracingEnabled"),
        )
        return cls(p["StageName"])


class LambdaEventInvokeConfig(_Created, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::EventInvokeConfig"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]
        config = {key: p[key] for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig") if key in p}
        lambda_backends[account_id][region_name].put_function_event_invoke_config(p["FunctionName"], config)
        return cls(f"{p['FunctionName']}:{p.get('Qualifier', '$LATEST')}")


class S3BucketPolicy(_Created, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]
        policy = p["PolicyDocument"]
        s3_backends[account_id][get_partition(region_name)].put_bucket_policy(
            p["Bucket"], (policy if isinstance(policy, str) else json.dumps(policy)).encode()
        )
        return cls(p["Bucket"])


class ApiGatewayUsagePlan(_Created, CloudFormationModel):
    """The billing tiers (``UsagePlanFree``/``UsagePlanPro``): moto's API Gateway has plans, its CloudFormation not."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::UsagePlan"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]

        def lower(mapping: dict[str, Any] | None) -> dict[str, Any] | None:
            return {key[0].lower() + key[1:]: value for key, value in mapping.items()} if mapping else None

        plan = apigateway_backends[account_id][region_name].create_usage_plan({
            "name": p.get("UsagePlanName", resource_name), "description": p.get("Description"),
            "apiStages": [lower(stage) for stage in p.get("ApiStages", [])], "throttle": lower(p.get("Throttle")),
            "quota": lower(p.get("Quota")),
        })
        return cls(plan.id)


class ApiGatewayAccount(_Created, CloudFormationModel):
    """The account-wide CloudWatch role for access logs: nothing to emulate beyond its existence."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Account"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        return cls(f"{account_id}-{region_name}-apigateway-account")


class ApiGatewayRestApiWithBody(CloudFormationModel):
    """moto's own RestApi model ignores ``Body`` (the OpenAPI document SAM writes); this one imports it."""

    @staticmethod
    def cloudformation_name_type() -> str:
        return "RestApi"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::RestApi"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[override]
        p = cloudformation_json["Properties"]
        backend = apigateway_backends[account_id][region_name]
        api = backend.create_rest_api(
            name=p["Name"], description=p.get("Description", ""), endpoint_configuration=p.get("EndpointConfiguration")
        )
        if "Body" in p:
            # moto imports only OpenAPI 3 documents; SAM writes Swagger 2.0, whose paths and integrations read the same
            body = {("openapi" if key == "swagger" else key): value for key, value in p["Body"].items()}
            body["openapi"] = "3.0.1"
            api = backend.put_rest_api(api.id, body, fail_on_warnings=False, mode="overwrite")
        return api


def _version_attribute(self: LambdaVersion, attribute_name: str) -> str:
    if attribute_name != "Version":
        raise NotImplementedError(f"AWS::Lambda::Version has no attribute {attribute_name} in this adapter")
    return self.version


_create_function = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_function_with_layers(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
    function = _create_function(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    layers = cloudformation_json["Properties"].get("Layers")
    if layers:
        function.layers = function._get_layers_data(layers)
    return function


def install() -> None:
    """Make moto's CloudFormation see the adapters (its type map is cached on first use), give moto's
    ``AWS::Lambda::Version`` the ``Version`` attribute SAM's alias reads with ``Fn::GetAtt``, let a layer
    version's ``Ref`` be its ARN, and keep a function's ``Layers`` (moto's own models drop both)."""
    LayerVersion.physical_resource_id = property(lambda self: self.arn)  # type: ignore[attr-defined]
    LambdaFunction.create_from_cloudformation_json = classmethod(_create_function_with_layers)  # type: ignore[method-assign]
    LambdaVersion.has_cfn_attr = classmethod(lambda cls, attribute: attribute == "Version")  # type: ignore[method-assign]
    LambdaVersion.get_cfn_attribute = _version_attribute  # type: ignore[attr-defined]
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
