"""Image flavours: which Dockerfile, ONNX Runtime set and Python an entry's accelerator gets, and the image checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfn_infra.images import FLAVORS, IMAGE_LIMIT, ImageBuild, check_image, flavor_of, image_flavor
from modelfn_infra.installs import BuildError

from ..conftest import REPO


def test_gpu_entries_get_the_python313_onnxruntime_gpu_image_on_x86_64_only():
    gpu = image_flavor("gpu", "x86_64")
    assert (gpu.dockerfile, gpu.python_version, gpu.tag("ResnetFunction")) == ("Dockerfile.gpu", "3.13", "resnetfunction:python3.13-gpu")
    assert image_flavor(None, "arm64").tag("DigitsFunction") == "digitsfunction:python3.12"
    with pytest.raises(BuildError, match="attach GPUs to x86_64 functions; set architecture: x86_64"):
        image_flavor("gpu", "arm64")
    with pytest.raises(BuildError, match=r"accelerator 'tpu' is not one of \['none', 'gpu'\]"):
        image_flavor("tpu")
    assert flavor_of({"Dockerfile": "Dockerfile.gpu", "DockerContext": "."}) is FLAVORS["gpu"]
    assert flavor_of(None) is FLAVORS["none"]
    with pytest.raises(BuildError, match="Metadata.Dockerfile 'Other.dockerfile'"):
        flavor_of({"Dockerfile": "Other.dockerfile"})


def test_the_gpu_set_never_lists_the_cpu_onnxruntime():
    for flavor in FLAVORS.values():
        assert (REPO / flavor.dockerfile).is_file()
    lines = (REPO / "layers" / "onnxruntime-gpu" / "requirements.txt").read_text().splitlines()
    requirements = [line.split("=")[0].split("[")[0].strip() for line in lines if line and not line.startswith("#")]
    assert "onnxruntime-gpu" in requirements and "onnxruntime" not in requirements


def test_image_checks_name_the_fix(tmp_path: Path):
    def image(size: int, distributions: tuple[str, ...]) -> ImageBuild:
        return ImageBuild("ResnetFunction", "resnetfunction:python3.13-gpu", FLAVORS["gpu"], "x86_64", tmp_path,
                          size=size, distributions=distributions)

    assert check_image(image(3 * 10**9, ("onnxruntime-gpu", "numpy"))) == []
    (too_big,) = check_image(image(IMAGE_LIMIT + 1, ("onnxruntime-gpu",)))
    assert "over Lambda's 10 GB image limit" in too_big
    (both,) = check_image(image(10**9, ("onnxruntime", "onnxruntime-gpu")))
    assert "both onnxruntime and onnxruntime-gpu" in both and "keep only onnxruntime-gpu" in both
