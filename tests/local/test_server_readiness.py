"""Server readiness through the local runtime: the catch-all probes the model functions with Lambda's Invoke API
(SAM CLI's local Lambda service), so /v2/health/ready says 503 while any model cannot load."""

from __future__ import annotations

import json
import shutil

import pytest

from modelfn_infra.local.commands import LocalApp

pytestmark = pytest.mark.slow


def ready_event(path: str = "/v2/health/ready", resource: str = "/v2/health/{proxy+}") -> dict:
    return {"resource": resource, "path": path, "httpMethod": "GET", "headers": {},
            "requestContext": {"requestId": "ready-1", "stage": "Prod", "identity": {}}, "body": None, "isBase64Encoded": False}


def warm(app: LocalApp, *models: str) -> None:
    """Start the healthy model functions first: the catch-all's 5 s timeout covers its probes, and two cold starts
    in a row can take longer than that on a loaded 2-core machine."""
    for model in models:
        response = app.invoke(f"{model.capitalize()}Function", ready_event(f"/v2/models/{model}/ready", f"/v2/models/{model}/{{proxy+}}"))
        assert response["statusCode"] == 200, response


def test_ready_only_when_every_model_function_can_serve(api_template, local_env, tmp_path):
    with (tmp_path / "ok.log").open("w") as log, LocalApp(api_template, env_vars=local_env,
                                                         parameter_overrides={"ModelBucket": "unused"}, log_stream=log) as app:
        warm(app, "toy", "digits")
        response = app.invoke("ServerFunction", ready_event())
        assert response["statusCode"] == 200, response

    broken = tmp_path / "toy" / "1"
    shutil.copytree(local_env["ToyFunction"]["MODEL_URI"], broken)
    with (broken / "model.onnx").open("ab") as artifact:
        artifact.write(b"\0")  # the sha256 no longer matches the card: the function cannot load it
    env = {**local_env, "ToyFunction": {"MODEL_URI": str(broken)}}
    with (tmp_path / "broken.log").open("w") as log, LocalApp(api_template, env_vars=env,
                                                             parameter_overrides={"ModelBucket": "unused"}, log_stream=log) as app:
        warm(app, "digits")
        response = app.invoke("ServerFunction", ready_event())
        error = json.loads(response["body"])["error"]
        assert response["statusCode"] == 503 and response["headers"]["Retry-After"]
        assert "'toy'" in error and "sha256" in error and "'digits'" not in error
