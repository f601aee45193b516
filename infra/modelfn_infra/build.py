"""``modelfn build``: lean, size-checked Lambda artifacts for python3.12 on any machine.

``sam build`` needs a python3.12 interpreter first on PATH ("Binary validation failed for python") and
installs onnxruntime into every function, the catch-all included. This build instead installs manylinux
wheels for the function's architecture with pip's cross-platform mode
(``pip install --platform manylinux_2_28_x86_64 --python-version 3.12 --only-binary=:all: --target ...``),
so any interpreter works, and lays the result out the way ``sam build`` does (``.aws-sam/build/template.yaml``
plus one directory per artifact), so ``sam package`` and ``sam deploy`` pick it up unchanged:

* function code (``functions/inference/``: ``app.py``, ``modelfn_runtime/`` and its small pure requirements),
  one directory per architecture, shared by every Zip function of that architecture;
* one ONNX Runtime + numpy layer per architecture (``layers/onnxruntime/requirements.txt``), with what a wheel
  does not need at run time stripped (tests, C headers, onnxruntime's ``tools``/``transformers``/``quantization``
  packages, which need ``onnx`` and are never imported by ``import onnxruntime``).

The build then fails, naming the fix, when an artifact breaks a Lambda limit (50 MB zipped for a direct upload,
250 MB unzipped for a function and its layers), when TensorFlow, tf2onnx, onnx or keras appears in any artifact,
or when the catch-all function (no ``MODEL_NAME``) would carry onnxruntime or numpy.

Example:
    >>> result = build("template.yaml", ".aws-sam/build")          # doctest: +SKIP
    >>> print(size_report(result))                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from modelfn_runtime import environment as names

from .catalog import IMAGE_DOCKERFILE as DOCKERFILE
from .catalog import LAMBDA_RUNTIME, LAYER_CODE

MB = 1024 * 1024
ZIPPED_LIMIT = 50 * MB
"""Lambda's limit on a .zip uploaded directly (function code or layer); larger ones must go through S3."""
UNZIPPED_LIMIT = 250 * MB
"""Lambda's limit on a function's code plus all of its layers, unzipped."""

PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}
"""pip platform tags per Lambda architecture, newest first (Amazon Linux 2023 has glibc 2.34). pip does not widen
an explicit ``--platform`` to older manylinux tags, so wheels tagged only manylinux2014 need theirs listed."""

FORBIDDEN = ("tensorflow", "tensorflow_cpu", "tf2onnx", "onnx", "keras", "tensorboard", "tf_keras")
"""Export-time packages that never belong in a deployed artifact (import names and distribution names)."""
MODEL_ONLY = ("onnxruntime", "numpy")
"""What only model functions need; the catch-all function must carry neither."""
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "python-dateutil", "urllib3", "six")
"""Distributions the python3.12 Lambda runtime already ships; bundling them only adds size. (jmespath stays:
powertools imports it directly, and it is 100 kB.)"""
STRIP_DIRS = ("tests", "include", "onnxruntime/tools", "onnxruntime/transformers",
              "onnxruntime/quantization", "__pycache__")
"""Run-time-dead paths removed from installed wheels (matched as path suffixes of directories)."""
STRIP_SUFFIXES = (".h", ".hpp", ".pyc", ".pyi", ".pxd")
STRIP_GLOBS = ("onnxruntime/capi/libonnxruntime.so.*",)
"""ONNX Runtime's C API library (34 MB): the Python binding links the runtime statically (``readelf -d`` lists no
libonnxruntime) and no Python module loads it; it serves C/C++ consumers only."""

FUNCTION_SOURCES = ("app.py", "modelfn_runtime")
REQUIREMENTS = "requirements.txt"


class BuildError(RuntimeError):
    """The build cannot produce a deployable artifact; the message names the artifact and the fix."""


@dataclass
class Artifact:
    """One directory that becomes one Lambda .zip (function code or a layer)."""

    name: str
    path: Path
    kind: str = "zip"  # or "image": a container image's context, bound by the 10 GB image limit instead
    unzipped: int = 0
    zipped: int = 0
    packages: list[str] = field(default_factory=list)


@dataclass
class FunctionBuild:
    logical_id: str
    package_type: str
    architecture: str
    serves_model: bool
    code: str | None = None
    layers: list[str] = field(default_factory=list)

    def unzipped(self, artifacts: dict[str, Artifact]) -> int:
        return sum(artifacts[name].unzipped for name in [self.code, *self.layers] if name)


@dataclass
class BuildResult:
    build_dir: Path
    template: Path
    artifacts: dict[str, Artifact]
    functions: list[FunctionBuild]

    def as_json(self) -> dict[str, Any]:
        return {
            "template": str(self.template),
            "artifacts": {name: {**asdict(a), "path": str(a.path)} for name, a in self.artifacts.items()},
            "functions": [
                {**asdict(f), "unzipped_with_layers": f.unzipped(self.artifacts)} for f in self.functions
            ],
            "limits": {"zipped": ZIPPED_LIMIT, "unzipped_with_layers": UNZIPPED_LIMIT},
        }


def build(
    template_path: str | Path = "template.yaml",
    build_dir: str | Path = ".aws-sam/build",
    *,
    python_version: str = LAMBDA_RUNTIME.removeprefix("python"),
    pip: list[str] | None = None,
    model_store: str | Path | None = None,
    base_image: str | None = None,
    source_root: str | Path | None = None,
    log=print,
) -> BuildResult:
    """Build every function and layer of ``template_path`` into ``build_dir``, then check sizes and contents.

    An Image function becomes a local Docker image (``docker build`` of the repository's Dockerfile over a
    context holding the same layer and code as the Zip functions, plus its model when ``model_store`` has it);
    ``base_image`` replaces the Dockerfile's AWS Lambda base image (e.g. a locally built stand-in).
    ``source_root`` holds the Dockerfile, layers/ and functions/ (default: the template's directory); relative
    ``ContentUri``/``CodeUri`` paths are taken from it.
    """
    template_path = Path(template_path).resolve()
    root = template_path.parent
    sources = Path(source_root).resolve() if source_root else root
    build_dir = Path(build_dir).resolve()
    template = yaml.safe_load(template_path.read_text())
    resources = template["Resources"]
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    pip = pip or [sys.executable, "-m", "pip"]
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)

    artifacts: dict[str, Artifact] = {}
    functions: list[FunctionBuild] = []
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            properties = resource["Properties"]
            architecture = (resource.get("Metadata") or {}).get("BuildArchitecture") or "x86_64"
            target = build_dir / logical_id
            log(f"building layer {logical_id} ({architecture}) from {properties['ContentUri']}")
            _pip_install(pip, sources / properties["ContentUri"] / REQUIREMENTS, target / "python", architecture, python_version)
            _strip(target / "python")
            artifacts[logical_id] = Artifact(logical_id, target)
            properties["ContentUri"] = logical_id
            resource.pop("Metadata", None)
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        architecture = (properties.get("Architectures") or ["x86_64"])[0]
        variables = ((properties.get("Environment") or {}).get("Variables") or {})
        function = FunctionBuild(
            logical_id,
            properties.get("PackageType", "Zip"),
            architecture,
            serves_model=names.MODEL_NAME in variables,
            layers=[layer["Ref"] for layer in properties.get("Layers", []) if isinstance(layer, dict) and "Ref" in layer],
        )
        functions.append(function)
        if function.package_type == "Image":
            log(f"building image {logical_id} ({architecture}) with docker")
            tag = _build_image(pip, sources, build_dir / logical_id, function, variables, architecture, python_version,
                               model_store, base_image)
            properties["ImageUri"] = tag
            baked = build_dir / logical_id / "models" / str(variables.get(names.MODEL_NAME)) / str(variables.get(names.MODEL_VERSION))
            if baked.is_dir():  # the model travels inside the image: read it from there, not from S3
                variables[names.MODEL_URI] = baked.relative_to(build_dir / logical_id).as_posix()
            function.code = logical_id
            resource.pop("Metadata", None)
            artifacts[logical_id] = Artifact(logical_id, build_dir / logical_id, kind="image")
            continue
        code_uri = properties.get("CodeUri", function_globals.get("CodeUri"))
        if not isinstance(code_uri, str):
            raise BuildError(f"{logical_id}: CodeUri must be a local directory to build, not {code_uri!r}")
        code_name = "InferenceCode" + "".join(part.capitalize() for part in architecture.split("_"))
        if code_name not in artifacts:
            log(f"building function code {code_name} ({architecture}) from {code_uri}")
            artifacts[code_name] = _build_code(pip, sources / code_uri, build_dir / code_name, architecture, python_version)
        function.code = code_name
        properties["CodeUri"] = code_name
    if "CodeUri" in function_globals:
        function_globals.pop("CodeUri")
    for artifact in artifacts.values():
        _measure(artifact)
    built_template = build_dir / "template.yaml"
    built_template.write_text(
        "# Written by `modelfn build` from " + template_path.name + "; deploy with `modelfn deploy` or `sam deploy`.\n"
        + yaml.safe_dump(template, sort_keys=False, width=120)
    )
    result = BuildResult(build_dir, built_template, artifacts, functions)
    (build_dir / "size-report.json").write_text(json.dumps(result.as_json(), indent=2))
    check(result)
    return result


def check(result: BuildResult) -> None:
    """Raise BuildError listing every broken limit or forbidden package (all of them, not just the first)."""
    problems: list[str] = []
    for artifact in result.artifacts.values():
        if artifact.kind == "zip" and artifact.zipped > ZIPPED_LIMIT:
            problems.append(
                f"{artifact.name} is {artifact.zipped / MB:.1f} MB zipped, over Lambda's {ZIPPED_LIMIT // MB} MB "
                "direct-upload limit; remove dependencies or use package_type: Image"
            )
        forbidden = sorted(set(artifact.packages) & set(FORBIDDEN))
        if forbidden:
            problems.append(
                f"{artifact.name} contains {forbidden}: export-time packages never belong in a deployed artifact; "
                "remove them from its requirements.txt"
            )
    for function in result.functions:
        total = function.unzipped(result.artifacts)
        if function.package_type == "Zip" and total > UNZIPPED_LIMIT:
            problems.append(
                f"{function.logical_id} is {total / MB:.1f} MB unzipped with its layers, over Lambda's "
                f"{UNZIPPED_LIMIT // MB} MB limit; use package_type: Image (10 GB) or trim the layer"
            )
        if not function.serves_model and function.package_type == "Zip":
            carried = sorted(
                {p for name in [function.code, *function.layers] if name for p in result.artifacts[name].packages}
                & set(MODEL_ONLY)
            )
            if carried:
                problems.append(
                    f"{function.logical_id} serves no model but carries {carried}; keep them out of "
                    f"{REQUIREMENTS} and give only model functions the ONNX Runtime layer"
                )
    if problems:
        raise BuildError("the build is not deployable:\n  " + "\n  ".join(problems))


def size_report(result: BuildResult) -> str:
    """A table of every artifact and every function against Lambda's limits."""
    lines = [f"{'artifact':<28}{'unzipped MB':>12}{'zipped MB':>11}  packages"]
    for artifact in result.artifacts.values():
        shown = ", ".join(p for p in artifact.packages if not p.endswith("dist-info"))
        lines.append(f"{artifact.name:<28}{artifact.unzipped / MB:>12.1f}{artifact.zipped / MB:>11.1f}  {shown}")
    lines.append(f"(limit: {ZIPPED_LIMIT // MB} MB zipped per artifact)")
    lines.append("")
    lines.append(f"{'function':<28}{'unzipped MB':>12}  {'code + layers'}")
    for function in result.functions:
        if function.package_type == "Image":
            size = result.artifacts[function.code].unzipped / MB if function.code else 0.0
            lines.append(f"{function.logical_id:<28}{size:>12.1f}  container image (limit 10 GB uncompressed)")
            continue
        parts = " + ".join(name for name in [function.code, *function.layers] if name)
        lines.append(f"{function.logical_id:<28}{function.unzipped(result.artifacts) / MB:>12.1f}  {parts}")
    lines.append(f"(limit: {UNZIPPED_LIMIT // MB} MB unzipped per function with its layers)")
    return "\n".join(lines)


def _build_code(pip: list[str], source: Path, target: Path, architecture: str, python_version: str) -> Artifact:
    requirements = source / REQUIREMENTS
    if requirements.is_file():
        _pip_install(pip, requirements, target, architecture, python_version)
        _remove_distributions(target, RUNTIME_PROVIDED)
    target.mkdir(parents=True, exist_ok=True)
    for name in FUNCTION_SOURCES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, target / name)
        else:
            raise BuildError(f"{path} is missing; the function package needs {', '.join(FUNCTION_SOURCES)}")
    _strip(target)
    return Artifact(target.name, target)


def _build_image(pip: list[str], root: Path, context: Path, function: FunctionBuild, variables: dict[str, Any],
                 architecture: str, python_version: str, model_store: str | Path | None, base_image: str | None) -> str:
    """``docker build`` of the Dockerfile over ``context``: python/ (the layer's packages), task/ (the function code)
    and models/ (the function's model when ``model_store`` holds it). Returns the local image tag."""
    docker = shutil.which("docker")
    if not docker:
        raise BuildError(f"{function.logical_id} has PackageType Image but no docker client is installed; "
                         "install Docker or set package_type: Zip in the catalog")
    _pip_install(pip, root / LAYER_CODE / REQUIREMENTS, context / "python", architecture, python_version)
    _strip(context / "python")
    _build_code(pip, root / "functions" / "inference", context / "task", architecture, python_version)
    models = context / "models"
    models.mkdir()
    name, version = variables.get(names.MODEL_NAME), str(variables.get(names.MODEL_VERSION, ""))
    if model_store and name and (Path(model_store) / name / version / "model.onnx").is_file():
        shutil.copytree(Path(model_store) / name / version, models / name / version)
    tag = f"{function.logical_id.lower()}:{LAMBDA_RUNTIME}"
    command = [docker, "build", "--quiet", "-f", str(root / DOCKERFILE), "-t", tag,
               "--platform", "linux/amd64" if architecture == "x86_64" else "linux/arm64", str(context)]
    if base_image:
        command[2:2] = ["--build-arg", f"BASE_IMAGE={base_image}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise BuildError(f"docker build of {function.logical_id} failed:\n{tail}\n"
                         "is a Docker engine running (DOCKER_HOST) and the base image available locally?")
    return tag


def platform_args(architecture: str) -> list[str]:
    """``--platform`` options for pip's cross-platform install to one Lambda architecture."""
    return [arg for tag in PLATFORMS[architecture] for arg in ("--platform", tag)]


def _pip_install(pip: list[str], requirements: Path, target: Path, architecture: str, python_version: str) -> None:
    if architecture not in PLATFORMS:
        raise BuildError(f"architecture {architecture!r} is not one of {sorted(PLATFORMS)}")
    if not requirements.is_file():
        raise BuildError(f"{requirements} is missing; list the artifact's dependencies there")
    command = [
        *pip, "install", "--quiet", "--no-compile", "--target", str(target), "-r", str(requirements),
        *platform_args(architecture), "--implementation", "cp", "--python-version", python_version,
        "--only-binary=:all:",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1"})
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise BuildError(
            f"pip could not install {requirements} for {PLATFORMS[architecture][0]} / Python {python_version}:\n{tail}\n"
            "every dependency needs a manylinux wheel for that platform (no source builds when cross-installing)"
        )
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts for the build machine's interpreter


def _remove_distributions(target: Path, names: tuple[str, ...]) -> None:
    """Uninstall distributions from a --target directory by their RECORD (pip cannot uninstall from --target)."""
    wanted = {name.lower().replace("_", "-") for name in names}
    for info in sorted(target.glob("*.dist-info")):
        distribution = metadata.Distribution.at(info)
        if distribution.metadata["Name"].lower().replace("_", "-") not in wanted:
            continue
        for file in distribution.files or []:
            path = Path(distribution.locate_file(file))
            if path.is_file():
                path.unlink()
        shutil.rmtree(info, ignore_errors=True)  # the .dist-info directory itself
    for directory in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def _strip(root: Path) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts)):
        if directory.exists() and any(directory.as_posix().endswith("/" + suffix) for suffix in STRIP_DIRS):
            # numpy's testing helpers stay (numpy.testing is imported by some libraries); its test suites go
            shutil.rmtree(directory)
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in STRIP_SUFFIXES:
            path.unlink()
    for pattern in STRIP_GLOBS:
        for path in root.glob(pattern):
            path.unlink()


def _measure(artifact: Artifact) -> None:
    files = [p for p in artifact.path.rglob("*") if p.is_file()]
    artifact.unzipped = sum(p.stat().st_size for p in files)
    if artifact.kind == "image":
        artifact.packages = sorted(_top_level_names(artifact.path / "python") | _top_level_names(artifact.path / "task"))
        return
    python_root = artifact.path / "python" if (artifact.path / "python").is_dir() else artifact.path
    artifact.packages = sorted(_top_level_names(python_root))
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "artifact.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:  # what `sam package` uploads
            for path in files:
                zipped.write(path, path.relative_to(artifact.path))
        artifact.zipped = archive.stat().st_size


def _top_level_names(root: Path) -> set[str]:
    """Import names and distribution names found at the top of a site-packages-like directory."""
    names = set()
    for entry in root.iterdir():
        if entry.name.endswith((".dist-info", ".egg-info")):
            names.add(entry.name.split("-")[0].lower().replace("-", "_"))
        elif entry.is_dir() or entry.suffix in (".py", ".so"):
            names.add(entry.name.split(".")[0].lower())
    return names
