"""template.yaml as CloudFormation sees it after SAM's transform: the one place tests do that transform.

Local paths become the S3 URIs `sam package` would upload (function code, layers) and image functions get an
image URI, exactly what `sam deploy` hands to the transform.

Example:
    >>> resources = sam_transform()["Resources"]      # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from ..conftest import REPO

TEMPLATE = REPO / "template.yaml"


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """``template`` with every local artifact path replaced by the URI `sam package` would upload it to."""
    template = copy.deepcopy(template)
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://artifacts/inference.zip"
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = f"s3://artifacts/{name}.zip"
        elif resource["Type"] == "AWS::Serverless::Function":
            if properties.get("PackageType") == "Image":
                properties["ImageUri"] = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/modelfn:{name.lower()}"
            elif "CodeUri" in properties:
                properties["CodeUri"] = f"s3://artifacts/{name}.zip"
        elif resource["Type"] == "AWS::Lambda::Function" and properties.get("PackageType") == "Image":
            properties["Code"] = {"ImageUri": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/modelfn:{name.lower()}"}
            for key in ("Dockerfile", "DockerContext", "DockerTag", "DockerBuildArgs"):  # consumed by the build
                (resource.get("Metadata") or {}).pop(key, None)
    return template


def sam_transform(template: dict[str, Any] | Path | None = None, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM's transform makes of ``template`` (default: the repository's template.yaml)."""
    from samtranslator.translator.transform import transform

    class Plugins:  # the managed-policy loader is only needed for named IAM policies, which the template avoids
        def load(self):
            return {}

    if template is None or isinstance(template, Path):
        template = yaml.safe_load((template or TEMPLATE).read_text())
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(packaged(template), {"ModelBucket": "models-bucket", **(parameters or {})}, Plugins())
