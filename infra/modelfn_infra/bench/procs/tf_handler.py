"""A TensorFlow SavedModel Lambda handler, the comparison the benchmark measures modelfn against.

It serves the way AWS's own samples serve TensorFlow in Lambda (a container image with TensorFlow, the model
loaded once at init with ``tf.saved_model.load``, its serving signature called per request on the JSON body
of the API Gateway event, the result returned as JSON). It reads the same OIP v2 JSON request the modelfn
handler reads and answers in the same shape, so both do the same work per request. It runs in its own
process: TensorFlow never enters the modelfn handler's process.

Example:
    >>> load("/path/to/savedmodel")                                            # doctest: +SKIP
    >>> lambda_handler(event, None)["statusCode"]                              # doctest: +SKIP
    200
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import tensorflow as tf

DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
          "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}
SIGNATURE: Any = None


def load(path: str) -> None:
    """Init: load the SavedModel once per execution environment."""
    global SIGNATURE
    SIGNATURE = tf.saved_model.load(path).signatures["serving_default"]


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raw = event["body"]
    body = json.loads(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
    names = list(SIGNATURE.structured_input_signature[1])
    tensors = {}
    for position, tensor in enumerate(body["inputs"]):
        name = tensor["name"] if tensor["name"] in names else names[position]
        array = np.asarray(tensor["data"], DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
        tensors[name] = tf.constant(array)
    results = SIGNATURE(**tensors)
    outputs = [{"name": name, "shape": list(value.shape), "datatype": "FP32",
                "data": value.numpy().astype(np.float32).reshape(-1).tolist()} for name, value in results.items()]
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps({"outputs": outputs})}
