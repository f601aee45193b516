"""TensorFlow Serving REST: the handlers of its model routes (``tfserving_routes``) and its codec, ``:predict`` in row
(``instances``) and columnar (``inputs``) form.

TF Serving's JSON carries no datatypes, so values take the datatype the model card records.
String (BYTES) values are JSON strings, or ``{"b64": "<base64>"}`` for binary data, as in TF Serving;
outputs whose name ends in ``_bytes`` are returned as ``{"b64": ...}``, and so is any string output
element that is not valid UTF-8.

Example:
    >>> from modelfn_runtime.modelcard import TensorSpec
    >>> specs = [TensorSpec("x", "FP32", [-1, 2])]
    >>> from modelfn_runtime.http import HttpRequest
    >>> request = HttpRequest("POST", "/v1/models/m:predict", body=b'{"instances": [[1, 2], [3, 4]]}')
    >>> decode_predict(request, specs).inputs["x"].shape
    (2, 2)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadRequest, quote
from ..http import HttpRequest, HttpResponse
from ..interfaces import Answer, ServedModel
from ..modelcard import ModelCard, TensorSpec
from ..validation import Limits, check_batch_size, check_total_elements, input_spec
from .common import check_content_type, decoded, json_value, tensor_from_json
from .tfserving_routes import METADATA, PREDICT, SIGNATURE, STATUS

DT_TYPES = {
    "BOOL": "DT_BOOL", "UINT8": "DT_UINT8", "UINT16": "DT_UINT16", "UINT32": "DT_UINT32", "UINT64": "DT_UINT64",
    "INT8": "DT_INT8", "INT16": "DT_INT16", "INT32": "DT_INT32", "INT64": "DT_INT64",
    "FP16": "DT_HALF", "FP32": "DT_FLOAT", "FP64": "DT_DOUBLE", "BYTES": "DT_STRING",
}


def _status(request: HttpRequest, served: ServedModel) -> Answer:
    card = served.card
    # TF Serving's status, plus KServe v1's readiness keys (its client reads "ready" from this route)
    return Answer(HttpResponse.json(200, {**model_status(card), "name": card.name, "ready": True}))


def _metadata(request: HttpRequest, served: ServedModel) -> Answer:
    return Answer(HttpResponse.json(200, model_metadata(served.card)))


def _predict(request: HttpRequest, served: ServedModel) -> Answer:
    predict = decode_predict(request, served.card.inputs, served.limits)
    results = served.run(predict.inputs)
    return Answer(HttpResponse.json(200, encode_predict(predict, results)), predict.batch_size)


HANDLERS = {STATUS.operation: _status, METADATA.operation: _metadata, PREDICT.operation: _predict}
"""The handler of each route in ``tfserving_routes.ROUTES``, by operation."""


@dataclass
class PredictRequest:
    inputs: dict[str, np.ndarray]
    row_format: bool

    @property
    def batch_size(self) -> int:
        first = next(iter(self.inputs.values()))
        return int(first.shape[0]) if first.ndim else 1


def decode_predict(request: HttpRequest, specs: list[TensorSpec], limits: Limits | None = None) -> PredictRequest:
    """The request's tensors; their nesting is their shape, checked against ``specs`` before they are built."""
    limits = limits or Limits()
    check_content_type(request.content_type)
    return decoded(request.body, "request body", lambda payload: _decode_payload(payload, specs, limits))


def _decode_payload(payload: dict[str, Any], specs: list[TensorSpec], limits: Limits) -> PredictRequest:
    signature = payload.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise BadRequest(f"signature {quote(signature)} is not served; this model has only {SIGNATURE!r}")
    if ("instances" in payload) == ("inputs" in payload):
        raise BadRequest('send exactly one of "instances" (row format) or "inputs" (columnar format)')
    if "instances" in payload:
        return PredictRequest(_from_rows(payload["instances"], specs, limits), row_format=True)
    return PredictRequest(_from_columns(payload["inputs"], specs, limits), row_format=False)


def encode_predict(request: PredictRequest, results: dict[str, np.ndarray]) -> dict[str, Any]:
    if not request.row_format:
        if len(results) == 1:
            return {"outputs": _json(*next(iter(results.items())))}
        return {"outputs": {name: _json(name, value) for name, value in results.items()}}
    if len(results) == 1:
        return {"predictions": _json(*next(iter(results.items())))}
    rows = [_json(name, value) for name, value in results.items()]
    return {"predictions": [dict(zip(results, row)) for row in zip(*rows)]}


def _json(name: str, array: np.ndarray) -> Any:
    """``json_value``, except that BYTES go out as ``{"b64": ...}`` for ``*_bytes`` outputs or non-UTF-8 data."""
    if array.dtype.kind not in "OS":
        return json_value(array)
    binary = name.endswith("_bytes")

    def element(item: Any) -> Any:
        raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
        if not binary:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(raw).decode("ascii")}

    return np.vectorize(element, otypes=[object])(array).tolist()


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _tensor(name: str, data: Any, spec: TensorSpec, limits: Limits) -> np.ndarray:
    """``tensor_from_json`` (bounded), accepting TF Serving's ``{"b64": ...}`` elements for BYTES inputs."""
    return tensor_from_json(name, data, spec, limits, b64_objects=True)


def model_status(card: ModelCard) -> dict[str, Any]:
    return {
        "model_version_status": [
            {"version": card.version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def model_metadata(card: ModelCard) -> dict[str, Any]:
    def tensors(specs: list[TensorSpec]) -> dict[str, Any]:
        return {
            spec.name: {
                "dtype": DT_TYPES[spec.datatype],
                "tensor_shape": {"dim": [{"size": str(dim), "name": ""} for dim in spec.shape], "unknown_rank": False},
                "name": spec.name,
            }
            for spec in specs
        }

    signature = {"inputs": tensors(card.inputs), "outputs": tensors(card.outputs), "method_name": "tensorflow/serving/predict"}
    return {
        "model_spec": {"name": card.name, "signature_name": "", "version": card.version},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
    }


def _from_rows(instances: Any, specs: list[TensorSpec], limits: Limits) -> dict[str, np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise BadRequest('"instances" must be a non-empty list with one entry per example')
    check_batch_size('"instances"', len(instances), limits)
    if len(specs) == 1 and (dict not in set(map(type, instances))  # one C-level pass: no object row at all
                            or not any(isinstance(row, dict) and not _is_b64(row) for row in instances)):
        return {specs[0].name: _tensor(specs[0].name, instances, specs[0], limits)}
    if not all(isinstance(row, dict) and not _is_b64(row) for row in instances):
        raise BadRequest(
            f"this model has several inputs {[s.name for s in specs]}; each instance must be an object keyed by input name"
        )
    columns: dict[str, list[Any]] = {}
    for index, row in enumerate(instances):
        if set(row) != set(columns or row):
            raise BadRequest(f"instance {index} names inputs {quote(sorted(row))}; every instance must name the same inputs")
        for name, value in row.items():
            columns.setdefault(name, []).append(value)
    return _typed(columns, specs, limits)


def _from_columns(inputs: Any, specs: list[TensorSpec], limits: Limits) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict):
        return _typed(inputs, specs, limits)
    if len(specs) != 1:
        raise BadRequest(f'"inputs" must be an object keyed by input name: this model has inputs {[s.name for s in specs]}')
    return {specs[0].name: _tensor(specs[0].name, inputs, specs[0], limits)}


def _typed(values: dict[str, Any], specs: list[TensorSpec], limits: Limits) -> dict[str, np.ndarray]:
    by_name = {name: input_spec(specs, name) for name in values}
    tensors, elements = {}, 0
    for name, value in values.items():
        tensors[name] = _tensor(name, value, by_name[name], limits)
        elements += tensors[name].size
        check_total_elements(elements, limits)
    return tensors
