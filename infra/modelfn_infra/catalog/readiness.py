"""Readiness wiring: the catch-all function answers ``/v2/health/ready`` by asking each model function.

Example:
    >>> template = {"Resources": {"ServerFunction": {"Properties": {}}}}
    >>> wire_readiness(template, Catalog([]))       # no models: nothing to probe
"""

from __future__ import annotations

from typing import Any

from modelfn_runtime import environment as names

from . import ids
from .schema import Catalog


def wire_readiness(template: dict[str, Any], catalog: Catalog) -> None:
    """``ServerFunction`` probes each model function (``modelfn_runtime.readiness``): it gets their names in
    ``names.MODEL_FUNCTIONS`` (the ``live`` alias API Gateway calls, when published) and ``lambda:InvokeFunction``
    on exactly those functions."""
    if not catalog.models:
        return
    resources = template["Resources"]
    items, arns = [], []
    for entry in catalog.models:
        function = resources[entry.logical_id]["Properties"]
        alias = function.get("AutoPublishAlias")
        items.append({"Fn::Sub": f"{entry.name}=${{{entry.logical_id}}}" + (f":{alias}" if alias else "")})
        arns += [{"Fn::GetAtt": [entry.logical_id, "Arn"]}, {"Fn::Sub": f"${{{entry.logical_id}.Arn}}:*"}]
    server = resources[ids.SERVER_FUNCTION]["Properties"]
    server.setdefault("Environment", {}).setdefault("Variables", {})[names.MODEL_FUNCTIONS] = {"Fn::Join": [",", items]}
    server.setdefault("Policies", []).append({"Statement": [
        {"Sid": "ProbeModelFunctions", "Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": arns},
    ]})
