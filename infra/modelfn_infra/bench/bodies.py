"""The requests every variant answers: OIP v2 JSON, OIP binary tensor extension and TF Serving bodies, and
the API Gateway REST proxy events that carry them (built from the repository's own ``events/*.json``).

The API's ``BinaryMediaTypes`` is ``*/*``, so API Gateway hands every body to the function base64-encoded
(``isBase64Encoded: true``), JSON included, exactly as the sample events show.

Example:
    >>> body, headers = oip_binary({"pixels": np.zeros((1, 64), np.float32)}, ["probs"])
    >>> headers["Inference-Header-Content-Length"] == str(body.index(b"}]}") + 3)
    True
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
DATATYPES = {"float32": "FP32", "float64": "FP64", "float16": "FP16", "int64": "INT64", "int32": "INT32",
             "int16": "INT16", "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
"""Lambda's synchronous invoke limit on the event, 6 MB (``modelfn_runtime.errors.LAMBDA_SYNC_PAYLOAD_LIMIT``)."""


def datatype(array: np.ndarray) -> str:
    try:
        return DATATYPES[array.dtype.name]
    except KeyError:
        raise ValueError(f"no OIP datatype for numpy {array.dtype}; the benchmark sends numeric tensors only") from None


def oip_json(inputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """An OIP v2 JSON infer body, as a numpy client writes it (``tolist()`` + ``json.dumps``)."""
    payload = {"inputs": [{"name": name, "shape": list(array.shape), "datatype": datatype(array),
                           "data": array.reshape(-1).tolist()} for name, array in inputs.items()]}
    return json.dumps(payload).encode(), {"Content-Type": "application/json"}


def oip_binary(inputs: dict[str, np.ndarray], outputs: list[str]) -> tuple[bytes, dict[str, str]]:
    """An OIP binary tensor extension body: a JSON header, then each tensor's raw bytes; outputs come back binary."""
    header = {
        "inputs": [{"name": name, "shape": list(array.shape), "datatype": datatype(array),
                    "parameters": {"binary_data_size": array.nbytes}} for name, array in inputs.items()],
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
    }
    head = json.dumps(header).encode()
    body = head + b"".join(np.ascontiguousarray(array).tobytes() for array in inputs.values())
    return body, {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream",
                  "Inference-Header-Content-Length": str(len(head))}


def tfserving_json(inputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """A TF Serving REST predict body in the row format (``instances``)."""
    if len(inputs) == 1:
        instances: Any = next(iter(inputs.values())).tolist()
    else:
        rows = len(next(iter(inputs.values())))
        instances = [{name: array[i].tolist() for name, array in inputs.items()} for i in range(rows)]
    return json.dumps({"instances": instances}).encode(), {"Content-Type": "application/json"}


def infer_path(model: str, protocol: str = "oip") -> str:
    return f"/v1/models/{model}:predict" if protocol == "tfserving" else f"/v2/models/{model}/infer"


def rest_event(model: str, body: bytes, headers: dict[str, str], protocol: str = "oip") -> dict[str, Any]:
    """The API Gateway REST proxy event for ``body``, from the repository's sample event of that protocol."""
    sample = "rest-tfserving-predict.json" if protocol == "tfserving" else "rest-infer-json.json"
    event = copy.deepcopy(json.loads((EVENTS / sample).read_text()))
    path = infer_path(model, protocol)
    resource = path if protocol == "tfserving" else f"/v2/models/{model}/{{proxy+}}"
    event.update(path=path, resource=resource, body=base64.b64encode(body).decode(), isBase64Encoded=True)
    event["requestContext"].update(resourcePath=resource, path=f"/{event['requestContext'].get('stage', 'Prod')}{path}")
    for key in ("Content-Type", "Accept", "Inference-Header-Content-Length"):
        event["headers"].pop(key, None)
        event["multiValueHeaders"].pop(key, None)
    event["headers"].update(headers)
    event["multiValueHeaders"].update({key: [value] for key, value in headers.items()})
    event["headers"].setdefault("Accept", "*/*")
    event["multiValueHeaders"].setdefault("Accept", ["*/*"])
    return event


def event_bytes(event: dict[str, Any]) -> int:
    """The event's size as Lambda counts it against the 6 MB limit."""
    return len(json.dumps(event).encode())


def batch_of(samples: np.ndarray, rows: int) -> np.ndarray:
    """``rows`` benchmark inputs (the samples repeated when there are fewer)."""
    if rows <= len(samples):
        return np.ascontiguousarray(samples[:rows])
    return np.ascontiguousarray(np.resize(samples, (rows, *samples.shape[1:])))


def generated_inputs(card: dict[str, Any], rows: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs matching a model card's inputs (batch ``rows``; other dynamic dimensions 1), for timing a
    model without its data: uniform [0, 1) floats, integers 0..9, random booleans.

    Raises:
        ValueError: a string (BYTES) input, which generated values would not exercise.
    """
    rng = np.random.default_rng(seed)
    dtypes = {value: key for key, value in DATATYPES.items()}
    tensors = {}
    for spec in card["inputs"]:
        shape = tuple(rows if i == 0 else (1 if d is None or d < 0 else int(d)) for i, d in enumerate(spec["shape"]))
        if spec["datatype"] not in dtypes:
            raise ValueError(f"input {spec['name']!r} is {spec['datatype']}: tuning generates numeric inputs only")
        dtype = np.dtype(dtypes[spec["datatype"]])
        if dtype.kind == "f":
            tensors[spec["name"]] = rng.random(shape).astype(dtype)
        elif dtype.kind == "b":
            tensors[spec["name"]] = rng.random(shape) < 0.5
        else:
            tensors[spec["name"]] = rng.integers(0, 10, size=shape).astype(dtype)
    return tensors
