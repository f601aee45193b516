"""Logical ids of the template's resources: the one rule that turns a name into an id, and the fixed ids.

Example:
    >>> logical_id("mobile-net", "Function"), logical_id("x86_64", "Layer", prefix="OnnxRuntime")
    ('MobileNetFunction', 'OnnxRuntimeX8664Layer')
"""

from __future__ import annotations

import re

API = "ModelApi"
"""The REST API every route belongs to."""
SERVER_FUNCTION = "ServerFunction"
"""The catch-all function: health, server metadata, the playground, /openapi.json and clear 404s."""
USAGE_TABLE = "UsageTable"
"""The DynamoDB table of per-tenant usage."""


def pascal(name: str) -> str:
    """``mobile-net`` -> ``MobileNet``, ``x86_64`` -> ``X8664``: each dash- or underscore-separated part capitalised."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", name))


def logical_id(name: str, suffix: str = "", prefix: str = "") -> str:
    """The logical id of a resource named after ``name`` (a model, a plan, an architecture)."""
    return f"{prefix}{pascal(name)}{suffix}"
