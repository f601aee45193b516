"""Protection: the model store (private, TLS-only, versioned, SSE-KMS), its key, least-privilege reads of it,
stage throttling, access logs and the security-scan findings accepted on purpose (issue 9).

Example:
    >>> sorted(resources())[:3]
    ['ApiAccessLogs', 'ApiGatewayAccount', 'ApiGatewayLogsRole']
"""

from __future__ import annotations

from typing import Any

from .schema import ModelEntry

ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","apiKeyId":"$context.identity.apiKeyId","method":"$context.httpMethod",'
    '"path":"$context.path","status":"$context.status","latencyMs":"$context.responseLatency",'
    '"integrationStatus":"$context.integration.status","responseBytes":"$context.responseLength",'
    '"error":$context.error.messageString}'  # already a quoted JSON string
)
"""Access log line: who (API key id, never the caller's IP or payload), what, how it went."""

STACK_KEY = {"Fn::If": ["UseStackKey", {"Fn::GetAtt": ["ModelKey", "Arn"]}, {"Ref": "ModelKmsKeyArn"}]}


def parameters() -> dict[str, Any]:
    """Stack parameters: create the model store or bring one, its KMS key, stage throttling, log retention."""
    return {
        "CreateModelBucket": {
            "Type": "String", "Default": "true", "AllowedValues": ["true", "false"],
            "Description": "true: this stack creates ModelBucket (private, TLS-only, versioned, SSE-KMS). false: use an "
            "existing bucket you secure yourself.",
        },
        "ModelKmsKeyArn": {
            "Type": "String", "Default": "",
            "Description": "KMS key the models are encrypted with (`modelfn push --kms-key-id`); empty: the stack's ModelKey.",
        },
        "ThrottleRateLimit": {"Type": "Number", "Default": 50, "Description": "Stage-wide steady requests per second."},
        "ThrottleBurstLimit": {"Type": "Number", "Default": 100, "Description": "Stage-wide burst of requests."},
        "AccessLogRetentionDays": {
            "Type": "Number", "Default": 90,
            "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653],
            "Description": "Days API access logs are kept (they hold no payloads and no caller IPs).",
        },
    }


def conditions() -> dict[str, Any]:
    """``CreateModelStore`` and ``UseStackKey``, from the parameters above."""
    return {
        "CreateModelStore": {"Fn::Equals": [{"Ref": "CreateModelBucket"}, "true"]},
        "UseStackKey": {"Fn::Equals": [{"Ref": "ModelKmsKeyArn"}, ""]},
    }


def api_protection() -> dict[str, Any]:
    """Stage throttling for every method, and JSON access logs."""
    return {
        "MethodSettings": [{
            "ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": True, "DataTraceEnabled": False,
            "ThrottlingRateLimit": {"Ref": "ThrottleRateLimit"}, "ThrottlingBurstLimit": {"Ref": "ThrottleBurstLimit"},
        }],
        "AccessLogSetting": {"DestinationArn": {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}, "Format": ACCESS_LOG_FORMAT},
    }


def model_read_policy(entry: ModelEntry) -> list[dict[str, Any]]:
    """Read access to this model's own prefix only, and decrypt through S3 with the model key: no other model."""
    prefix = entry.store_prefix
    return [{"Statement": [
        {
            "Sid": "ReadOwnModel", "Effect": "Allow", "Action": ["s3:GetObject"],
            "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{ModelBucket}}/{prefix}*"},
        },
        {
            "Sid": "ListOwnModel", "Effect": "Allow", "Action": ["s3:ListBucket"],
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ModelBucket}"},
            "Condition": {"StringLike": {"s3:prefix": {"Fn::Sub": f"{prefix}*"}}},
        },
        {
            "Sid": "DecryptModelThroughS3", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": STACK_KEY,
            "Condition": {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}},
        },
    ]}]


def resources() -> dict[str, Any]:
    """The model key, the model store and the API's access logs."""
    return {**_model_key(), **_model_store(), **_access_logs()}


def _model_key() -> dict[str, Any]:
    return {
        "ModelKey": {
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": "modelfn: encrypts model artifacts (SSE-KMS) and API access logs.",
                "EnableKeyRotation": True,
                "KeyPolicy": {"Version": "2012-10-17", "Statement": [
                    {
                        "Sid": "AccountAdministersTheKey", "Effect": "Allow",
                        "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                        "Action": "kms:*", "Resource": "*",
                    },
                    {
                        "Sid": "CloudWatchLogsEncryptsAccessLogs", "Effect": "Allow",
                        "Principal": {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}},
                        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                        "Resource": "*",
                        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": {
                            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}}},
                    },
                ]},
            },
        },
        "ModelKeyAlias": {
            "Type": "AWS::KMS::Alias",
            "Properties": {"AliasName": {"Fn::Sub": "alias/${AWS::StackName}-models"}, "TargetKeyId": {"Ref": "ModelKey"}},
        },
    }


def _model_store() -> dict[str, Any]:
    bucket_arn = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ModelStore}"}
    objects_arn = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ModelStore}/*"}
    return {
        "ModelStore": {
            "Type": "AWS::S3::Bucket",
            "Condition": "CreateModelStore",
            "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketName": {"Ref": "ModelBucket"},
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [{
                    "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": STACK_KEY},
                    "BucketKeyEnabled": True,
                }]},
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
                },
                "VersioningConfiguration": {"Status": "Enabled"},
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            },
        },
        "ModelStorePolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Condition": "CreateModelStore",
            "Properties": {
                "Bucket": {"Ref": "ModelStore"},
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": [bucket_arn, objects_arn],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }]},
            },
        },
    }


def _access_logs() -> dict[str, Any]:
    """The access log group, and the region's API Gateway role that lets API Gateway write to it."""
    return {
        "ApiAccessLogs": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": {"Fn::Sub": "/modelfn/${AWS::StackName}/api-access"},
                "RetentionInDays": {"Ref": "AccessLogRetentionDays"},
                "KmsKeyId": {"Fn::GetAtt": ["ModelKey", "Arn"]},
            },
        },
        "ApiGatewayLogsRole": {
            "Type": "AWS::IAM::Role",
            "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole",
                }]},
                "ManagedPolicyArns": [
                    {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"},
                ],
            },
        },
        "ApiGatewayAccount": {
            "Type": "AWS::ApiGateway::Account",
            # The region's one API Gateway logging role: kept when the stack goes so other APIs keep logging.
            "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}},
        },
    }


def security_exceptions() -> dict[str, Any]:
    """Security-scan findings accepted on purpose: check id -> the resources (logical-id patterns) and the reason.

    tests/infra/test_security.py fails on any checkov finding not listed here.
    """
    functions = ["*Function"]
    return {"modelfn": {"checkov_exceptions": {
        "CKV_AWS_116": {"resources": functions, "reason": "No dead-letter queue on the function: API and direct invokes "
                        "are synchronous (the caller gets the error); queued work has its own SQS dead-letter queue and "
                        "S3 work records failures under errors/."},
        "CKV_AWS_117": {"resources": functions, "reason": "Not in a VPC: the functions reach only AWS APIs (S3, KMS, "
                        "DynamoDB, SQS) and hold no network-reachable secrets; a VPC would add NAT or endpoint cost and "
                        "cold-start latency for no isolation gain."},
        "CKV_AWS_173": {"resources": functions, "reason": "Environment variables hold no secrets (model names, URIs, "
                        "limits); Lambda encrypts them at rest with its AWS-managed key."},
        "CKV_AWS_120": {"resources": ["ModelApiStage"], "reason": "No API cache: inference answers are per request, and "
                        "caching them would keep user data."},
        "CKV_AWS_18": {"resources": ["ModelStore", "DataBucket"], "reason": "No S3 server access logs: enable CloudTrail "
                       "S3 data events for an audit trail of model and data reads and writes."},
        "CKV_AWS_21": {"resources": ["DataBucket"], "reason": "The data bucket is not versioned: it holds transient user "
                       "requests and results, and versions would keep what a user deleted."},
        "CKV_AWS_27": {"resources": ["*Queue"], "reason": "SQS encrypts every queue created since 2022 with SSE-SQS by "
                       "default; a customer key would add KMS calls to every message."},
        "CKV_AWS_119": {"resources": ["IdempotencyTable", "UsageTable"], "reason": "Idempotency records hold request "
                        "hashes and result locations, usage records counters per tenant and day: no payloads; DynamoDB "
                        "encrypts them at rest with an AWS-owned key, and a customer key would add a KMS call to every "
                        "request's metering write."},
    }}}

