"""The API's OpenAPI 3.1 description, generated from the model cards (never written by hand).

Every route the service answers is described; each model gets its own request and response schemas for
both protocols, derived from its card's input and output names, datatypes and shapes:

* Open Inference Protocol: ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` with the name and
  datatype fixed and the shape's rank and fixed dimensions checked; binary tensors as
  ``application/octet-stream``.
* TensorFlow Serving: ``instances`` (one entry per example, nested exactly as the example's shape) or
  ``inputs`` (columnar), and the matching ``predictions`` / ``outputs``.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so any JSON Schema validator checks requests against them.

Example:
    >>> from modelfn_runtime.modelcard import ModelCard
    >>> document = openapi_document([], "0.1.0")
    >>> document["openapi"], "/v2/health/ready" in document["paths"]
    ('3.1.0', True)
"""

from __future__ import annotations

from typing import Any

from .modelcard import ModelCard, TensorSpec
from .protocols import oip_routes, server_routes, tfserving_routes
from .protocols.routing import Route
from .protocols.tfserving_routes import SIGNATURE

OPENAPI_VERSION = "3.1.0"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
_LEAVES: dict[str, dict[str, Any]] = {
    "BOOL": {"type": ["boolean", "integer"]},
    "BYTES": {"type": "string"},
    "FP16": {"type": "number"},
    "FP32": {"type": "number"},
    "FP64": {"type": "number"},
}
_DATA_SCHEMAS = {"number": "NumberData", "integer": "IntegerData", "boolean": "BoolData", "string": "StringData"}


def openapi_document(cards: list[ModelCard], server_version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for an API serving ``cards`` (sorted by model name)."""
    paths: dict[str, Any] = {
        server_routes.PLAYGROUND.path: {"get": _operation(
            server_routes.PLAYGROUND.operation,
            "The browser playground (Accept: text/html): every model, its signature and a request form; "
            'otherwise KServe v1 liveness, {"status": "alive"}.',
            {"200": {"description": "HTML page, or liveness as JSON",
                     "content": {"text/html": {"schema": {"type": "string"}},
                                 "application/json": {"schema": {"type": "object", "required": ["status"],
                                                                 "properties": {"status": {"const": "alive"}}}}}}},
            tag="server")},
        server_routes.OPENAPI.path: {"get": _operation(server_routes.OPENAPI.operation, "This document.", {"200": _json_response("OpenAPI 3.1 document", {"type": "object"})},
                                            tag="server")},
        server_routes.LIVE.path: {"get": _operation(server_routes.LIVE.operation, "Server liveness.", {"200": _json_response("live", _flag("live"))}, tag="server")},
        server_routes.READY.path: {"get": _operation(server_routes.READY.operation, "Server readiness.", {"200": _json_response("ready", _flag("ready"))}, tag="server")},
        server_routes.METADATA.path: {"get": _operation(server_routes.METADATA.operation, "Server name, version and protocol extensions.",
                                  {"200": _json_response("server metadata", {"$ref": "#/components/schemas/ServerMetadata"})},
                                  tag="server")},
    }
    schemas: dict[str, Any] = _common_schemas()
    for card in sorted(cards, key=lambda c: c.name):
        model_paths, model_schemas = _model(card)
        paths.update(model_paths)
        schemas.update(model_schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "modelfn",
            "version": server_version,
            "description": "Model as a Service: Open Inference Protocol v2 (KServe/Triton) and TensorFlow Serving REST, "
            "one AWS Lambda function per model. Generated from the model cards.",
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [{"name": "server"}] + [{"name": card.name, "description": card.description} for card in sorted(cards, key=lambda c: c.name)],
        "paths": paths,
        "components": {"schemas": schemas},
    }


def example_shape(spec: TensorSpec) -> list[int]:
    """The shape of one example: the batch dimension dropped when the first dimension is dynamic."""
    return spec.shape[1:] if spec.shape and spec.shape[0] == -1 else list(spec.shape)


def _model(card: ModelCard) -> tuple[dict[str, Any], dict[str, Any]]:
    name, key = card.name, _key(card.name)
    schemas = {
        f"{key}.InferRequest": _infer_request(card),
        f"{key}.InferResponse": _infer_response(card),
        f"{key}.PredictRequest": _predict_request(card),
        f"{key}.PredictResponse": _predict_response(card),
        f"{key}.ModelMetadata": _model_metadata(card),
    }
    ref = {schema: {"$ref": f"#/components/schemas/{key}.{schema}"} for schema in
           ("InferRequest", "InferResponse", "PredictRequest", "PredictResponse", "ModelMetadata")}
    infer_body = {
        "required": True,
        "content": {
            "application/json": {"schema": ref["InferRequest"]},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary",
                           "description": "binary tensor extension: the JSON header (its length in "
                           "Inference-Header-Content-Length) then raw tensors"},
            },
        },
    }
    infer_responses = {
        "200": {
            "description": "inference result",
            "content": {"application/json": {"schema": ref["InferResponse"]},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **_errors("400", "404", "413", "415"),
    }
    predict_body = {"required": True, "content": {"application/json": {"schema": ref["PredictRequest"]}}}
    status = {
        "type": "object",
        "required": ["model_version_status"],
        "properties": {"model_version_status": {"type": "array", "items": {"type": "object"}},
                       "name": {"const": card.name}, "ready": {"type": "boolean"}},
    }
    operations: dict[Route, tuple[str, dict[str, Any], dict[str, Any] | None]] = {
        oip_routes.MODEL_METADATA: ("Model metadata from the card (OIP).",
                                    {"200": _json_response("model metadata", ref["ModelMetadata"]), **_errors("404")}, None),
        oip_routes.MODEL_READY: ("Model readiness (OIP).",
                                 {"200": _json_response("readiness", _model_ready(card)), **_errors("404")}, None),
        oip_routes.INFER: (f"Run {name} (Open Inference Protocol, JSON or binary tensors).", infer_responses, infer_body),
        tfserving_routes.STATUS: ("Model version status (TF Serving).",
                                  {"200": _json_response("status", status), **_errors("404")}, None),
        tfserving_routes.METADATA: ("Signature (TF Serving).",
                                    {"200": _json_response("metadata", {"type": "object"}), **_errors("404")}, None),
        tfserving_routes.PREDICT: (f"Run {name} (TensorFlow Serving, row or columnar form).",
                                   {"200": _json_response("predictions", ref["PredictResponse"]), **_errors("400", "404", "413", "415")},
                                   predict_body),
    }
    paths: dict[str, Any] = {}
    version_parameter = {"name": "version", "in": "path", "required": True, "schema": {"type": "string", "enum": [card.version]}}
    for route, (summary, responses, body) in operations.items():
        for versioned in (False, True):
            path = route.path_for(name, "{version}") if versioned else route.path_for(name)
            op = _operation(f"{key}.{route.operation}{'.versioned' if versioned else ''}", summary, responses, tag=name)
            if body is not None:
                op["requestBody"] = body
            if versioned:
                op["parameters"] = [version_parameter]
            paths[path] = {route.method.lower(): op}
    return paths, schemas


def _infer_request(card: ModelCard) -> dict[str, Any]:
    inputs = [_oip_tensor(spec, request=True) for spec in card.inputs]
    outputs = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"enum": [spec.name for spec in card.outputs]},
                "parameters": {
                    "type": "object",
                    "properties": {
                        "binary_data": {"type": "boolean"},
                        "classification": {"type": "integer", "minimum": 1,
                                           "description": "Triton classification extension: the top-k classes as 'score:index[:label]'"},
                    },
                },
            },
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
            "inputs": {"type": "array", "minItems": len(card.inputs), "maxItems": len(card.inputs),
                       "items": {"oneOf": inputs}},
            "outputs": outputs,
        },
    }


def _infer_response(card: ModelCard) -> dict[str, Any]:
    outputs = [_oip_tensor(spec, request=False) for spec in card.outputs]
    return {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"const": card.name},
            "model_version": {"const": card.version},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"oneOf": outputs}},
        },
    }


def _oip_tensor(spec: TensorSpec, *, request: bool) -> dict[str, Any]:
    """One named tensor of the OIP JSON form; a response may carry a classification's BYTES instead."""
    shape = {
        "type": "array",
        "minItems": len(spec.shape),
        "maxItems": len(spec.shape),
        "prefixItems": [{"const": dim} if dim >= 0 else {"type": "integer", "minimum": 0} for dim in spec.shape],
        "items": False,
    }
    if request:
        return {
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "properties": {"name": {"const": spec.name}, "shape": shape, "datatype": {"const": spec.datatype},
                           "data": _data_ref(spec.datatype), "parameters": {"type": "object"}},
        }
    return {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"const": spec.name},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": sorted({spec.datatype, "BYTES"})},
            "data": {"anyOf": [_data_ref(spec.datatype), _data_ref("BYTES")]},
            "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
        },
    }


def _predict_request(card: ModelCard) -> dict[str, Any]:
    if len(card.inputs) == 1:
        spec = card.inputs[0]
        instance, columns = _nested(example_shape(spec), spec.datatype), {"anyOf": [_nested(spec.shape, spec.datatype), _by_name(card.inputs, batch=True)]}
    else:
        instance, columns = _by_name(card.inputs, batch=False), _by_name(card.inputs, batch=True)
    return {
        "type": "object",
        "properties": {
            "signature_name": {"enum": [SIGNATURE]},
            "instances": {"type": "array", "minItems": 1, "items": instance},
            "inputs": columns,
        },
        "oneOf": [{"required": ["instances"], "not": {"required": ["inputs"]}},
                  {"required": ["inputs"], "not": {"required": ["instances"]}}],
    }


def _predict_response(card: ModelCard) -> dict[str, Any]:
    if len(card.outputs) == 1:
        spec = card.outputs[0]
        row, columns = _nested(example_shape(spec), spec.datatype), _nested(spec.shape, spec.datatype)
    else:
        row, columns = _by_name(card.outputs, batch=False), _by_name(card.outputs, batch=True)
    return {
        "type": "object",
        "properties": {"predictions": {"type": "array", "items": row}, "outputs": columns},
        "oneOf": [{"required": ["predictions"]}, {"required": ["outputs"]}],
    }


def _by_name(specs: list[TensorSpec], *, batch: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [spec.name for spec in specs] if not batch else [],
        "properties": {spec.name: _nested(spec.shape if batch else example_shape(spec), spec.datatype) for spec in specs},
        "additionalProperties": False,
    }


def _nested(shape: list[int], datatype: str) -> dict[str, Any]:
    """Nested arrays exactly as ``shape`` (``-1``: any length) with ``datatype`` leaves."""
    schema: dict[str, Any] = dict(_leaf(datatype))
    for dim in reversed(shape):
        schema = {"type": "array", "items": schema, **({"minItems": dim, "maxItems": dim} if dim >= 0 else {})}
    return schema


def _leaf(datatype: str) -> dict[str, Any]:
    return _LEAVES.get(datatype, {"type": "integer"})


def _data_ref(datatype: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{_DATA_SCHEMAS[_json_type(datatype)]}"}


def _json_type(datatype: str) -> str:
    leaf = _leaf(datatype)["type"]
    return "boolean" if isinstance(leaf, list) else leaf


def _model_metadata(card: ModelCard) -> dict[str, Any]:
    def tensors(specs: list[TensorSpec]) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "object", "required": ["name", "datatype", "shape"]},
                "minItems": len(specs), "maxItems": len(specs)}

    return {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {"name": {"const": card.name}, "versions": {"type": "array", "items": {"type": "string"}},
                       "platform": {"type": "string"}, "inputs": tensors(card.inputs), "outputs": tensors(card.outputs)},
        "description": "inputs: " + ", ".join(f"{s.name} {s.datatype} {s.shape}" for s in card.inputs)
        + "; outputs: " + ", ".join(f"{s.name} {s.datatype} {s.shape}" for s in card.outputs),
    }


def _model_ready(card: ModelCard) -> dict[str, Any]:
    return {"type": "object", "required": ["name", "ready"], "properties": {"name": {"const": card.name}, "ready": {"type": "boolean"}}}


def _common_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
                  "description": "what was wrong and how to fix it"},
        "ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "extensions": {"type": "array", "items": {"type": "string"}}},
        },
    }
    for leaf, schema_name in _DATA_SCHEMAS.items():
        leaf_schema = {"type": ["boolean", "integer"]} if leaf == "boolean" else {"type": leaf}
        schemas[schema_name] = {
            "type": "array",
            "description": f"tensor data, flat (row-major) or nested, of {leaf} elements",
            "items": {"anyOf": [leaf_schema, {"$ref": f"#/components/schemas/{schema_name}"}]},
        }
    return schemas


def _operation(operation_id: str, summary: str, responses: dict[str, Any], *, tag: str) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: _json_response("error", ERROR_REF) for status in statuses}


def _flag(name: str) -> dict[str, Any]:
    return {"type": "object", "required": [name], "properties": {name: {"type": "boolean"}}}


def _key(name: str) -> str:
    return name.replace("-", "_")
