"""The CPU container image: `modelfn build` of a `package_type: Image` model, then the real `sam local invoke`.

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

    # a local run meters into no deployed table (what `modelfn local` does too): the container has no AWS to reach
    no_metering = tmp_path / "env.json"
    no_metering.write_text(json.dumps({"DigitsFunction": {"MODELFN_USAGE_TABLE": ""}}))
    invoke = subprocess.run(
        [os.path.join(VENV_BIN, "sam"), "local", "invoke", "DigitsFunction", "-t", str(result.template),
         "-e", str(REPO / "events" / "rest-infer-json.json"), "--skip-pull-image",
         "--parameter-overrides", "ModelBucket=unused", "--env-vars", str(no_metering)],
        env={**engine.env, "SAM_CLI_TELEMETRY": "0"}, capture_output=True, text=True, timeout=600,
    )
    assert invoke.returncode == 0, invoke.stdout[-2000:] + invoke.stderr[-3000:]
    answers = re.findall(r"^\{.*\}$", invoke.stdout, re.M)
    assert answers, invoke.stdout[-2000:] + invoke.stderr[-3000:]
    response = json.loads(answers[-1])
    assert response["statusCode"] == 200, response
    body = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"]
    probs = np.asarray(json.loads(body)["outputs"][0]["data"], np.float32)

    event = json.loads((REPO / "events" / "rest-infer-json.json").read_text())
    request = json.loads(base64.b64decode(event["body"]))
    pixels = np.asarray(request["inputs"][0]["data"], np.float32).reshape(1, 64)
    session = ort.InferenceSession(str(digits_store / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(probs, session.run(None, {"pixels": pixels})[0].reshape(-1), rtol=1e-4, atol=1e-5)
