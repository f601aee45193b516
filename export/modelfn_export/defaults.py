"""Default values shared by the API, the CLI and the docs (importing this module is free)."""

DEFAULT_OPSET = 17
MIN_OPSET = 13
MAX_OPSET = 18
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-4
DEFAULT_THRESHOLD = 0.98
DEFAULT_STORE = "models"
DEFAULT_SIGNATURE = "serving_default"
QUANTIZE_MODES = ("none", "int8", "int8-static", "dynamic", "static")
"""``dynamic`` is an alias of ``int8``, ``static`` of ``int8-static``."""
