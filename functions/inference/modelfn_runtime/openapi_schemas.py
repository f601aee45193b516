"""One model's request and response schemas (JSON Schema 2020-12), both protocols, derived from its card.

Each request schema is exactly as strict as the server's decoding (``protocols/oip.py``, ``protocols/tfserving.py``,
``protocols/common.py``) wherever JSON Schema can say it, so a request that violates the schema is always
refused with a 400 and the fuzzer's ``negative_data_rejection`` holds:

* names, datatypes, ranks and fixed dimensions from the card; every input exactly once; each output at most once;
* each datatype's JSON leaves as the server reads them: integers within the datatype's range (an integral
  number such as ``3.0`` counts), floats below the magnitude that would round to infinity, the strings
  ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` for floats, booleans as 1/0 for numbers, ``0``/``1`` for BOOL,
  strings (and TF Serving's ``{"b64": ...}``) for BYTES;
* data nested at most as deep as the tensor's rank, one nesting depth per tensor;
* ``null`` where the server reads it as absent (``id``, ``parameters``, ``outputs``, ``classification``,
  ``binary_data_size``).

What JSON Schema cannot say the server still answers with a 400 that names the fix: element counts that must
match a shape, one batch size across inputs, rows of unequal length, the elements of all inputs together, the
batch size over the model's ``max_batch_size`` (a deployment setting the catch-all's document does not know),
BYTES that are not UTF-8 text, and shapes written as ``64.0``.

Example:
    >>> from modelfn_runtime.modelcard import TensorSpec
    >>> leaf("INT8")
    {'type': ['integer', 'boolean'], 'minimum': -128, 'maximum': 127}
    >>> nested([-1, 2], {"type": "number"})["minItems"]
    1
"""

from __future__ import annotations

from typing import Any

from .modelcard import MAX_DIMENSION, SERVING_SIGNATURE, ModelCard, TensorSpec

NON_FINITE_TOKENS = ["NaN", "Infinity", "-Infinity"]
"""The strings a float tensor may hold for non-finite values (``protocols.common.NON_FINITE``; a test pins them)."""
FLOAT_OVERFLOW = {"FP16": 65520.0, "FP32": 3.4028235677973366e38}
"""The smallest magnitude that rounds to infinity in each narrow float type: the server refuses it (FP64: none)."""
FLOATS = ("FP16", "FP32", "FP64")
B64 = {
    "type": "object",
    "required": ["b64"],
    "additionalProperties": False,
    "properties": {"b64": {"type": "string", "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"}},
    "description": "TF Serving's binary string: standard base64 with padding",
}
NULLABLE_OBJECT = {"type": ["object", "null"]}


def leaf(datatype: str, *, b64: bool = False) -> dict[str, Any]:
    """One element of a request tensor as the server reads it (``b64``: TF Serving's ``{"b64": ...}`` for BYTES)."""
    if datatype == "BYTES":
        return {"anyOf": [{"type": "string"}, B64]} if b64 else {"type": "string"}
    if datatype == "BOOL":
        return {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]}
    if datatype in FLOATS:
        number: dict[str, Any] = {"type": ["number", "boolean"]}
        if datatype in FLOAT_OVERFLOW:
            number.update(exclusiveMinimum=-FLOAT_OVERFLOW[datatype], exclusiveMaximum=FLOAT_OVERFLOW[datatype])
        return {"anyOf": [number, {"enum": NON_FINITE_TOKENS}]}
    bits = int(datatype.removeprefix("U").removeprefix("INT"))
    low, high = (0, 2**bits - 1) if datatype.startswith("U") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return {"type": ["integer", "boolean"], "minimum": low, "maximum": high}


def response_leaf(datatype: str, *, b64: bool = False) -> dict[str, Any]:
    """One element of a response tensor: non-finite floats travel as strings, BYTES as text (or b64 objects)."""
    if datatype == "BYTES":
        return {"anyOf": [{"type": "string"}, B64]} if b64 else {"type": "string"}
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype in FLOATS:
        return {"anyOf": [{"type": "number"}, {"enum": NON_FINITE_TOKENS}]}
    return {"type": "integer"}


def nested(shape: list[int], element: dict[str, Any], *, rank: int | None = None, request: bool = True) -> dict[str, Any]:
    """Arrays nested exactly as ``shape`` (``-1``: any length) around ``element``.

    In a request every level but the tensor's last (of ``rank`` levels) holds at least one item: an empty list
    hides the levels below it, so the server would read a lower rank and refuse it.
    """
    rank = len(shape) if rank is None else rank
    schema = dict(element)
    for level in reversed(range(len(shape))):
        dim = shape[level]
        bounds = {"minItems": dim, "maxItems": dim} if dim >= 0 else {}
        if dim < 0 and request and level + rank - len(shape) < rank - 1:
            bounds = {"minItems": 1}
        schema = {"type": "array", "items": schema, **bounds}
    return schema


def oip_data(spec: TensorSpec) -> dict[str, Any]:
    """OIP ``data``: one element, or lists nested 1 to rank levels deep (row-major; the shape is declared apart)."""
    element = leaf(spec.datatype)
    depths = [nested([-1] * depth, element, request=False) for depth in range(1, max(len(spec.shape), 1) + 1)]
    return {"anyOf": [element, *depths]}


def oip_shape(spec: TensorSpec) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": len(spec.shape),
        "maxItems": len(spec.shape),
        "prefixItems": [{"const": dim} if dim >= 0 else {"type": "integer", "minimum": 0, "maximum": MAX_DIMENSION}
                        for dim in spec.shape],
        "items": False,
    }


def infer_request(card: ModelCard) -> dict[str, Any]:
    """The OIP JSON request (``application/json``; a binary request's JSON header is this with ``binary_data_size``)."""
    inputs = [{
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"const": spec.name}, "shape": oip_shape(spec), "datatype": {"const": spec.datatype},
            "data": oip_data(spec),
            "parameters": {**NULLABLE_OBJECT, "properties": {"binary_data_size": {
                "type": "null", "description": "binary tensors need the binary extension (application/octet-stream)"}}},
        },
    } for spec in card.inputs]
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": ["string", "null"]},
            "parameters": {**NULLABLE_OBJECT, "properties": {"binary_data_output": {"type": "boolean"}}},
            "inputs": {"type": "array", "minItems": len(card.inputs), "maxItems": len(card.inputs),
                       "items": {"oneOf": inputs}, "allOf": [_once(spec.name, at_least=1) for spec in card.inputs]},
            "outputs": {"type": ["array", "null"], "items": {"oneOf": [_requested_output(spec) for spec in card.outputs]},
                        "allOf": [_once(spec.name, at_least=0) for spec in card.outputs]},
        },
    }


def _once(name: str, *, at_least: int) -> dict[str, Any]:
    """An array naming ``name`` at most once (and at least ``at_least`` times)."""
    return {"contains": {"type": "object", "properties": {"name": {"const": name}}, "required": ["name"]},
            "minContains": at_least, "maxContains": 1}


def _requested_output(spec: TensorSpec) -> dict[str, Any]:
    classification: dict[str, Any] = {
        "type": ["integer", "null"], "minimum": 1,
        "description": "Triton classification extension: the top-k classes as 'score:index[:label]' BYTES",
    }
    classes = _classes(spec)
    if classes is not None:
        classification["maximum"] = classes
    if spec.datatype == "BYTES" or not spec.shape:
        classification = {"type": "null", "description": "classification needs a numeric output with a class dimension"}
    return {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"const": spec.name},
            "parameters": {**NULLABLE_OBJECT, "properties": {"binary_data": {"type": "boolean"}, "classification": classification}},
        },
    }


def _classes(spec: TensorSpec) -> int | None:
    """How many classes an output has per example (what a classification count may not exceed), when the card fixes it."""
    per_example = spec.shape[1:] if len(spec.shape) > 1 else spec.shape
    if not per_example or any(dim < 0 for dim in per_example):
        return None
    count = 1
    for dim in per_example:
        count *= dim
    return count


def infer_response(card: ModelCard) -> dict[str, Any]:
    """The OIP response; with the binary extension its JSON header, where outputs carry ``binary_data_size``."""
    outputs = [{
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"const": spec.name},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
        },
        "anyOf": [
            {"properties": {"datatype": {"const": spec.datatype},
                            "data": {"type": "array", "items": response_leaf(spec.datatype)}}},
            {"properties": {"datatype": {"const": "BYTES"}, "data": {"type": "array", "items": {"type": "string"}}},
             "description": "classification: 'score:index[:label]' strings"},
        ],
        "oneOf": [{"required": ["data"]}, {"required": ["parameters"], "properties": {"parameters": {"required": ["binary_data_size"]}}}],
    } for spec in card.outputs]
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


def predict_request(card: ModelCard) -> dict[str, Any]:
    """TF Serving ``:predict``: ``instances`` (row form) or ``inputs`` (columnar form), exactly one of them."""
    return {
        "type": "object",
        "properties": {
            "signature_name": {"const": SERVING_SIGNATURE},
            "instances": _instances(card.inputs),
            "inputs": _columns(card.inputs),
        },
        "oneOf": [{"required": ["instances"], "not": {"required": ["inputs"]}},
                  {"required": ["inputs"], "not": {"required": ["instances"]}}],
    }


def _instances(specs: list[TensorSpec]) -> dict[str, Any]:
    """Rows: one example each (an input's shape less its first dimension), bare for a single input or keyed by name."""
    if any(not spec.shape for spec in specs):
        return {"not": {}, "description": "a scalar input has no rows: send the columnar form"}
    fixed = {spec.shape[0] for spec in specs if spec.shape[0] >= 0}
    if len(fixed) > 1:
        return {"not": {}, "description": "the inputs' first dimensions disagree: send the columnar form"}
    batch = fixed.pop() if fixed else -1
    bounds = {"minItems": batch, "maxItems": batch} if batch >= 0 else {"minItems": 1}
    examples = {spec.name: _example(spec) for spec in specs}
    keyed = {"type": "object", "required": list(examples), "properties": examples, "additionalProperties": False}
    if len(specs) > 1:
        return {"type": "array", "items": keyed, **bounds}
    return {"anyOf": [{"type": "array", "items": examples[specs[0].name], **bounds}, {"type": "array", "items": keyed, **bounds}]}


def _example(spec: TensorSpec) -> dict[str, Any]:
    return nested(spec.shape[1:], leaf(spec.datatype, b64=True), rank=len(spec.shape))


def _columns(specs: list[TensorSpec]) -> dict[str, Any]:
    tensors = {spec.name: nested(spec.shape, leaf(spec.datatype, b64=True)) for spec in specs}
    keyed = {"type": "object", "required": list(tensors), "properties": tensors, "additionalProperties": False}
    return {"anyOf": [tensors[specs[0].name], keyed]} if len(specs) == 1 else keyed


def predict_response(card: ModelCard) -> dict[str, Any]:
    """``predictions`` (rows, for the row form) or ``outputs`` (columnar), each output by name when there are several."""
    rows = {spec.name: nested(spec.shape[1:], response_leaf(spec.datatype, b64=True), request=False) for spec in card.outputs}
    columns = {spec.name: nested(spec.shape, response_leaf(spec.datatype, b64=True), request=False) for spec in card.outputs}
    if len(card.outputs) == 1:
        row, column = rows[card.outputs[0].name], columns[card.outputs[0].name]
    else:
        row, column = _keyed(rows), _keyed(columns)
    return {
        "type": "object",
        "properties": {"predictions": {"type": "array", "items": row}, "outputs": column},
        "oneOf": [{"required": ["predictions"]}, {"required": ["outputs"]}],
    }


def _keyed(tensors: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(tensors), "properties": tensors, "additionalProperties": False}


def infer_example(card: ModelCard) -> dict[str, Any]:
    """A valid OIP request: one example of zeros (dynamic dimensions 1)."""
    inputs = []
    for spec in card.inputs:
        shape = [dim if dim >= 0 else 1 for dim in spec.shape]
        count = 1
        for dim in shape:
            count *= dim
        inputs.append({"name": spec.name, "shape": shape, "datatype": spec.datatype, "data": [_zero(spec.datatype)] * count})
    return {"inputs": inputs}


def predict_example(card: ModelCard) -> dict[str, Any]:
    """A valid TF Serving request: one example of zeros, in the columnar form (it serves every card)."""
    def zeros(shape: list[int], datatype: str) -> Any:
        return [zeros(shape[1:], datatype) for _ in range(shape[0] if shape[0] >= 0 else 1)] if shape else _zero(datatype)

    columns = {spec.name: zeros(spec.shape, spec.datatype) for spec in card.inputs}
    return {"inputs": columns}


def _zero(datatype: str) -> Any:
    return {"BYTES": "", "BOOL": False}.get(datatype, 0.0 if datatype in FLOATS else 0)


def model_metadata(card: ModelCard) -> dict[str, Any]:
    def tensors(specs: list[TensorSpec]) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "object", "required": ["name", "datatype", "shape"]},
                "minItems": len(specs), "maxItems": len(specs)}

    return {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {"name": {"const": card.name}, "versions": {"type": "array", "items": {"type": "string"}},
                       "platform": {"type": "string"}, "inputs": tensors(card.inputs), "outputs": tensors(card.outputs),
                       "parameters": {"type": "object", "required": ["provider"], "properties": {
                           "provider": {"type": "string"}, "fallback": {"type": "string"}}}},
        "description": "inputs: " + ", ".join(f"{s.name} {s.datatype} {s.shape}" for s in card.inputs)
        + "; outputs: " + ", ".join(f"{s.name} {s.datatype} {s.shape}" for s in card.outputs),
    }
