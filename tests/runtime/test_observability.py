"""The lazy tracer: no X-Ray SDK import and no per-call wrapper where tracing is off; powertools' Tracer where on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..conftest import REPO

PROBE = """
import json, sys
from modelfn_runtime.observability import subsegment, tracer, tracing_enabled
def handler(event, context):
    with subsegment("## work"):
        return {"ok": True}
wrapped = tracer.capture_lambda_handler(handler, capture_response=False)
class Context:
    aws_request_id = "r"; function_name = "f"; memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
print(json.dumps({"enabled": tracing_enabled(), "same": wrapped is handler, "answer": wrapped({}, Context()),
                  "sdk": "aws_xray_sdk" in sys.modules, "botocore": "botocore.client" in sys.modules}))
"""


def probe(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("LAMBDA_TASK_ROOT", "AWS_SAM_LOCAL", "POWERTOOLS_TRACE_DISABLED")}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO,
                            env={**base, "PYTHONPATH": str(REPO / "functions" / "inference"), **env}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_outside_lambda_nothing_is_imported_or_wrapped():
    assert probe() == {"enabled": False, "same": True, "answer": {"ok": True}, "sdk": False, "botocore": False}


def test_disabled_by_env_or_under_sam_local_even_inside_a_lambda_sandbox():
    assert probe(LAMBDA_TASK_ROOT="/var/task", POWERTOOLS_TRACE_DISABLED="true")["sdk"] is False
    assert probe(LAMBDA_TASK_ROOT="/var/task", AWS_SAM_LOCAL="true")["sdk"] is False


def test_inside_lambda_powertools_tracer_wraps_the_handler_without_patching_everything():
    out = probe(LAMBDA_TASK_ROOT="/var/task", AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR",
                _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    assert out["enabled"] and out["sdk"] and not out["same"] and out["answer"] == {"ok": True}
