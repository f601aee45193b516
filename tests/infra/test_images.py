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


def test_managed_cpu_entries_get_the_cpu_set_on_python_313():
    managed = image_flavor(None, "x86_64", managed=True)
    assert managed is FLAVORS["managed"] and managed.tag("TabularFunction") == "tabularfunction:python3.13"
    assert managed.base_image == "public.ecr.aws/lambda/python:3.13" and managed.dockerfile == "Dockerfile"
    assert image_flavor("gpu", managed=True) is FLAVORS["gpu"]
    assert flavor_of({"Dockerfile": "Dockerfile", "DockerTag": "python3.13"}) is FLAVORS["managed"]
    assert flavor_of({"Dockerfile": "Dockerfile", "DockerTag": "python3.12"}) is FLAVORS["none"]


def test_a_built_plain_function_points_at_its_image_and_publishes_a_version_per_image(tmp_path: Path):
    """What `modelfn build` does to a rendered GPU function once its image is built (the docker half: test_image.py)."""
    from modelfn_infra.build import _point_at_image, _republish

    resources = {
        "ResnetFunction": {"Type": "AWS::Lambda::Function", "Properties": {"PackageType": "Image", "Code": {"ImageUri": "x"}},
                           "Metadata": {"Dockerfile": "Dockerfile.gpu", "DockerContext": ".", "DockerTag": "python3.13-gpu",
                                        "cfn-lint": {"config": {"ignore_checks": ["E3002"]}}}},
        "ResnetFunctionVersion": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "ResnetFunction"}}},
        "ResnetFunctionAliasLive": {"Type": "AWS::Lambda::Alias", "Properties": {
            "Name": "live", "FunctionName": {"Ref": "ResnetFunction"},
            "FunctionVersion": {"Fn::GetAtt": ["ResnetFunctionVersion", "Version"]}}},
    }
    image = ImageBuild("ResnetFunction", "resnetfunction:python3.13-gpu", FLAVORS["gpu"], "x86_64", tmp_path,
                       image_id="sha256:0123456789abcdef")
    _point_at_image(resources["ResnetFunction"], image, tmp_path, {})
    _republish(resources, "ResnetFunction", image)
    assert resources["ResnetFunction"]["Properties"]["Code"] == {"ImageUri": "resnetfunction:python3.13-gpu"}
    assert resources["ResnetFunction"]["Metadata"] == {"cfn-lint": {"config": {"ignore_checks": ["E3002"]}}}
    assert "ResnetFunctionVersion" not in resources and "ResnetFunctionVersion0123456789" in resources
    assert resources["ResnetFunctionAliasLive"]["Properties"]["FunctionVersion"] == {
        "Fn::GetAtt": ["ResnetFunctionVersion0123456789", "Version"]}
