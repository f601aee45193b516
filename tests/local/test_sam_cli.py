"""The SAM CLI adapter (modelfn_infra.local.sam_cli): the start-up check, and one small test per SAM CLI entry
point the local runtime relies on, so that an upgrade shows exactly which behaviour broke.

The API tests drive SAM's real services through Flask's test client with a recording stand-in for the Lambda
runtime: no sandbox, no socket."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from io import StringIO
from types import SimpleNamespace

import pytest

from modelfn_infra.local import sam_cli
from modelfn_infra.local.sandbox import Sandbox, _children

from .conftest import alive


class RecordingRuntime:
    """A ``LambdaRuntime`` look-alike: answers ``output`` and records what SAM's runner handed it."""

    def __init__(self, output) -> None:
        self.output = output if isinstance(output, str) else json.dumps(output)
        self.calls: list[tuple] = []

    def invoke(self, function_config, event, tenant_id=None, *, stdout=None, stderr=None, **_):
        self.calls.append((function_config, event, tenant_id))
        stdout.write_str(self.output)
        stdout.flush()


@pytest.fixture(scope="module")
def stacks(api_template):
    return sam_cli.load_stacks(api_template, {"ModelBucket": "unused"})


def runner_for(stacks, output, env_vars=None):
    runtime = RecordingRuntime(output)
    runner = sam_cli.lambda_runner(runtime, sam_cli.function_provider(stacks), os.getcwd(), "us-east-1", env_vars or {})
    return runtime, runner


def gateway(stacks, output, admit=None):
    runtime, runner = runner_for(stacks, output)
    app = sam_cli.api_gateway_app(stacks, runner, sam_cli.writer(StringIO()), admit=admit)
    return runtime, app.test_client()


ONE_ROUTE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  HelloFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
      Handler: app.lambda_handler
      Runtime: python3.12
      Events:
        Hello: {Type: Api, Properties: {Path: /hello, Method: GET}}
"""
PROXY_OK = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{\"ok\": true}"}


# -- the start-up check -------------------------------------------------------------------------------------------

def test_the_installed_sam_cli_is_the_supported_one():
    import samcli

    assert samcli.__version__.startswith(sam_cli.SUPPORTED_SERIES + ".")
    assert sam_cli.problems() == []
    sam_cli.require_supported()


def test_a_changed_private_method_stops_with_one_line_naming_the_supported_version(monkeypatch):
    import samcli

    def changed(self, request, **kwargs):  # what a SAM CLI release could make of it
        raise AssertionError("never called")

    monkeypatch.setattr(samcli, "__version__", "1.171.0")
    monkeypatch.setattr(sam_cli.LocalApigwService, "_request_handler", changed)
    with pytest.raises(sam_cli.SamCliMismatch) as raised:
        sam_cli.require_supported()
    assert str(raised.value) == (
        "modelfn local needs aws-sam-cli 1.170.x (found 1.171.0: LocalApigwService._request_handler changed); "
        "pip install 'aws-sam-cli==1.170.*'"
    )


def test_a_removed_entry_point_or_attribute_is_named(monkeypatch):
    monkeypatch.delattr(sam_cli.LocalApigwService, "_get_current_route")
    monkeypatch.setattr(sam_cli.LocalLambdaHttpService, "create", lambda self: None)
    assert sam_cli.problems() == ["LocalApigwService._get_current_route is gone",
                                  "LocalLambdaHttpService.create no longer sets _app"]


@pytest.mark.parametrize("setup, found", [
    ("import samcli; samcli.__version__ = '1.171.0'", "found 1.171.0)"),
    ("sys.modules['samcli.local.apigw.local_apigw_service'] = None",
     "found 1.170.0: cannot import samcli.local.apigw.local_apigw_service)"),
], ids=["other-version", "module-moved"])
def test_modelfn_local_stops_with_that_one_line_before_doing_anything(setup, found, tmp_path):
    script = f"import sys; {setup}; from modelfn_infra.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", script, "local", "start-api", "--port", "0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"modelfn local needs aws-sam-cli 1.170.x ({found}; pip install 'aws-sam-cli==1.170.*'"]


# -- the template: SamLocalStackProvider.get_stacks, SamFunctionProvider, ApiProvider -----------------------------

def test_stacks_functions_and_routes_come_from_sams_providers(stacks):
    assert stacks[0].resources["ModelApi"]["Type"] == "AWS::Serverless::Api"
    functions = sam_cli.function_provider(stacks)
    assert {"ToyFunction", "CrashFunction", "ServerFunction"} <= {f.name for f in functions.get_all()}
    assert functions.get("CrashFunction").timeout == 2
    routes = {(route.function_name, route.path) for route in sam_cli.api_routes(stacks)}
    assert ("CrashFunction", "/test/{proxy+}") in routes


# -- the runner and the runtime it drives: LocalLambdaRunner, LambdaRuntime.invoke, FunctionConfig ----------------

def test_the_runner_hands_the_runtime_a_function_config_and_the_event(stacks):
    runtime, runner = runner_for(stacks, {"answer": 42})
    out = StringIO()
    runner.invoke("CrashFunction", '{"path": "/x"}', stdout=sam_cli.writer(out), stderr=sam_cli.writer(StringIO()))
    assert json.loads(out.getvalue()) == {"answer": 42}
    [(config, event, tenant_id)] = runtime.calls
    assert (config.name, config.handler, config.timeout, event, tenant_id) == ("CrashFunction", "app.lambda_handler", 2, '{"path": "/x"}', None)
    assert str(config.code_abs_path).endswith("crash") and isinstance(int(config.memory or 128), int)
    assert config.env_vars.resolve()["AWS_REGION"] == "us-east-1"


def test_function_environment_resolves_the_template_and_the_overrides(stacks):
    _, runner = runner_for(stacks, {}, env_vars={"ToyFunction": {"MODEL_URI": "/models/toy/1"}})
    environment = sam_cli.function_environment(runner, sam_cli.function_provider(stacks).get("ToyFunction"))
    assert environment["MODEL_URI"] == "/models/toy/1" and environment["AWS_LAMBDA_FUNCTION_NAME"] == "ToyFunction"


# -- API Gateway: the private methods modelfn overrides -----------------------------------------------------------

def test_request_handler_and_current_route_let_admit_answer_before_the_function_runs(stacks):
    """LocalApigwService._request_handler, _get_current_route and service_response."""
    seen = []

    def admit(function, path, request):
        seen.append((function, path, request.headers.get("x-api-key")))
        return sam_cli.Refusal(429, {"error": "slow down"})

    runtime, client = gateway(stacks, PROXY_OK, admit)
    response = client.get("/test/anything", headers={"x-api-key": "k1"})
    assert (response.status_code, response.get_json()) == (429, {"error": "slow down"})
    assert response.headers["Content-Type"] == "application/json"
    assert seen == [("CrashFunction", "/test/{proxy+}", "k1")] and runtime.calls == []


def test_generate_lambda_event_carries_what_admit_returned_into_the_rest_event(stacks):
    """LocalApigwService._generate_lambda_event."""
    answer = {"identity": {"apiKey": "k1", "apiKeyId": "t1"}, "authorizer": {"tenant": "t1"}}
    runtime, client = gateway(stacks, PROXY_OK, lambda function, path, request: answer)
    assert client.get("/test/anything").get_json() == {"ok": True}
    context = json.loads(runtime.calls[0][1])["requestContext"]
    assert (context["identity"]["apiKey"], context["identity"]["apiKeyId"], context["authorizer"]) == ("k1", "t1", {"tenant": "t1"})


def test_a_function_error_is_a_502_as_on_api_gateway(stacks):
    """LocalApigwService._invoke_lambda_function raises LambdaResponseParseException; lambda_failure_response's
    ``{"message": ...}`` is rewritten to the deployed DEFAULT_5XX gateway response's ``{"error": ...}``."""
    _, client = gateway(stacks, {"errorType": "ValueError", "errorMessage": "boom"})
    response = client.get("/test/anything")
    assert (response.status_code, response.get_json()) == (502, {"error": "Internal server error"})


def test_a_base64_response_is_decoded_by_its_content_type_without_accept(stacks):
    """LocalApigwService._parse_v1_payload_format_lambda_output."""
    output = {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
              "body": base64.b64encode(b"\x00\x01binary").decode(), "isBase64Encoded": True}
    _, client = gateway(stacks, output)
    response = client.get("/test/anything")
    assert (response.status_code, response.data) == (200, b"\x00\x01binary")


def test_create_builds_the_flask_app_whose_error_handlers_modelfn_replaces(tmp_path):
    """LocalApigwService.create sets ``_app``: no route is the deployed API's JSON 404, not SAM's 403."""
    (tmp_path / "template.yaml").write_text(ONE_ROUTE)  # api_template's catch-all answers every path
    _, client = gateway(sam_cli.load_stacks(tmp_path / "template.yaml", {}), PROXY_OK)
    assert client.get("/hello").get_json() == {"ok": True}
    response = client.get("/no/such/route")
    assert response.status_code == 404 and response.get_json()["error"].startswith("no route GET /no/such/route")


# -- Lambda's Invoke API: LocalLambdaHttpService ---------------------------------------------------------------------

def test_lambda_invoke_app_serves_the_invoke_api_over_the_runner(stacks):
    """LocalLambdaHttpService.create sets ``_app``."""
    runtime, runner = runner_for(stacks, {"answer": 42})
    client = sam_cli.lambda_invoke_app(runner, sam_cli.writer(StringIO())).test_client()
    response = client.post("/2015-03-31/functions/CrashFunction/invocations", data=b'{"n": 1}')
    assert (response.status_code, response.get_json()) == (200, {"answer": 42})
    assert runtime.calls[0][0].name == "CrashFunction" and json.loads(runtime.calls[0][1]) == {"n": 1}


# -- the Lambda RIE SAM CLI ships ------------------------------------------------------------------------------------

SLEEPY_APP = '''
import os, time

def lambda_handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"pid": os.getpid()}
'''


def test_the_rie_runs_a_handler_and_stops_its_busy_runtime_on_sigterm(tmp_path):
    """The RIE path; and what the parent-death signal relies on: SIGTERM to the RIE alone stops its runtime."""
    (tmp_path / "app.py").write_text(SLEEPY_APP)
    config = SimpleNamespace(name="Sleepy", handler="app.lambda_handler", memory=128, timeout=30, code_abs_path=tmp_path,
                             env_vars=SimpleNamespace(resolve=dict))
    sandbox = Sandbox(config, sys.executable, rie=sam_cli.RIE_BINARY)
    try:
        runtime_pid = json.loads(sandbox.invoke(b"{}").payload)["pid"]
        assert runtime_pid in _children(sandbox.process.pid)
        busy = threading.Thread(target=sandbox.invoke, args=(b'{"sleep": 60}',), daemon=True)
        busy.start()
        time.sleep(0.5)
        os.kill(sandbox.process.pid, signal.SIGTERM)  # the RIE only, not its process group
        deadline = time.monotonic() + 10
        while alive(runtime_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(runtime_pid), "the RIE left its busy runtime running after SIGTERM"
    finally:
        sandbox.stop()
