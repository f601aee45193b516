"""The container images (CPU, and GPU served on CPU): `modelfn build` of a `package_type: Image` model, then the real
`sam local invoke`.

Runs where a Docker engine can be started (apt's docker.io, `dockerd --iptables=false` on a private socket);
the AWS base image is replaced by a locally built stand-in (tests/infra/lambda_base.py) since no registry is
reachable. Anywhere else the test is skipped with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from modelfn_infra.build import build
from modelfn_infra.catalog import Catalog, ModelEntry, dump_template, render_template
from modelfn_infra.catalog.render import TemplateDumper
from modelfn_infra.images import IMAGE_LIMIT

from ..conftest import REPO
from .lambda_base import DockerEngine, Unavailable, build_standin_base

VENV_BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    directory = tmp_path_factory.mktemp("docker")
    try:
        engine = DockerEngine.start(directory)
    except Unavailable as reason:
        print(f"SKIP container image test: {reason}")
        pytest.skip(str(reason))
    with engine:
        yield engine
    shutil.rmtree(directory, ignore_errors=True)  # the engine's data root: images and layers, hundreds of MB


@pytest.mark.slow
def test_image_function_answers_sam_local_invoke(engine, digits_store, tmp_path_factory, tmp_path, monkeypatch):
    workdir = tmp_path_factory.mktemp("standin")
    try:
        base = build_standin_base(engine, workdir)
    except Unavailable as reason:
        print(f"SKIP container image test: {reason}")
        pytest.skip(str(reason))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    catalog = Catalog([ModelEntry("digits", "1", package_type="Image", snapstart=False)])
    template = tmp_path / "template.yaml"
    template.write_text(dump_template(render_template(catalog, code_uri=str(REPO / "functions" / "inference"))))
    monkeypatch.setenv("DOCKER_HOST", engine.host)  # restored afterwards, whatever the session had
    result = build(template, tmp_path / "build", model_store=digits_store, base_image=base, source_root=REPO,
                   log=lambda message: None)
    monkeypatch.delenv("DOCKER_HOST")
    built = yaml.safe_load(result.template.read_text())["Resources"]["DigitsFunction"]["Properties"]
    assert built["PackageType"] == "Image" and built["ImageUri"] == "digitsfunction:python3.12"
    assert built["Environment"]["Variables"]["MODEL_URI"] == "models/digits/1", "the model is baked into the image"
    assert "Layers" not in built and "SnapStart" not in built

    response, _ = _invoke(engine, tmp_path, result.template)
    assert response["statusCode"] == 200, response
    body = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"]
    probs = np.asarray(json.loads(body)["outputs"][0]["data"], np.float32)
    np.testing.assert_allclose(probs, _cpu_reference(digits_store), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_gpu_image_serves_on_cpu_without_a_gpu_and_says_so(engine, digits_store, tmp_path_factory, tmp_path, monkeypatch):
    """The production GPU image (Python 3.13, onnxruntime-gpu, the CUDA 13 + cuDNN 9 wheels) through `sam local invoke`:
    here, with no GPU, its CUDA libraries still load, and it answers on onnxruntime-gpu's CPU provider and logs why."""
    workdir = tmp_path_factory.mktemp("standin313")
    try:
        base = build_standin_base(engine, workdir, python="3.13")
    except Unavailable as reason:
        print(f"SKIP GPU image test: {reason}")
        pytest.skip(str(reason))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # what `accelerator: gpu` renders: a plain AWS::Lambda::Function (AcceleratorConfig) built from Dockerfile.gpu
    catalog = Catalog([ModelEntry("digits", "1", package_type="Image", snapstart=False, deployment="AllAtOnce",
                                  accelerator="gpu", accelerator_memory_gib=3, model_size_mb=0.1)])
    template = render_template(catalog, code_uri=str(REPO / "functions" / "inference"))
    assert template["Resources"]["DigitsFunction"]["Metadata"]["Dockerfile"] == "Dockerfile.gpu"
    (tmp_path / "template.yaml").write_text(dump_template(template))
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    result = build(tmp_path / "template.yaml", tmp_path / "build", model_store=digits_store, base_image=base,
                   source_root=REPO, log=lambda message: None)
    monkeypatch.delenv("DOCKER_HOST")
    for bulky in ("cuda", "python"):  # 2.4 GB of build context, inside the image now
        shutil.rmtree(tmp_path / "build" / "DigitsFunction" / bulky, ignore_errors=True)
    image = result.images["DigitsFunction"]
    assert image.tag == "digitsfunction:python3.13-gpu" and image.cuda_libraries
    assert "onnxruntime-gpu" in image.distributions and "onnxruntime" not in image.distributions
    assert {"nvidia-cudnn-cu13", "nvidia-cublas", "nvidia-cuda-runtime"} <= set(image.distributions)
    assert 1.5e9 < image.size < IMAGE_LIMIT, f"{image.size / 1e9:.2f} GB"
    report = json.loads((result.build_dir / "size-report.json").read_text())
    assert report["images"]["DigitsFunction"]["image_bytes"] == image.size and report["limits"]["image"] == IMAGE_LIMIT
    resources = yaml.safe_load(result.template.read_text())["Resources"]
    built = resources["DigitsFunction"]
    assert built["Properties"]["Code"] == {"ImageUri": image.tag} and built["Properties"]["AcceleratorConfig"]
    assert built["Metadata"] == {"cfn-lint": {"config": {"ignore_checks": ["E3002"]}}}  # build keys consumed, exception kept
    version = f"DigitsFunctionVersion{image.image_id.removeprefix('sha256:')[:10]}"  # a new image publishes a new version
    assert resources[version]["Type"] == "AWS::Lambda::Version" and "DigitsFunctionVersion" not in resources
    assert resources["DigitsFunctionAliasLive"]["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version, "Version"]}

    # `sam local invoke` runs a function with CapacityProviderConfig in its managed-instances mode
    # (AWS_LAMBDA_MAX_CONCURRENCY), where the runtime client in the stand-in base gets an empty handler
    # (Runtime.MalformedHandlerName; not checkable against AWS's own base image here): the image runs as a plain one
    built["Properties"].pop("CapacityProviderConfig")
    local = tmp_path / "local.yaml"
    local.write_text(yaml.dump({**yaml.safe_load(result.template.read_text()), "Resources": resources},
                               Dumper=TemplateDumper, sort_keys=False))  # OrderedDicts once SAM CLI parsed a template
    response, logs = _invoke(engine, tmp_path, local)
    warning = _log_line(logs, "this GPU image serves on CPUExecutionProvider")
    assert warning["level"] == "WARNING" and warning["message"].startswith("no NVIDIA driver here")
    assert {"libcublasLt.so.13", "libcublas.so.13", "libcudart.so.13", "libcudnn.so.9"} <= set(warning["loaded"]), warning
    assert warning["cuda_libraries"] == "/opt/python/nvidia" and warning["onnxruntime"].startswith("1.31")
    assert _log_line(logs, "model loaded")["provider"] == "CPUExecutionProvider"
    assert response["statusCode"] == 200, response
    probs = np.asarray(json.loads(response["body"])["outputs"][0]["data"], np.float32)
    np.testing.assert_allclose(probs, _cpu_reference(digits_store), rtol=1e-4, atol=1e-5)


def _invoke(engine, tmp_path, template) -> tuple[dict, str]:
    """The real `sam local invoke` of DigitsFunction with a REST event: its answer and the container's log."""
    # a local run meters into no deployed table (what `modelfn local` does too): the container has no AWS to reach
    no_metering = tmp_path / "env.json"
    no_metering.write_text(json.dumps({"DigitsFunction": {"MODELFN_USAGE_TABLE": ""}}))
    invoke = subprocess.run(
        [os.path.join(VENV_BIN, "sam"), "local", "invoke", "DigitsFunction", "-t", str(template),
         "-e", str(REPO / "events" / "rest-infer-json.json"), "--skip-pull-image",
         "--parameter-overrides", "ModelBucket=unused ManagedSubnetIds=subnet-0 ManagedSecurityGroupIds=sg-0",
         "--env-vars", str(no_metering)],
        env={**engine.env, "SAM_CLI_TELEMETRY": "0"}, capture_output=True, text=True, timeout=900,
    )
    assert invoke.returncode == 0, invoke.stdout[-2000:] + invoke.stderr[-3000:]
    answers = re.findall(r"^\{.*\}$", invoke.stdout, re.M)
    assert answers, invoke.stdout[-2000:] + invoke.stderr[-3000:]
    return json.loads(answers[-1]), invoke.stderr


def _log_line(logs: str, message: str) -> dict:
    for line in logs.splitlines():
        if line.startswith("{") and message in line:
            return json.loads(line)
    raise AssertionError(f"no log line with {message!r} in:\n{logs[-3000:]}")


def _cpu_reference(store) -> np.ndarray:
    event = json.loads((REPO / "events" / "rest-infer-json.json").read_text())
    request = json.loads(base64.b64decode(event["body"]))
    pixels = np.asarray(request["inputs"][0]["data"], np.float32).reshape(1, 64)
    session = ort.InferenceSession(str(store / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": pixels})[0].reshape(-1)
