"""A peer fuzzer holds the API to its own OpenAPI document (issue 18, item 9).

schemathesis, from its own virtual environment (``.venv/fuzz``, ``infra/fuzz-requirements.txt``: its pins clash
with ours), reads the local API's ``/openapi.json`` (``modelfn local start-api``'s docker-free runtime, API keys
on) and sends requests generated from it, valid and invalid, with a tenant key whose plan does not throttle the
run. Its checks: ``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
``response_headers_conformance`` (Retry-After on 503), ``response_schema_conformance`` and
``negative_data_rejection``; the run must end with zero findings. (schemathesis's ``unsupported_method`` also
sends TRACE, which API Gateway does not route to a function: the local API answers it with the gateway's 404.
Every other method's 405 and its Allow header are checked below, against the same document.)

Budget: ``MODELFN_FUZZ_API_EXAMPLES`` cases per operation and phase (default 30: about 1,400 cases, one to two
minutes on a busy 2-core machine) with a fixed ``MODELFN_FUZZ_API_SEED`` (default 18), so that CI's run is the same
every time; ``MODELFN_FUZZ_API_SECONDS`` turns it into a run of that many seconds (schemathesis repeats its phases
until they are spent), as ``make fuzz`` does. Nothing is timed as a pass condition: a run that outlives its budget
by ``GRACE_S`` is stopped, process group and all, and reported.

The local emulation's API Gateway answers (403 without a valid key, 429 past a plan's limit) are checked against
the document too.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from modelfn_infra.catalog import Catalog, ModelEntry, UsagePlanEntry, dump_template, render_template
from modelfn_infra.local.commands import LocalApp
from modelfn_infra.tenants import LocalTenants

from ..conftest import REPO
from ..contract import Contract

pytestmark = pytest.mark.slow
FUZZER = REPO / ".venv" / "fuzz" / "bin" / "st"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection")
EXAMPLES = int(os.environ.get("MODELFN_FUZZ_API_EXAMPLES", "30"))
SECONDS = int(os.environ.get("MODELFN_FUZZ_API_SECONDS", "0"))
SEED = int(os.environ.get("MODELFN_FUZZ_API_SEED", "18"))
GRACE_S = 900
"""A hang guard far past any run's budget (a case-bounded run takes one to two minutes, a timed one SECONDS)."""


@pytest.fixture(scope="module")
def keyed_api(digits_store, tmp_path_factory):
    """The local API serving digits with API keys on: a tenant on an unthrottled plan, one on a plan of one request."""
    directory = tmp_path_factory.mktemp("fuzz-api")
    catalog = Catalog([ModelEntry("digits", "1", memory_mb=512)],
                      [UsagePlanEntry("fuzz", rate_limit=10000, burst_limit=5000), UsagePlanEntry("one", rate_limit=0.001, burst_limit=1)])
    template = directory / "template.yaml"
    template.write_text(dump_template(render_template(catalog, code_uri=str(REPO / "functions" / "inference"))))
    tenants = LocalTenants(directory / "tenants.json", plans=["fuzz", "one"])
    keys = {"fuzz": tenants.create("fuzzer", "fuzz").key, "one": tenants.create("once", "one").key}
    model = str(digits_store / "digits" / "1")
    env = {"DigitsFunction": {"MODEL_URI": model}, "ServerFunction": {"MODELFN_CARD_URIS": model}}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with (directory / "functions.log").open("w") as log, \
            LocalApp(template, env_vars=env, parameter_overrides={"ModelBucket": "unused"}, log_stream=log) as app:
        server = app.serve_api(port=0, tenants=tenants.path)
        try:
            yield server, keys, directory
        finally:
            server.stop()


def call(url: str, method: str = "GET", key: str | None = None, body: bytes | None = None):
    headers = {"Content-Type": "application/json", **({"x-api-key": key} if key else {})}
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def contract(keyed_api) -> Contract:
    server, keys, _ = keyed_api
    status, _, body = call(server.url + "/openapi.json", key=keys["fuzz"])
    assert status == 200, body[:500]
    return Contract(json.loads(body))


def test_api_gateway_answers_are_documented(keyed_api, contract):
    """Which routes need a key is the document's ``security``; the gateway's 403 and 429 are documented answers."""
    server, keys, _ = keyed_api
    for path, item in contract.document["paths"].items():
        if "get" not in item:
            continue
        concrete = path.replace("{version}", "1")
        status, headers, body = call(server.url + concrete)
        needs_key = item["get"]["security"] != []
        assert (status == 403) == needs_key, (path, status, body[:200])
        contract.check_response("GET", concrete, status, headers, body)
    pixels = json.dumps({"instances": [[0.0] * 64]}).encode()
    answers = [call(server.url + "/v1/models/digits:predict", "POST", keys["one"], pixels) for _ in range(2)]
    assert [status for status, _, _ in answers] == [200, 429]
    for status, headers, body in answers:
        contract.check_response("POST", "/v1/models/digits:predict", status, headers, body)
    status, headers, body = call(server.url + "/v2/models/digits/infer", "POST", "not-a-key", b"{}")
    assert status == 403
    contract.check_response("POST", "/v2/models/digits/infer", status, headers, body)


def test_other_methods_answer_405_with_allow(keyed_api, contract):
    server, keys, _ = keyed_api
    for path, item in contract.document["paths"].items():
        concrete = path.replace("{version}", "1")
        for method in sorted({"GET", "POST", "PUT", "DELETE", "PATCH"} - {m.upper() for m in item}):
            status, headers, body = call(server.url + concrete, method, keys["fuzz"], None if method == "GET" else b"{}")
            assert status == 405, (method, path, status, body[:200])
            contract.check_response(method, concrete, status, headers, body)


def test_schemathesis_finds_nothing(keyed_api, contract):
    if not FUZZER.is_file():
        reason = f"{FUZZER} is missing: `make install` builds the fuzzer's environment (infra/fuzz-requirements.txt)"
        print(f"SKIP {reason}", file=sys.stderr)
        pytest.skip(reason)
    server, keys, directory = keyed_api
    report = directory / "report"
    command = [
        str(FUZZER), "run", f"{server.url}/openapi.json", "--header", f"x-api-key: {keys['fuzz']}",
        "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", str(SEED), *(["--max-time", str(SECONDS)] if SECONDS else []),
        "--workers", "2", "--request-timeout", "60", "--generation-database", "none",
        "--generation-with-security-parameters", "false", "--suppress-health-check", "all",
        "--report", "junit,ndjson", "--report-dir", str(report), "--no-color",
    ]
    # the fuzzer's own process group, so that a run past its budget stops with everything it started
    process = subprocess.Popen(command, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env={**os.environ, "PYTHONPATH": ""})
    try:
        output, _ = process.communicate(timeout=SECONDS + GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"schemathesis ran past {SECONDS + GRACE_S} s, stopped:\n{output[-4000:]}")
    figures = _figures(report)
    budget = f"{SECONDS} s" if SECONDS else f"{EXAMPLES} cases per operation and phase"
    print(f"schemathesis: {figures['cases']} cases, {figures['failures']} failed checks in {figures['seconds']:.0f} s "
          f"(seed {SEED}, {budget}); {output.strip().splitlines()[-1]}", file=sys.stderr)
    assert process.returncode == 0 and figures["failures"] == 0, output[-12000:]
    assert figures["cases"] > 0, output[-4000:]


def _figures(report: Path) -> dict[str, float]:
    """Cases sent, failed checks and seconds, from the fuzzer's own event stream (``--report ndjson``)."""
    cases = failures = 0
    seconds = 0.0
    for path in report.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished:
                recorder = finished.get("recorder") or {}
                cases += len(recorder.get("cases") or {})
                failures += sum(check.get("status") == "failure" for checks in (recorder.get("checks") or {}).values()
                                for check in checks)
            if "EngineFinished" in event:
                seconds = event["EngineFinished"]["running_time"]
    return {"cases": cases, "failures": failures, "seconds": seconds}
