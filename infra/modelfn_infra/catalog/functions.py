"""The functions: what every function shares (Globals), the catch-all ``ServerFunction``, and one function per model
sized from its catalog entry, reading only its own model.

Example:
    >>> model_function(ModelEntry("digits", "1"))["Properties"]["MemorySize"]
    1024
"""

from __future__ import annotations

from typing import Any

from modelfn_runtime import environment as names

from .api import model_routes, server_routes
from .protection import model_read_policy
from .releases import LAMBDA_RUNTIME, release_properties
from .schema import Catalog, ModelEntry

FUNCTION_CODE = "functions/inference/"
HANDLER = "app.lambda_handler"


def function_globals(catalog: Catalog, code_uri: str = FUNCTION_CODE) -> dict[str, Any]:
    """``Globals.Function``: runtime, code, handler, tracing and the environment every function shares."""
    return {
        "Runtime": LAMBDA_RUNTIME,
        "CodeUri": code_uri,
        "Handler": HANDLER,
        "Tracing": "Active",
        "Environment": {
            "Variables": {
                "POWERTOOLS_SERVICE_NAME": "modelfn",
                "POWERTOOLS_METRICS_NAMESPACE": "modelfn",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                names.MODELS: ",".join(entry.name for entry in catalog.models),
            }
        },
    }


def server_function(catalog: Catalog) -> dict[str, Any]:
    """Health, server metadata, the playground, ``/openapi.json`` and clear 404s for unknown models and routes.

    It reads each model's card (only ``modelcard.json``, a few KB, allowed key by key) from the model store."""
    properties: dict[str, Any] = {
        "Description": "Health, server metadata, and clear 404s for unknown models and routes.",
        "MemorySize": 256,
        "Timeout": 5,
        "ReservedConcurrentExecutions": 10,  # health and 404s stay cheap under a flood of unknown routes
        "Events": server_routes(),
    }
    if catalog.models:
        directories = [f"s3://${{ModelBucket}}/{entry.store_prefix}" for entry in catalog.models]
        properties["Environment"] = {"Variables": {names.CARD_URIS: {"Fn::Sub": ",".join(directories)}}}
        card_keys = [
            {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{ModelBucket}}/{entry.store_prefix}modelcard.json"}
            for entry in catalog.models
        ]
        properties["Policies"] = [{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": card_keys}]}]
    return {"Type": "AWS::Serverless::Function", "Properties": properties}


def model_function(entry: ModelEntry) -> dict[str, Any]:
    """The function serving ``entry``: its size, its model, its limits, its routes, its release settings."""
    properties: dict[str, Any] = {
        "Description": f"Serves model {entry.name} version {entry.version} with ONNX Runtime.",
        "MemorySize": entry.memory_mb,
        "Timeout": entry.timeout_s,
        "Architectures": [entry.architecture],
        "Environment": {
            "Variables": {
                names.MODEL_NAME: entry.name,
                names.MODEL_VERSION: entry.version,
                names.MODEL_URI: {"Fn::Sub": f"s3://${{ModelBucket}}/{entry.store_prefix}"},
                names.MAX_BATCH_SIZE: str(entry.max_batch_size),
                names.PAYLOAD_LOG_RATE: str(entry.payload_log_rate),
            }
        },
        "Policies": model_read_policy(entry),
        "Events": model_routes(entry),
    }
    if entry.reserved_concurrency is not None:
        properties["ReservedConcurrentExecutions"] = entry.reserved_concurrency
    properties.update(release_properties(entry))
    return {"Type": "AWS::Serverless::Function", "Properties": properties}
