"""TensorFlow Serving's REST model routes and its one signature name, numpy-free.

Their handlers are in ``protocols/tfserving.py`` (numpy), imported only once a request reached a model route of
the model this function serves.

Example:
    >>> PREDICT.path_for("digits", "1")
    '/v1/models/digits/versions/1:predict'
"""

from __future__ import annotations

from ..modelcard import SERVING_SIGNATURE
from .routing import GatewayRoute, Route

PROTOCOL = "tfserving"
MODEL = "/v1/models/{name}"

STATUS = Route("GET", MODEL, "status", PROTOCOL)
METADATA = Route("GET", f"{MODEL}/metadata", "metadata", PROTOCOL)
PREDICT = Route("POST", f"{MODEL}:predict", "predict", PROTOCOL)

ROUTES = (STATUS, METADATA, PREDICT)

GATEWAY = (
    GatewayRoute("Status", MODEL, "GET"),
    GatewayRoute("Predict", PREDICT.path, "POST"),
    GatewayRoute("Versions", f"{MODEL}/{{proxy+}}", "ANY"),
)
"""How API Gateway sends a model's TF Serving traffic to the model's function: status, ``:predict`` (a colon suffix,
not a path segment, so it needs its own route), and everything below the model (metadata, versions)."""

SIGNATURE = SERVING_SIGNATURE
"""The one TF Serving signature a modelfn model serves (defined with the card)."""
