"""``modelfn deploy`` and ``modelfn promote``: ship the built artifacts with ``sam deploy``, change a served version.

``deploy`` runs ``sam deploy`` on what ``modelfn build`` wrote (``.aws-sam/build/template.yaml``) with the
committed ``samconfig.toml`` (stack name, capabilities, parameter overrides). ``--dry-run`` stays offline: it
transforms the built template with SAM's own translator and prints the change set CloudFormation would get
(every resource to add, modify or remove, compared with ``--against`` a previously deployed template).

``promote NAME VERSION`` edits the model's ``version`` in infra/catalog.yaml and re-renders template.yaml. The
changed ``MODEL_VERSION``/``MODEL_URI`` publish a new function version on the next deploy, and CodeDeploy shifts
the ``live`` alias to it by the model's ``deployment`` preference (canary or linear), rolling back when the
error-rate or p99 alarm fires: a version change is a normal, safe deployment.

Example:
    >>> plan = change_set(".aws-sam/build/template.yaml", {"ModelBucket": "my-models"})   # doctest: +SKIP
    >>> [change.logical_id for change in plan if change.action == "Add"][:2]             # doctest: +SKIP
    ['DigitsFunction', 'DigitsFunctionAliaslive']
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .catalog import Catalog, CatalogError, rendered
from .catalog_edit import set_version

SAMCONFIG = "samconfig.toml"
BUILT_TEMPLATE = ".aws-sam/build/template.yaml"


class DeployError(RuntimeError):
    """A deploy or promote that cannot go ahead; the message names the fix."""


@dataclass(frozen=True)
class Change:
    action: str  # Add | Modify | Remove
    logical_id: str
    resource_type: str


def samconfig(path: str | Path = SAMCONFIG, env: str = "default") -> dict[str, Any]:
    """The ``deploy`` parameters of one samconfig.toml environment (global parameters included)."""
    path = Path(path)
    if not path.is_file():
        raise DeployError(f"{path} is missing; keep the committed samconfig.toml or pass --config-file")
    config = tomllib.loads(path.read_text())
    if env not in config:
        raise DeployError(f"{path} has no [{env}] environment; use one of {sorted(k for k in config if k != 'version')}")
    section = config[env]
    return {**section.get("global", {}).get("parameters", {}), **section.get("deploy", {}).get("parameters", {})}


def parameter_overrides(value: str | list[str] | None) -> dict[str, str]:
    """``"A=1 B=2"`` (samconfig's form) or ``["A=1", "B=2"]`` (the command line's) as a dict."""
    items = value.split() if isinstance(value, str) else list(value or [])
    overrides = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep:
            raise DeployError(f"parameter override {item!r} is not KEY=VALUE")
        overrides[key] = val.strip("\"'")
    return overrides


def transformed(template_path: str | Path, parameters: dict[str, str]) -> dict[str, Any]:
    """The CloudFormation template ``sam deploy`` would hand to CloudFormation, transformed offline.

    Local code and layer paths become the ``s3://`` locations ``sam package`` would upload them to.
    """
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:  # the template uses SAM policy templates only, so no IAM lookup is needed
        def load(self) -> dict[str, str]:
            return {}

    template = yaml.safe_load(Path(template_path).read_text())
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = _s3_placeholder(function_globals["CodeUri"])
    for resource in template["Resources"].values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = _s3_placeholder(properties[key])
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # feature-toggle chatter, not the user's concern
    return transform(template, dict(parameters), NoManagedPolicies())


def change_set(template_path: str | Path, parameters: dict[str, str], against: dict[str, Any] | None = None) -> list[Change]:
    """What CloudFormation would add, modify and remove: against ``against`` (a deployed template) or a new stack."""
    new = transformed(template_path, parameters)["Resources"]
    old = (against or {}).get("Resources", {})
    changes = [Change("Add", k, v["Type"]) for k, v in new.items() if k not in old]
    changes += [Change("Modify", k, v["Type"]) for k, v in new.items() if k in old and old[k] != v]
    changes += [Change("Remove", k, v["Type"]) for k, v in old.items() if k not in new]
    return sorted(changes, key=lambda c: ("Add Modify Remove".index(c.action), c.resource_type, c.logical_id))


def deploy_command(config_file: str, config_env: str, template: str, extra: list[str]) -> list[str]:
    sam = shutil.which("sam", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if not sam:
        raise DeployError("the SAM CLI is not installed; run `make install` (it installs aws-sam-cli into .venv)")
    return [sam, "deploy", "--template-file", template, "--config-file", config_file, "--config-env", config_env, *extra]


def deploy(args: Any) -> int:
    """``modelfn deploy [--dry-run]``: see the module docstring."""
    config = samconfig(args.config_file, args.config_env)
    template = args.template or BUILT_TEMPLATE
    if not Path(template).is_file():
        raise DeployError(f"{template} does not exist; run `modelfn build` first (it writes {BUILT_TEMPLATE})")
    overrides = {**parameter_overrides(config.get("parameter_overrides")), **parameter_overrides(args.parameter_overrides)}
    extra = ["--parameter-overrides", *[f"{k}={v}" for k, v in overrides.items()]] if args.parameter_overrides else []
    command = deploy_command(args.config_file, args.config_env, template, extra)
    if args.dry_run:
        against = _load_template(args.against) if args.against else None
        changes = change_set(template, overrides, against)
        stack = config.get("stack_name", "?")
        print(f"change set for stack {stack!r} ({'against ' + args.against if against else 'a new stack'}), "
              f"parameters {overrides}:")
        for change in changes:
            print(f"  {change.action:<7} {change.logical_id:<48} {change.resource_type}")
        counts = {action: sum(c.action == action for c in changes) for action in ("Add", "Modify", "Remove")}
        print(f"{counts['Add']} to add, {counts['Modify']} to modify, {counts['Remove']} to remove; nothing was sent to AWS")
        print("would run: " + " ".join(command))
        return 0
    return subprocess.call(command)


def promote(catalog_path: str | Path, template_path: str | Path, name: str, version: str, store: str | None = None) -> str:
    """Point model ``name`` at ``version`` in the catalog (comments kept) and re-render the template.

    ``store``: a local model store or ``s3://bucket/prefix`` that must hold ``name/version/modelcard.json``.
    Returns the version served before.
    """
    catalog_path, template_path = Path(catalog_path), Path(template_path)
    entries = {entry.name: entry for entry in Catalog.read(catalog_path).models}
    if name not in entries:
        raise DeployError(f"model {name!r} is not in {catalog_path}; add an entry first (served: {sorted(entries)})")
    previous = entries[name].version
    if store:
        _require_artifact(store, name, version)
    text = catalog_path.read_text()
    updated = set_version(text, name, version)
    catalog_path.write_text(updated)
    try:
        template_path.write_text(rendered(catalog_path))
    except CatalogError:
        catalog_path.write_text(text)
        raise
    return previous


def _require_artifact(store: str, name: str, version: str) -> None:
    if store.startswith("s3://"):
        import boto3
        import botocore.exceptions

        bucket, _, prefix = store[len("s3://") :].partition("/")
        key = f"{prefix.rstrip('/') + '/' if prefix else ''}{name}/{version}/modelcard.json"
        try:
            boto3.client("s3").head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError:
            raise DeployError(f"s3://{bucket}/{key} does not exist; push it first with `modelfn push {name}/{version}`") from None
    elif not (Path(store) / name / version / "modelcard.json").is_file():
        raise DeployError(f"{Path(store) / name / version} holds no exported model; run `modelfn export` first")


def _s3_placeholder(path: str) -> str:
    if path.startswith("s3://"):
        return path
    return f"s3://sam-package-bucket/{Path(path).name or 'code'}.zip"


def _load_template(path: str) -> dict[str, Any]:
    text = Path(path).read_text()
    return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
