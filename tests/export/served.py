"""Serve an exported model through ``InferenceService.handle`` in a process that never imports TensorFlow.

A deployed function never imports TensorFlow; a test process that built the model has, and TensorFlow's RE2
breaks onnxruntime-extensions' regex ops in the same process (see ``modelfn_export.isolated``). So the zoo's
raw-text models are served here, as Lambda would: ``python -m tests.export.served`` reads
``{"directory", "name", "requests": [{"method", "path", "body"}]}`` as JSON on stdin and writes
``[{"status", "body", "tensorflow_imported"}]``.

Example:
    >>> answers = serve_isolated(store / "text" / "1", "text", [("POST", "/v2/models/text/infer", payload)])  # doctest: +SKIP
    >>> answers[0]["status"]                                                                              # doctest: +SKIP
    200
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def serve_isolated(directory: Path, name: str, requests: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
    """Answer each ``(method, path, json body)`` with the model at ``directory``; ``[{"status", "body"}]``."""
    document = {"directory": str(directory), "name": name,
                "requests": [{"method": m, "path": p, "body": b} for m, p, b in requests]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "functions" / "inference"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "tests.export.served"], input=json.dumps(document).encode(),
                          capture_output=True, cwd=REPO, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return json.loads(done.stdout)


def _main() -> None:
    from modelfn_runtime.http import Headers, HttpRequest
    from modelfn_runtime.service import InferenceService
    from modelfn_runtime.session import ModelSession

    class Meter:
        def record(self, usage: Any) -> None:
            pass

        def flush(self) -> None:
            pass

    document = json.load(sys.stdin)
    service = InferenceService(ModelSession.load(document["directory"], preference="cpu"),
                               served_models=[document["name"]], meter=Meter())
    answers = []
    for request in document["requests"]:
        body = None if request["body"] is None else json.dumps(request["body"]).encode()
        headers = Headers({"Content-Type": "application/json"})
        response = service.handle(HttpRequest(request["method"], request["path"], headers, body=body))
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        answers.append({"status": response.status, "body": text, "tensorflow_imported": "tensorflow" in sys.modules})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    _main()
