"""Server-level Open Inference Protocol answers that need no model, so no numpy: the catch-all function's ``GET /v2``.

The catch-all function is deployed without onnxruntime and numpy (see ``modelfn build``); everything it imports
must stay free of them.

Example:
    >>> server_metadata("0.1.0")["extensions"]
    ['binary_tensor_data', 'classification']
"""

from __future__ import annotations

from typing import Any

EXTENSIONS = ["binary_tensor_data", "classification"]
SIGNATURE = "serving_default"
"""The one TF Serving signature a modelfn model serves."""


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "modelfn", "version": version, "extensions": EXTENSIONS}
