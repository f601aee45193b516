"""The Open Inference Protocol v2's model routes and the numpy-free names of its wire format.

Their handlers are in ``protocols/oip.py`` (numpy), imported only once a request reached a model route of the
model this function serves; the catch-all function routes OIP requests, and answers 404, with this module alone.

Example:
    >>> INFER.path_for("digits")
    '/v2/models/digits/infer'
"""

from __future__ import annotations

from .routing import GatewayRoute, Route

PROTOCOL = "oip"
MODEL = "/v2/models/{name}"

MODEL_METADATA = Route("GET", MODEL, "model_metadata", PROTOCOL)
MODEL_READY = Route("GET", f"{MODEL}/ready", "model_ready", PROTOCOL)
INFER = Route("POST", f"{MODEL}/infer", "infer", PROTOCOL)

ROUTES = (MODEL_METADATA, MODEL_READY, INFER)

GATEWAY = (
    GatewayRoute("Metadata", MODEL, "GET"),
    GatewayRoute("Protocol", f"{MODEL}/{{proxy+}}", "ANY"),
)
"""How API Gateway sends a model's OIP traffic to the model's function: the metadata route, and everything below it
(versions, ready, infer; any method, so a wrong one is answered 405 by the function)."""

HEADER_LENGTH = "Inference-Header-Content-Length"
"""The binary tensor extension's header: the byte length of the JSON header that precedes the raw tensors."""
EXTENSIONS = ["binary_tensor_data", "classification"]
"""The protocol extensions this server implements (``GET /v2`` lists them)."""
