"""Container images of model functions, one ``docker build`` each, sized against Lambda's 10 GB image limit.

Two flavours, chosen by the catalog entry's accelerator (``image_flavor``):

=========  ================  ==========  ================================================================
flavour    Dockerfile        Python      /opt/python
=========  ================  ==========  ================================================================
``none``   ``Dockerfile``    3.12        onnxruntime, onnxruntime-extensions + numpy
                                         (``layers/onnxruntime/``), as the Zip layer
``managed`` ``Dockerfile``   3.13      the CPU set on the Python 3.13 base image: ``capacity: managed`` CPU
                                         models (Lambda Managed Instances run Python >= 3.13)
``gpu``    ``Dockerfile.gpu``  3.13      onnxruntime-gpu, onnxruntime-extensions + numpy
                                         (``layers/onnxruntime-gpu/``) and, in
                                         their own image layer, the CUDA 13 + cuDNN 9 runtime libraries
                                         of PyPI's ``nvidia-*`` wheels (``cuda-requirements.txt``),
                                         preloaded when the runtime imports onnxruntime (``cuda.py``)
=========  ================  ==========  ================================================================

Lambda Managed Instances run GPU functions only as ``PackageType: Image`` on ``x86_64`` with Python >= 3.13, so
the GPU flavour has no arm64 build. The build context is prepared here, so nothing is downloaded while
the image builds: ``cuda/`` (the nvidia wheels), ``python/`` (the ONNX Runtime set), ``task/`` (``app.py`` and
``modelfn_runtime``, the same as every Zip function) and ``models/`` (the model, when the store has it).

``cuda_libraries=False`` leaves ``cuda/`` empty and changes nothing else: the image then serves on
onnxruntime-gpu's CPU provider, as the full image does on a machine without a GPU (a quicker local loop: the CUDA
wheels are 1.5 GB to download and 2.1 GB installed). The tests build the full image.

Example:
    >>> flavor = image_flavor("gpu", "x86_64")
    >>> flavor.dockerfile, flavor.python_version
    ('Dockerfile.gpu', '3.13')
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelfn_runtime import environment as names

from .installs import BuildError, build_code, distributions, pip_install, strip

IMAGE_LIMIT = 10 * 1000**3
"""Lambda's limit on a container image: 10 GB uncompressed, all layers included (taken as 10^10 bytes, the
stricter reading)."""

GPU_PLATFORMS = tuple(f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)) + ("manylinux2014_x86_64",)
"""Every manylinux tag Amazon Linux 2023 (glibc 2.34) runs: the nvidia wheels are tagged 2_27, 2_17, 2_12 or 2_5,
and pip does not widen an explicit ``--platform``."""


@dataclass(frozen=True)
class ImageFlavor:
    """What one kind of image is built from: a Dockerfile, an ONNX Runtime set, a Python, the allowed architectures."""

    accelerator: str
    dockerfile: str
    requirements: str
    python_version: str
    architectures: tuple[str, ...]
    cuda_requirements: str | None = None
    platforms: tuple[str, ...] | None = None
    base_image: str | None = None
    """The Dockerfile's ``BASE_IMAGE`` for this flavour when it is not the Dockerfile's default."""

    @property
    def docker_tag(self) -> str:
        """``python3.12``, ``python3.13``, ``python3.13-gpu``: the template's ``Metadata.DockerTag``."""
        return f"python{self.python_version}" + ("-gpu" if self.accelerator == "gpu" else "")

    def tag(self, logical_id: str) -> str:
        return f"{logical_id.lower()}:{self.docker_tag}"


FLAVORS = {
    "none": ImageFlavor("none", "Dockerfile", "layers/onnxruntime/", "3.12", ("x86_64", "arm64")),
    "managed": ImageFlavor("none", "Dockerfile", "layers/onnxruntime/", "3.13", ("x86_64", "arm64"),
                           base_image="public.ecr.aws/lambda/python:3.13"),
    "gpu": ImageFlavor("gpu", "Dockerfile.gpu", "layers/onnxruntime-gpu/", "3.13", ("x86_64",),
                       cuda_requirements="cuda-requirements.txt", platforms=GPU_PLATFORMS),
}
ACCELERATORS = ("none", "gpu")


def image_flavor(accelerator: str | None = None, architecture: str = "x86_64", *, managed: bool = False) -> ImageFlavor:
    """The flavour for a catalog entry's ``accelerator`` (default: none) on ``architecture`` (``managed``: on Lambda
    Managed Instances, Python 3.13); errors name the fix."""
    if (accelerator or "none") not in ACCELERATORS:
        raise BuildError(f"accelerator {accelerator!r} is not one of {list(ACCELERATORS)}")
    flavor = FLAVORS["managed" if managed and accelerator in (None, "none") else accelerator or "none"]
    if architecture not in flavor.architectures:
        raise BuildError(
            f"accelerator {flavor.accelerator!r} images run on {' or '.join(flavor.architectures)} only, not {architecture!r}: "
            "Lambda Managed Instances attach GPUs to x86_64 functions; set architecture: x86_64"
        )
    return flavor


def flavor_of(metadata: dict[str, Any] | None) -> ImageFlavor:
    """The flavour an Image function's build metadata names (``Metadata.Dockerfile``, as ``sam build`` reads it)."""
    dockerfile = (metadata or {}).get("Dockerfile", FLAVORS["none"].dockerfile)
    tag = str((metadata or {}).get("DockerTag") or "")
    candidates = [flavor for flavor in FLAVORS.values() if Path(dockerfile).name == flavor.dockerfile]
    for flavor in candidates:  # one Dockerfile, two Pythons: the DockerTag tells them apart
        if tag == flavor.docker_tag:
            return flavor
    if candidates:
        return candidates[0]
    raise BuildError(f"Metadata.Dockerfile {dockerfile!r} is not one of modelfn's {[f.dockerfile for f in FLAVORS.values()]}")


@dataclass
class ImageBuild:
    """One built image: its tag, what went in, and its size as Docker reports it (all layers, uncompressed)."""

    logical_id: str
    tag: str
    flavor: ImageFlavor
    architecture: str
    context: Path
    size: int = 0
    seconds: float = 0.0
    cuda_libraries: bool = False
    distributions: tuple[str, ...] = ()
    image_id: str = ""
    """Docker's id of the image (``sha256:...``)."""

    def as_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "accelerator": self.flavor.accelerator, "python": self.flavor.python_version,
                "architecture": self.architecture, "image_bytes": self.size, "limit_bytes": IMAGE_LIMIT,
                "build_seconds": round(self.seconds, 1), "cuda_libraries": self.cuda_libraries,
                "distributions": list(self.distributions)}


def build_image(
    logical_id: str,
    context: Path,
    flavor: ImageFlavor,
    *,
    sources: Path,
    architecture: str = "x86_64",
    variables: dict[str, Any] | None = None,
    model_store: str | Path | None = None,
    base_image: str | None = None,
    pip: list[str],
    python_version: str | None = None,
    cuda_libraries: bool = True,
) -> ImageBuild:
    """Prepare ``context`` and ``docker build`` the flavour's Dockerfile over it; returns the measured image."""
    docker = shutil.which("docker")
    if not docker:
        raise BuildError(f"{logical_id} has PackageType Image but no docker client is installed; "
                         "install Docker or set package_type: Zip in the catalog")
    python_version = python_version or flavor.python_version
    base_image = base_image or flavor.base_image
    started = time.monotonic()
    requirements = sources / flavor.requirements
    pip_install(pip, requirements / "requirements.txt", context / "python", architecture, python_version, flavor.platforms)
    (context / "cuda").mkdir(parents=True)
    if flavor.cuda_requirements and cuda_libraries:
        _install_cuda(pip, requirements, context, architecture, python_version, flavor)
    strip(context / "python")
    build_code(pip, sources / "functions" / "inference", context / "task", architecture, python_version)
    _copy_model(context / "models", variables or {}, model_store)
    build = ImageBuild(logical_id, flavor.tag(logical_id), flavor, architecture, context,
                       cuda_libraries=bool(flavor.cuda_requirements and cuda_libraries),
                       distributions=tuple(sorted(distributions(context / "python") | distributions(context / "cuda"))))
    command = [docker, "build", "--quiet", "-f", str(sources / flavor.dockerfile), "-t", build.tag,
               "--platform", "linux/amd64" if architecture == "x86_64" else "linux/arm64", str(context)]
    if base_image:
        command[2:2] = ["--build-arg", f"BASE_IMAGE={base_image}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise BuildError(f"docker build of {logical_id} failed:\n{tail}\n"
                         "is a Docker engine running (DOCKER_HOST) and the base image available locally?")
    build.size, build.image_id = _image_size(docker, build.tag)
    build.seconds = time.monotonic() - started
    return build


def check_image(build: ImageBuild) -> list[str]:
    """Every reason the image cannot deploy (empty when it can)."""
    problems = []
    if build.size > IMAGE_LIMIT:
        problems.append(
            f"{build.logical_id} image {build.tag} is {build.size / 1000**3:.2f} GB, over Lambda's 10 GB image limit; "
            "trim its dependencies (the CUDA set: only the libraries onnxruntime-gpu loads) or its baked-in model"
        )
    if {"onnxruntime", "onnxruntime-gpu"} <= set(build.distributions):
        problems.append(
            f"{build.logical_id} image carries both onnxruntime and onnxruntime-gpu, which overwrite each other's "
            f"files; keep only {'onnxruntime-gpu' if build.flavor.accelerator == 'gpu' else 'onnxruntime'} in "
            f"{build.flavor.requirements}requirements.txt"
        )
    return problems


def _install_cuda(pip: list[str], requirements: Path, context: Path, architecture: str, python_version: str,
                  flavor: ImageFlavor) -> None:
    """The nvidia wheels into cuda/ (their own image layer: 2 GB that change only when the CUDA set does).

    pip resolves them together with the ONNX Runtime set, so the versions are the ones onnxruntime-gpu's extras
    allow; everything that is not under ``nvidia/`` (onnxruntime, numpy again) is then dropped from cuda/."""
    staging = context / "cuda-staging"
    pip_install(pip, [requirements / "requirements.txt", requirements / str(flavor.cuda_requirements)], staging,
                architecture, python_version, flavor.platforms)
    for entry in staging.iterdir():
        if entry.name == "nvidia" or entry.name.startswith("nvidia_"):
            shutil.move(str(entry), context / "cuda" / entry.name)
    shutil.rmtree(staging)
    strip(context / "cuda")


def _copy_model(models: Path, variables: dict[str, Any], model_store: str | Path | None) -> None:
    models.mkdir(parents=True, exist_ok=True)
    name, version = variables.get(names.MODEL_NAME), str(variables.get(names.MODEL_VERSION, ""))
    if model_store and name and (Path(model_store) / name / version / "model.onnx").is_file():
        shutil.copytree(Path(model_store) / name / version, models / name / version)


def _image_size(docker: str, tag: str) -> tuple[int, str]:
    """The image's size (all layers, uncompressed) and its id."""
    result = subprocess.run([docker, "image", "inspect", "--format", "{{.Size}} {{.Id}}", tag], capture_output=True, text=True)
    size, _, image_id = result.stdout.strip().partition(" ")
    if result.returncode != 0 or not size.isdigit():
        raise BuildError(f"docker image inspect {tag} failed: {result.stderr.strip()[-400:]}")
    return int(size), image_id
