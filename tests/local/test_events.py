"""Every sample event in events/ runs against the real template.yaml, in-process and through the CLI;
and the production loading path (model in S3) works through the local runtime with a moto server."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest

from modelfn_infra.local.cloud import LocalCloud
from modelfn_infra.local.commands import LocalApp
from modelfn_infra.local.sandbox import _children, free_port

from ..conftest import REPO
from .conftest import alive, start_api

pytestmark = pytest.mark.slow
EVENTS = sorted((REPO / "events").glob("*.json"))


def function_for(event_file: Path) -> str:
    return "ServerFunction" if event_file.name.startswith("rest-health") else "DigitsFunction"


@pytest.fixture(scope="module")
def repo_app(digits_store, tmp_path_factory):
    """The repository's template, served by the local runtime against moto (the data bucket seeded from events/data)."""
    log = (tmp_path_factory.mktemp("logs") / "events.log").open("w")
    env = {"DigitsFunction": {"MODEL_URI": str(digits_store / "digits" / "1")}}
    with LocalApp(REPO / "template.yaml", env_vars=env, parameter_overrides={"ModelBucket": "unused"}, log_stream=log) as app:
        with LocalCloud(app) as cloud:
            app.cloud = cloud
            yield app
    log.close()


def decoded_body(response: dict) -> bytes:
    body = response["body"]
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def test_every_trigger_has_a_sample_event():
    names = {path.name for path in EVENTS}
    assert {
        "rest-infer-json.json", "rest-infer-binary.json", "http-api-infer.json", "rest-model-metadata.json",
        "rest-health-live.json", "rest-tfserving-predict.json", "direct-infer.json",
        "s3-put.json", "sqs-batch.json", "async-pointer.json",
    } <= names


@pytest.mark.parametrize("event_file", EVENTS, ids=[path.stem for path in EVENTS])
def test_sample_event_succeeds(repo_app, event_file):
    event = json.loads(event_file.read_text())
    response = repo_app.invoke(function_for(event_file), event)
    if event_file.name.startswith("direct"):
        assert "error" not in response and response["outputs"][0]["shape"] == [1, 10]
        return
    if event_file.name in EVENT_OUTPUTS:
        check_event_outputs(repo_app, event_file.name, response)
        return
    assert response["statusCode"] == 200, decoded_body(response)
    body = decoded_body(response)
    if "binary" in event_file.name:
        length = int(response["headers"]["Inference-Header-Content-Length"])
        probs = np.frombuffer(body[length:], "<f4")
        assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-4
    elif "infer" in event_file.name or "predict" in event_file.name:
        assert "outputs" in json.loads(body) or "predictions" in json.loads(body)


EVENT_OUTPUTS = {
    "s3-put.json": ["outbox/digits/sample.jsonl.json"],
    "sqs-batch.json": ["outbox/digits/messages/sample-inline-1.json", "outbox/digits/messages/sample-pointer-1.json"],
    "async-pointer.json": ["outbox/digits/invocations/"],
}


def check_event_outputs(app, name: str, response) -> None:
    """The event's inputs (from events/data/) came back as predictions in the data bucket."""
    if name == "s3-put.json":
        assert response is None
    elif name == "sqs-batch.json":
        assert response == {"batchItemFailures": []}
    else:
        assert response["status"] == 200 and "/outbox/digits/invocations/" in response["output"], response
    results = app.cloud.results()
    for key in EVENT_OUTPUTS[name]:
        (found,) = [k for k in results if k.startswith(key)]
        document = json.loads(results[found])
        probs = document["predictions"][0] if "predictions" in document else document["outputs"][0]["data"]
        assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-4


def test_sample_digit_is_classified_correctly(repo_app):
    response = repo_app.invoke("DigitsFunction", json.loads((REPO / "events" / "direct-infer.json").read_text()))
    from sklearn.datasets import load_digits

    assert int(np.argmax(response["outputs"][0]["data"])) == int(load_digits().target[-1])


def test_cli_local_invoke(digits_store, tmp_path):
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"DigitsFunction": {"MODEL_URI": str(digits_store / "digits" / "1")}}))
    result = subprocess.run(
        [sys.executable, "-m", "modelfn_infra.cli", "local", "invoke", "DigitsFunction", "-e", "events/rest-tfserving-predict.json",
         "--env-vars", str(env_file), "--parameter-overrides", "ModelBucket=unused"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200 and len(json.loads(response["body"])["predictions"][0]) == 10
    report = [line for line in result.stderr.splitlines() if line.startswith("REPORT RequestId:")]
    assert report and "Init Duration:" in report[0] and "Max Memory Used:" in report[0]


def test_cli_local_invoke_of_an_s3_event_against_moto(digits_store, tmp_path):
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"DigitsFunction": {"MODEL_URI": str(digits_store / "digits" / "1")}}))
    result = subprocess.run(
        [sys.executable, "-m", "modelfn_infra.cli", "local", "invoke", "DigitsFunction", "-e", "events/s3-put.json",
         "--env-vars", str(env_file), "--parameter-overrides", "ModelBucket=unused", "--moto"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "outbox/digits/sample.jsonl.json" in result.stdout and '"predictions"' in result.stdout


def test_cli_local_invoke_unknown_function_is_a_clear_error():
    result = subprocess.run(
        [sys.executable, "-m", "modelfn_infra.cli", "local", "invoke", "NopeFunction", "-e", "events/direct-infer.json",
         "--parameter-overrides", "ModelBucket=unused"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "choose one of" in result.stderr and "Traceback" not in result.stderr


def test_function_loads_its_model_from_s3(digits_store, tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer

    from modelfn_export import push_model

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
        boto3.client("s3").create_bucket(Bucket="models-test")
        push_model("digits", "1", bucket="models-test", prefix="models/", store=str(digits_store))
        with LocalApp(REPO / "template.yaml", parameter_overrides={"ModelBucket": "models-test"},
                      log_stream=open(os.devnull, "w")) as app:
            response = app.invoke("DigitsFunction", json.loads((REPO / "events" / "direct-infer.json").read_text()))
    finally:
        server.stop()
    assert response["model_name"] == "digits" and len(response["outputs"][0]["data"]) == 10


def test_cli_start_api_serves_and_stops_by_itself(digits_store, tmp_path):
    import time
    import urllib.request

    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"DigitsFunction": {"MODEL_URI": str(digits_store / "digits" / "1")}}))
    tenants = tmp_path / "tenants.json"
    created = subprocess.run([sys.executable, "-m", "modelfn_infra.cli", "tenants", "create", "dev", "--plan", "free",
                              "--local", "--tenants", str(tenants)], cwd=REPO, capture_output=True, text=True, check=True)
    key = created.stdout.split("(shown once; give it to the tenant): ")[1].split()[0]
    port = free_port()
    with start_api("--port", str(port), "--idle-shutdown", "3", "--env-vars", str(env_file),
                   "--parameter-overrides", "ModelBucket=unused", "--tenants", str(tenants), stdout=subprocess.DEVNULL) as process:
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/digits/ready", headers={"x-api-key": key})
                with urllib.request.urlopen(ready, timeout=30) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "start-api did not come up"
                time.sleep(0.3)
        assert process.wait(timeout=30) == 0  # idle shutdown, no signal needed


def test_start_api_with_moto_delivers_inbox_objects_while_it_runs(digits_store, tmp_path):
    import time
    import urllib.request

    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"DigitsFunction": {"MODEL_URI": str(digits_store / "digits" / "1")}}))
    port = free_port()
    with start_api("--port", str(port), "--idle-shutdown", "60", "--env-vars", str(env_file),
                   "--parameter-overrides", "ModelBucket=unused", "--moto") as process:
        endpoint = None
        for line in process.stdout:
            if line.startswith("AWS on "):
                endpoint = line.split()[2]
                break
        assert endpoint, "start-api --moto printed no endpoint"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        bucket = "modelfn-data-51af3dc0-da77-11e4-872e-1234567db123"
        s3.put_object(Bucket=bucket, Key="inbox/digits/live.jsonl", Body=(REPO / "events/data/inbox/digits/sample.jsonl").read_bytes())
        deadline = time.monotonic() + 90
        while True:
            try:
                document = json.loads(s3.get_object(Bucket=bucket, Key="outbox/digits/live.jsonl.json")["Body"].read())
                break
            except s3.exceptions.NoSuchKey:
                assert time.monotonic() < deadline, "the inbox object was never processed"
                time.sleep(0.5)
        assert len(document["predictions"][0]) == 10
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=30) as response:
            assert response.status == 200
        sandboxes = _children(process.pid)
        assert sandboxes, "the inbox object ran in a sandbox under start-api"
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0
    assert not [pid for pid in sandboxes if alive(pid)], "sandboxes outlived start-api after SIGTERM"
