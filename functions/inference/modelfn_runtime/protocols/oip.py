"""Open Inference Protocol v2 (KServe v2 / Triton): the handlers of its model routes (``oip_routes``) and its REST
codec, with the binary tensor data extension.

A binary request body is the JSON header followed by raw tensor bytes; the header's length is in
``Inference-Header-Content-Length`` and each binary input names its size in
``parameters.binary_data_size``. Responses use the same layout when the client asks for binary
outputs (``binary_data_output`` or an output's ``binary_data``), as ``tritonclient.http`` does by default.

Example:
    >>> from modelfn_runtime.http import HttpRequest
    >>> body = b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}'
    >>> from modelfn_runtime.modelcard import TensorSpec
    >>> card = ModelCard.from_dict({"name": "m", "version": "1", "created": "", "opset": 17, "producers": {},
    ...     "artifact": {"file": "model.onnx", "sha256": "", "bytes": 0}, "parity": {}, "source": {},
    ...     "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}], "outputs": []})
    >>> decode_infer(HttpRequest("POST", "/v2/models/m/infer", body=body), card).inputs["x"].shape
    (1, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BadRequest, quote
from ..http import HttpRequest, HttpResponse, dumps
from ..interfaces import Answer, ServedModel
from ..modelcard import ModelCard, TensorSpec
from ..tensors import datatype_of, from_binary, numpy_dtype, to_binary
from ..validation import Limits, check_datatype, check_shape, check_total_elements, input_spec
from .common import check_content_type, decoded, flag, json_value, parameters_of, tensor_from_json
from .oip_routes import HEADER_LENGTH, INFER, MODEL_METADATA, MODEL_READY


def _model_metadata(request: HttpRequest, served: ServedModel) -> Answer:
    return Answer(HttpResponse.json(200, {**model_metadata(served.card), "parameters": serving_parameters(served)}))


def _model_ready(request: HttpRequest, served: ServedModel) -> Answer:
    return Answer(HttpResponse.json(200, {"name": served.card.name, "ready": True, **serving_parameters(served)}))


def serving_parameters(served: ServedModel) -> dict[str, Any]:
    """The execution provider the session really runs on, and why a GPU image serves on the CPU where it does."""
    parameters = {"provider": served.model.provider}
    fallback = getattr(served.model, "fallback", None)
    if fallback:
        parameters["fallback"] = fallback
    return parameters


def _infer(request: HttpRequest, served: ServedModel) -> Answer:
    infer = decode_infer(request, served.card, served.limits)
    results = served.run(infer.inputs, infer.outputs)
    return Answer(encode_infer(served.card, infer, results), infer.batch_size)


HANDLERS = {MODEL_METADATA.operation: _model_metadata, MODEL_READY.operation: _model_ready, INFER.operation: _infer}
"""The handler of each route in ``oip_routes.ROUTES``, by operation."""


@dataclass
class InferRequest:
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None = None
    binary_outputs: set[str] = field(default_factory=set)
    binary_by_default: bool = False
    id: str | None = None
    classification: dict[str, int] = field(default_factory=dict)

    def wants_binary(self, output: str) -> bool:
        return output in self.binary_outputs or (self.outputs is None and self.binary_by_default)

    @property
    def batch_size(self) -> int:
        first = next(iter(self.inputs.values()), None)
        return int(first.shape[0]) if first is not None and first.ndim else 1


def decode_infer(request: HttpRequest, card: ModelCard, limits: Limits | None = None) -> InferRequest:
    """The request's tensors, each checked against ``card`` (name, datatype, shape, batch size) before it is built."""
    limits = limits or Limits()
    if isinstance(request.parsed, dict):  # a trigger that received JSON already (direct invoke, SQS)
        return _decode_payload(request.parsed, None, card, limits)
    check_content_type(request.content_type)
    header, binary = _split_body(request)
    what = "inference request header" if binary else "request body"
    return decoded(header, what, lambda payload: _decode_payload(payload, binary, card, limits))


def _decode_payload(payload: dict[str, Any], binary: memoryview | None, card: ModelCard, limits: Limits) -> InferRequest:
    parameters = parameters_of(payload, "the request")
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest('the request needs a non-empty "inputs" list of {"name", "shape", "datatype", "data"}')
    inputs: dict[str, np.ndarray] = {}
    offset, elements = 0, 0
    for raw in raw_inputs:
        name, shape, datatype, spec = _input_header(raw, card, limits)
        if name in inputs:
            raise BadRequest(f"input {name!r} appears twice; send each input once")
        elements += math.prod(shape)
        check_total_elements(elements, limits)
        array, used = _input_data(raw, name, shape, datatype, spec, limits, binary, offset)
        inputs[name] = array
        offset += used
    if binary is not None and offset != len(binary):
        raise BadRequest(
            f"the binary section holds {len(binary)} bytes but the inputs' binary_data_size add up to {offset}"
        )
    binary_by_default = flag(parameters, "binary_data_output", "the request")
    outputs, binary_outputs = _requested_outputs(payload, binary_by_default)
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f'"id" must be a string, got {type(request_id).__name__}')
    return InferRequest(inputs, outputs, binary_outputs, binary_by_default, request_id, _classification(payload))


def encode_infer(card: ModelCard, infer: InferRequest, results: dict[str, np.ndarray]) -> HttpResponse:
    outputs, chunks = [], []
    for name, array in results.items():
        if name in infer.classification:
            array = classify(array, infer.classification[name], _labels(card, name))
        tensor: dict[str, Any] = {"name": name, "datatype": datatype_of(array), "shape": list(array.shape)}
        if infer.wants_binary(name):
            raw = to_binary(array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = json_value(array.reshape(-1))
        outputs.append(tensor)
    response: dict[str, Any] = {"model_name": card.name, "model_version": card.version, "outputs": outputs}
    if infer.id is not None:
        response["id"] = infer.id
    header = dumps(response)
    if not chunks:
        return HttpResponse(200, header, {"Content-Type": "application/json"})
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
    return HttpResponse(200, header + b"".join(chunks), headers, binary=True)


def classify(scores: np.ndarray, count: int, labels: list[str] | None = None) -> np.ndarray:
    """Triton's classification extension: the ``count`` highest scores of each example, best first, as
    ``"score:index"`` (``"score:index:label"`` when the card names the classes) BYTES, shape ``[batch, count]``.

    Example:
        >>> classify(np.array([[0.1, 0.7, 0.2]], np.float32), 2).tolist()
        [[b'0.700000:1', b'0.200000:2']]
    """
    if scores.dtype.kind not in "biuf" or scores.ndim == 0:
        raise BadRequest("classification needs a numeric output with a class dimension")
    # the class dimension by count, not -1: numpy cannot infer it from an empty batch
    rows = scores.reshape(scores.shape[0], math.prod(scores.shape[1:])) if scores.ndim > 1 else scores.reshape(1, -1)
    classes = rows.shape[1]
    if count > classes:
        raise BadRequest(f"classification asks for the top {count} classes but the output has only {classes}; lower class_count")
    top = np.argsort(-rows, axis=1, kind="stable")[:, :count]
    result = np.empty(top.shape, dtype=object)
    for row, indices in enumerate(top):
        for column, index in enumerate(indices):
            text = f"{float(rows[row, index]):f}:{int(index)}"  # std::to_string's six decimals, as Triton prints
            if labels and index < len(labels):
                text += f":{labels[index]}"
            result[row, column] = text.encode()
    return result if scores.ndim > 1 else result.reshape(count)


def model_metadata(card: ModelCard) -> dict[str, Any]:
    def tensors(specs):
        return [{"name": s.name, "datatype": s.datatype, "shape": s.shape} for s in specs]

    return {
        "name": card.name,
        "versions": [card.version],
        "platform": "onnxruntime_onnx",
        "inputs": tensors(card.inputs),
        "outputs": tensors(card.outputs),
    }


def _split_body(request: HttpRequest) -> tuple[memoryview, memoryview | None]:
    """The JSON header and the binary section (None: the request has no binary section, its body is all JSON)."""
    body = memoryview(request.body)
    raw_length = request.headers.get(HEADER_LENGTH)
    if raw_length is None:
        return body, None
    try:
        length = int(raw_length)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise BadRequest(
            f"{HEADER_LENGTH}: {quote(raw_length)} must be the JSON header's byte length, between 1 and the body size {len(body)}"
        )
    return body[:length], body[length:]


def _input_header(raw: Any, card: ModelCard, limits: Limits) -> tuple[str, list[int], str, TensorSpec]:
    """Name, shape and datatype of one input, validated against the card before any data is touched."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise BadRequest('each input must be an object with "name", "shape", "datatype" and "data"')
    name = raw["name"]
    spec = input_spec(card.inputs, name)
    shape, datatype = raw.get("shape"), raw.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(f'input {name!r} needs a "shape" list of non-negative integers, got {quote(shape)}')
    if not isinstance(datatype, str):
        raise BadRequest(f'input {name!r} needs a "datatype" such as "FP32" or "INT64"')
    numpy_dtype(datatype)
    check_datatype(name, datatype, spec)
    check_shape(name, shape, spec, limits)
    return name, shape, datatype, spec


def _input_data(
    raw: dict[str, Any], name: str, shape: list[int], datatype: str, spec: TensorSpec, limits: Limits,
    binary: memoryview | None, offset: int,
) -> tuple[np.ndarray, int]:
    size = parameters_of(raw, f"input {name!r}").get("binary_data_size")
    if size is not None and binary is None:
        raise BadRequest(
            f"input {name!r} declares binary_data_size {quote(size)} but the request has no binary section; send \"data\" instead, "
            f"or the raw tensors after the JSON header with the header's length in {HEADER_LENGTH}"
        )
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
            raise BadRequest(
                f"input {name!r} declares binary_data_size {quote(size)} but only {len(binary) - offset} binary bytes remain"
            )
        if "data" in raw:
            raise BadRequest(f'input {name!r} has both "data" and "parameters.binary_data_size"; send one of them')
        return from_binary(binary[offset : offset + size], datatype, shape), size
    if "data" not in raw:
        raise BadRequest(f'input {name!r} has no "data" and no "parameters.binary_data_size"')
    return tensor_from_json(name, raw["data"], spec, limits, declared=shape), 0


def _classification(payload: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for output in payload.get("outputs") or []:
        parameters = output.get("parameters") if isinstance(output, dict) else None
        count = parameters.get("classification") if isinstance(parameters, dict) else None
        if count is None:
            continue
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise BadRequest(f"output {output['name']!r}: classification must be a positive integer (the top-k count), got {count!r}")
        counts[output["name"]] = count
    return counts


def _labels(card: ModelCard, output: str) -> list[str] | None:
    """Class labels from the card's optional ``labels`` (a list, or a mapping output name -> list)."""
    labels = card.extra.get("labels")
    if isinstance(labels, dict):
        labels = labels.get(output)
    return [str(label) for label in labels] if isinstance(labels, list) else None


def _requested_outputs(payload: dict[str, Any], binary_default: bool) -> tuple[list[str] | None, set[str]]:
    raw_outputs = payload.get("outputs")
    if raw_outputs is None:
        return None, set()
    if not isinstance(raw_outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in raw_outputs):
        raise BadRequest('"outputs" must be a list of {"name": ..., "parameters": {...}} objects')
    names = [o["name"] for o in raw_outputs]
    if len(set(names)) != len(names):
        raise BadRequest(f'"outputs" names an output twice ({quote(names)}); name each output once')
    binary = {
        o["name"] for o in raw_outputs
        if flag(parameters_of(o, f"output {quote(o['name'])}"), "binary_data", f"output {quote(o['name'])}", binary_default)
    }
    return names, binary
