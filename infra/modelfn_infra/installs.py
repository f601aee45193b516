"""pip cross-installs for Lambda artifacts: manylinux wheels for a target architecture and Python, on any machine.

``pip install --platform manylinux_2_28_x86_64 --python-version 3.12 --only-binary=:all: --target DIR -r ...``
installs what the target interpreter would, whatever interpreter runs the build; ``strip`` then removes what no
``import`` ever loads, and ``build_code`` lays out a function's code directory (``app.py``, ``modelfn_runtime/`` and
its small pure requirements). ``modelfn build`` (build.py) and the container images (images.py) share these.

Example:
    >>> platform_args("arm64")[:2]
    ['--platform', 'manylinux_2_28_aarch64']
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path


class BuildError(RuntimeError):
    """The build cannot produce a deployable artifact; the message names the artifact and the fix."""


PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}
"""pip platform tags per Lambda architecture, newest first (Amazon Linux 2023 has glibc 2.34). pip does not widen
an explicit ``--platform`` to older manylinux tags, so wheels tagged only manylinux2014 need theirs listed."""

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


def platform_args(architecture: str, platforms: Sequence[str] | None = None) -> list[str]:
    """``--platform`` options for pip's cross-platform install to one Lambda architecture."""
    return [arg for tag in (platforms or PLATFORMS[architecture]) for arg in ("--platform", tag)]


def pip_install(pip: list[str], requirements: Path | Sequence[Path], target: Path, architecture: str, python_version: str,
                platforms: Sequence[str] | None = None) -> None:
    """Install one or more requirements files (resolved together) into ``target`` for the Lambda platform."""
    if architecture not in PLATFORMS:
        raise BuildError(f"architecture {architecture!r} is not one of {sorted(PLATFORMS)}")
    files = [requirements] if isinstance(requirements, Path) else list(requirements)
    for file in files:
        if not file.is_file():
            raise BuildError(f"{file} is missing; list the artifact's dependencies there")
    command = [
        *pip, "install", "--quiet", "--no-compile", "--target", str(target), *(arg for f in files for arg in ("-r", str(f))),
        *platform_args(architecture, platforms), "--implementation", "cp", "--python-version", python_version,
        "--only-binary=:all:",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1"})
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        shown = (platforms or PLATFORMS[architecture])[0]
        raise BuildError(
            f"pip could not install {', '.join(map(str, files))} for {shown} / Python {python_version}:\n{tail}\n"
            "every dependency needs a manylinux wheel for that platform (no source builds when cross-installing)"
        )
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts for the build machine's interpreter


def build_code(pip: list[str], source: Path, target: Path, architecture: str, python_version: str) -> Path:
    """The function's code directory: ``app.py``, ``modelfn_runtime/`` and its requirements (minus the runtime's own)."""
    requirements = source / REQUIREMENTS
    if requirements.is_file():
        pip_install(pip, requirements, target, architecture, python_version)
        remove_distributions(target, RUNTIME_PROVIDED)
    target.mkdir(parents=True, exist_ok=True)
    for name in FUNCTION_SOURCES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, target / name)
        else:
            raise BuildError(f"{path} is missing; the function package needs {', '.join(FUNCTION_SOURCES)}")
    strip(target)
    return target


def remove_distributions(target: Path, names: tuple[str, ...]) -> None:
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


def distributions(target: Path) -> set[str]:
    """Normalized names of the distributions installed in a --target directory (``onnxruntime-gpu``, ``numpy``)."""
    return {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions(path=[str(target)])}


def strip(root: Path) -> None:
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
