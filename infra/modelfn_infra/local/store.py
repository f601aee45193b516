"""Where local functions find their models: the project's model store unless a bucket is given.

``modelfn local`` with no ``ModelBucket`` override serves each model function from
``<project>/models/<name>/<version>/`` (the directory ``modelfn export`` writes) and points the catch-all
function at those cards. Paths in an ``--env-vars`` file that are relative resolve against the project
root (the template's directory), not against the function's code directory. ``missing_models`` names every
model whose directory lacks its files, with the command that creates it, before any request is sent.

Example:
    >>> env = local_store_env({"DigitsFunction": {"MODEL_NAME": "digits", "MODEL_VERSION": "1", "MODEL_URI": ""}},
    ...                       Path("/repo/models"), {})
    >>> env["DigitsFunction"]["MODEL_URI"]
    '/repo/models/digits/1'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelfn_runtime import environment as names
from modelfn_runtime.modelcard import ARTIFACT_FILE, CARD_FILE

PATH_VARIABLES = (names.MODEL_URI, names.CARD_URIS)


def model_functions(variables: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """``{logical id: (model name, version)}`` for the functions that serve a model."""
    return {
        function: (str(env[names.MODEL_NAME]), str(env.get(names.MODEL_VERSION, "1")))
        for function, env in variables.items()
        if env.get(names.MODEL_NAME)
    }


def local_store_env(
    variables: dict[str, dict[str, Any]], store: Path, overrides: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``overrides`` plus MODEL_URI (and the catch-all's card list) in ``store`` wherever not overridden."""
    env = {function: dict(values) for function, values in overrides.items()}
    served = model_functions(variables)
    directories = []
    for function, (name, version) in served.items():
        uri = env.get(function, {}).get(names.MODEL_URI) or str(store / name / version)
        env.setdefault(function, {})[names.MODEL_URI] = uri
        directories.append(uri)
    for function, values in variables.items():
        if names.CARD_URIS in values and names.CARD_URIS not in env.get(function, {}):
            env.setdefault(function, {})[names.CARD_URIS] = ",".join(directories)
    return env


def resolve_relative(env: dict[str, dict[str, Any]], project: Path) -> dict[str, dict[str, Any]]:
    """Relative local paths in MODEL_URI and the card list, taken from the project root."""

    def absolute(value: str) -> str:
        parts = [part.strip() for part in value.split(",")]
        return ",".join(part if not part or part.startswith("s3://") or Path(part).is_absolute() else str(project / part)
                        for part in parts)

    return {
        function: {key: absolute(value) if key in PATH_VARIABLES and isinstance(value, str) else value for key, value in values.items()}
        for function, values in env.items()
    }


def missing_models(
    variables: dict[str, dict[str, Any]], env: dict[str, dict[str, Any]], functions: list[str] | None = None
) -> list[str]:
    """One line per model function (of ``functions``, default all) whose local model directory is incomplete."""
    problems = []
    for function, (name, version) in model_functions(variables).items():
        if functions is not None and function not in functions:
            continue
        uri = env.get(function, {}).get(names.MODEL_URI, "")
        if not uri or uri.startswith("s3://"):
            continue
        directory = Path(uri)
        absent = [file for file in (ARTIFACT_FILE, CARD_FILE) if not (directory / file).is_file()]
        if absent:
            problems.append(
                f"model {name}/{version} ({function}) is not in the local store: {directory} has no {' or '.join(absent)}; "
                f"create it with `modelfn export SOURCE --name {name} --version {version}`"
                + (" (or `make demo`)" if name == "digits" else "")
                + ", or serve from S3 with --parameter-overrides ModelBucket=BUCKET"
            )
    return problems
