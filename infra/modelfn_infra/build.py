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
import shutil
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelfn_runtime import environment as names

from .catalog import LAMBDA_RUNTIME, ids
from .catalog.render import TemplateDumper
from .images import FLAVORS, IMAGE_LIMIT, ImageBuild, build_image, check_image, flavor_of
from .installs import REQUIREMENTS, BuildError, build_code, pip_install, platform_args, strip

__all__ = ["BuildError", "BuildResult", "build", "check", "platform_args", "size_report"]

MB = 1024 * 1024
ZIPPED_LIMIT = 50 * MB
"""Lambda's limit on a .zip uploaded directly (function code or layer); larger ones must go through S3."""
UNZIPPED_LIMIT = 250 * MB
"""Lambda's limit on a function's code plus all of its layers, unzipped."""

FORBIDDEN = ("tensorflow", "tensorflow_cpu", "tf2onnx", "onnx", "keras", "tensorboard", "tf_keras")
"""Export-time packages that never belong in a deployed artifact (import names and distribution names)."""
MODEL_ONLY = ("onnxruntime", "onnxruntime_extensions", "numpy")
"""What only model functions need; the catch-all function must carry none of them."""
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
    images: dict[str, ImageBuild] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "template": str(self.template),
            "artifacts": {name: {**asdict(a), "path": str(a.path)} for name, a in self.artifacts.items()},
            "functions": [
                {**asdict(f), "unzipped_with_layers": f.unzipped(self.artifacts)} for f in self.functions
            ],
            "images": {name: image.as_json() for name, image in self.images.items()},
            "limits": {"zipped": ZIPPED_LIMIT, "unzipped_with_layers": UNZIPPED_LIMIT, "image": IMAGE_LIMIT},
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
    cuda_libraries: bool = True,
    log=print,
) -> BuildResult:
    """Build every function and layer of ``template_path`` into ``build_dir``, then check sizes and contents.

    An Image function becomes a local Docker image (``docker build`` of the repository's Dockerfile over a
    context holding the same layer and code as the Zip functions, plus its model when ``model_store`` has it);
    ``base_image`` replaces the Dockerfile's AWS Lambda base image (e.g. a locally built stand-in).
    ``source_root`` holds the Dockerfile, layers/ and functions/ (default: the template's directory); relative
    ``ContentUri``/``CodeUri`` paths are taken from it. An Image function whose ``Metadata.Dockerfile`` is
    ``Dockerfile.gpu`` (also as a plain ``AWS::Lambda::Function``) becomes the GPU image (see images.py);
    ``cuda_libraries=False`` builds it without the CUDA wheels (it then serves on CPU).
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
            pip_install(pip, sources / properties["ContentUri"] / REQUIREMENTS, target / "python", architecture, python_version)
            strip(target / "python")
            artifacts[logical_id] = Artifact(logical_id, target)
            properties["ContentUri"] = logical_id
            resource.pop("Metadata", None)
    images: dict[str, ImageBuild] = {}
    for logical_id, resource in list(resources.items()):  # a built image renames its function's version (_republish)
        if not _is_function(resource):
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
            flavor = flavor_of(resource.get("Metadata"))
            log(f"building image {logical_id} ({architecture}, accelerator {flavor.accelerator}) with docker")
            image = build_image(logical_id, build_dir / logical_id, flavor, sources=sources, architecture=architecture,
                                variables=variables, model_store=model_store, base_image=base_image, pip=pip,
                                python_version=python_version if flavor is FLAVORS["none"] else None,
                                cuda_libraries=cuda_libraries)
            log(f"built {image.tag}: {image.size / 1000**3:.2f} GB in {image.seconds:.0f} s")
            _point_at_image(resource, image, build_dir / logical_id, variables)
            if resource["Type"] == "AWS::Lambda::Function":
                _republish(resources, logical_id, image)
            function.code = logical_id
            images[logical_id] = image
            artifacts[logical_id] = Artifact(logical_id, build_dir / logical_id, kind="image")
            continue
        code_uri = properties.get("CodeUri", function_globals.get("CodeUri"))
        if not isinstance(code_uri, str):
            raise BuildError(f"{logical_id}: CodeUri must be a local directory to build, not {code_uri!r}")
        code_name = ids.logical_id(architecture, prefix="InferenceCode")
        if code_name not in artifacts:
            log(f"building function code {code_name} ({architecture}) from {code_uri}")
            artifacts[code_name] = Artifact(code_name, build_code(pip, sources / code_uri, build_dir / code_name,
                                                                  architecture, python_version))
        function.code = code_name
        properties["CodeUri"] = code_name
    if "CodeUri" in function_globals:
        function_globals.pop("CodeUri")
    for artifact in artifacts.values():
        _measure(artifact)
    built_template = build_dir / "template.yaml"
    built_template.write_text(
        "# Written by `modelfn build` from " + template_path.name + "; deploy with `modelfn deploy` or `sam deploy`.\n"
        + yaml.dump(template, Dumper=TemplateDumper, sort_keys=False, width=120)
    )
    result = BuildResult(build_dir, built_template, artifacts, functions, images)
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
    for image in result.images.values():
        problems += check_image(image)
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
            image = result.images.get(function.logical_id)
            size = image.size / MB if image else 0.0
            what = f"{image.tag}, accelerator {image.flavor.accelerator}" if image else "container image"
            cuda = " with CUDA libraries" if image and image.cuda_libraries else ""
            lines.append(f"{function.logical_id:<28}{size:>12.1f}  {what}{cuda} (limit 10 GB uncompressed, all layers)")
            continue
        parts = " + ".join(name for name in [function.code, *function.layers] if name)
        lines.append(f"{function.logical_id:<28}{function.unzipped(result.artifacts) / MB:>12.1f}  {parts}")
    lines.append(f"(limit: {UNZIPPED_LIMIT // MB} MB unzipped per function with its layers)")
    return "\n".join(lines)


BUILD_METADATA = ("Dockerfile", "DockerContext", "DockerTag", "DockerBuildArgs", "DockerBuildTarget")
"""The image build keys of a function's ``Metadata`` (``sam build``'s), consumed by the build."""


def _is_function(resource: dict[str, Any]) -> bool:
    """SAM functions, and plain Lambda functions that name an image to build (a GPU function may be rendered as
    ``AWS::Lambda::Function`` to carry ``AcceleratorConfig`` past SAM, which does not know it yet)."""
    if resource.get("Type") == "AWS::Serverless::Function":
        return True
    return (resource.get("Type") == "AWS::Lambda::Function" and resource.get("Properties", {}).get("PackageType") == "Image"
            and "Dockerfile" in (resource.get("Metadata") or {}))


def _point_at_image(resource: dict[str, Any], image: ImageBuild, context: Path, variables: dict[str, Any]) -> None:
    """Write the built tag where ``sam package`` looks for it and read a baked-in model from the image."""
    properties = resource["Properties"]
    if resource["Type"] == "AWS::Lambda::Function":
        properties["Code"] = {"ImageUri": image.tag}
    else:
        properties["ImageUri"] = image.tag
    baked = context / "models" / str(variables.get(names.MODEL_NAME)) / str(variables.get(names.MODEL_VERSION))
    if baked.is_dir():  # the model travels inside the image: read it from there, not from S3
        variables[names.MODEL_URI] = baked.relative_to(context).as_posix()
    metadata = {key: value for key, value in (resource.pop("Metadata", None) or {}).items() if key not in BUILD_METADATA}
    if metadata:  # e.g. a GPU function's scoped cfn-lint exception stays with it
        resource["Metadata"] = metadata


def _republish(resources: dict[str, Any], logical_id: str, image: ImageBuild) -> None:
    """A plain function's ``AWS::Lambda::Version`` takes a logical id of the built image's id, as SAM's
    ``AutoPublishAlias`` does with the code's: a new image publishes a new version and the alias moves to it
    (CloudFormation publishes a version only when that resource is new)."""
    for version_id, version in list(resources.items()):
        if version.get("Type") != "AWS::Lambda::Version" or version["Properties"].get("FunctionName") != {"Ref": logical_id}:
            continue
        renamed = f"{version_id}{image.image_id.removeprefix('sha256:')[:10]}"
        resources[renamed] = resources.pop(version_id)
        for resource in resources.values():
            if resource.get("Type") == "AWS::Lambda::Alias" and resource["Properties"].get("FunctionVersion") == {
                    "Fn::GetAtt": [version_id, "Version"]}:
                resource["Properties"]["FunctionVersion"] = {"Fn::GetAtt": [renamed, "Version"]}


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
