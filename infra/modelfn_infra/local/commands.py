"""``modelfn local invoke`` and ``modelfn local start-api``: SAM CLI's own template handling and API
Gateway emulation, with functions running in host sandboxes (``sandbox.HostLambdaRuntime``) instead of
Docker containers.

Example:
    >>> with LocalApp("template.yaml") as app:                         # doctest: +SKIP
    ...     server = app.serve_api(port=3000)
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import threading
import time
from argparse import Namespace
from io import StringIO
from pathlib import Path
from typing import Any

os.environ.setdefault("SAM_CLI_TELEMETRY", "0")

from samcli.commands.local.lib.local_lambda import LocalLambdaRunner  # noqa: E402
from samcli.lib.providers.api_provider import ApiProvider  # noqa: E402
from samcli.lib.providers.sam_function_provider import SamFunctionProvider  # noqa: E402
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider  # noqa: E402
from samcli.lib.utils.stream_writer import StreamWriter  # noqa: E402
from samcli.local.apigw.exceptions import LambdaResponseParseException  # noqa: E402
from samcli.local.apigw.local_apigw_service import LocalApigwService  # noqa: E402
from samcli.local.apigw.service_error_responses import ServiceErrorResponses  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from modelfn_runtime.errors import LAMBDA_SYNC_PAYLOAD_LIMIT, payload_too_large  # noqa: E402

from .sandbox import HostLambdaRuntime  # noqa: E402

DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


class LocalApp:
    """A template's functions and API, run on this host. A context manager: leaving it stops every sandbox."""

    def __init__(
        self,
        template: str | Path = "template.yaml",
        *,
        env_vars: dict[str, Any] | None = None,
        parameter_overrides: dict[str, str] | None = None,
        python: str = sys.executable,
        max_sandboxes: int = 2,
        log_stream=None,
    ) -> None:
        for name, value in {"AWS_DEFAULT_REGION": DEFAULT_REGION, **FAKE_CREDENTIALS}.items():
            os.environ.setdefault(name, value)
        template = Path(template).resolve()
        stacks, _ = SamLocalStackProvider.get_stacks(str(template), parameter_overrides=parameter_overrides or {})
        self.stacks = stacks
        self.functions = SamFunctionProvider(stacks)
        self.runtime = HostLambdaRuntime(python=python, max_sandboxes=max_sandboxes)
        self.runner = LocalLambdaRunner(
            local_runtime=self.runtime,
            function_provider=self.functions,
            cwd=str(template.parent),
            real_path=str(template.parent),
            aws_region=os.environ["AWS_DEFAULT_REGION"],
            env_vars_values=env_vars or {},
        )
        self.log = StreamWriter(log_stream or sys.stderr, auto_flush=True)

    def __enter__(self) -> "LocalApp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.runtime.close()

    def invoke(self, function: str, event: dict[str, Any] | str) -> Any:
        """Invoke one function by logical id and return its decoded JSON response."""
        if self.functions.get(function) is None:
            names = sorted(f.name for f in self.functions.get_all())
            raise KeyError(f"function {function!r} is not in the template; choose one of {names}")
        with StringIO() as out:
            body = event if isinstance(event, str) else json.dumps(event)
            self.runner.invoke(function, body, stdout=StreamWriter(out, auto_flush=True), stderr=self.log)
            return json.loads(out.getvalue())

    def serve_api(self, port: int = 3000) -> "ApiServer":
        api = ApiProvider(self.stacks, cwd=os.getcwd()).api
        service = ApiGatewayService(api=api, lambda_runner=self.runner, port=port, host="127.0.0.1", stderr=self.log)
        service.create()
        return ApiServer(service, port)


class FunctionError(Exception):
    """The function raised, crashed or timed out: API Gateway answers 502 for a Lambda proxy integration."""


class ApiGatewayService(LocalApigwService):
    """SAM's API Gateway emulation, with API Gateway's 502 for function errors and its documented binary rule."""

    def create(self):
        super().create()
        self._app.register_error_handler(FunctionError, lambda error: ServiceErrorResponses.lambda_failure_response())

    def _invoke_lambda_function(self, lambda_function_name, event, tenant_id=None):
        try:
            return super()._invoke_lambda_function(lambda_function_name, event, tenant_id)
        except LambdaResponseParseException:  # SAM answers these with 500; API Gateway with 502
            raise FunctionError(lambda_function_name) from None

    @staticmethod
    def _parse_v1_payload_format_lambda_output(lambda_output, binary_types, flask_request, event_type):
        status, headers, body = LocalApigwService._parse_v1_payload_format_lambda_output(
            lambda_output, binary_types, flask_request, event_type
        )
        # API Gateway decodes a base64 proxy response when the response Content-Type or the request's first
        # Accept type matches a binary media type; SAM checks only Accept, which clients often omit.
        if isinstance(body, str) and json.loads(lambda_output).get("isBase64Encoded") is True:
            content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
            if "*/*" in binary_types or content_type in binary_types:
                body = base64.b64decode(body)
        return status, headers, body


class ApiServer:
    """The emulated API on 127.0.0.1 in a background thread; ``stop()`` or idle shutdown ends it."""

    def __init__(self, service: LocalApigwService, port: int) -> None:
        self.last_request = time.monotonic()
        app = service._app
        self._server = make_server("127.0.0.1", port, self._guard(app), threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _guard(self, app):
        def middleware(environ, start_response):
            self.last_request = time.monotonic()
            length = int(environ.get("CONTENT_LENGTH") or 0)
            # base64 grows a body by 4/3 inside the event, which is what Lambda's limit counts
            if length * 4 // 3 > LAMBDA_SYNC_PAYLOAD_LIMIT:
                error = payload_too_large("the request body, base64-encoded into the event,", length * 4 // 3)
                body = json.dumps({"error": error.message}).encode()
                start_response("413 Request Entity Too Large", [("Content-Type", "application/json"),
                                                                ("Content-Length", str(len(body)))])
                return [body]
            return app(environ, start_response)

        return middleware

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, idle_shutdown: float) -> None:
        """Block until interrupted, or until no request arrived for ``idle_shutdown`` seconds (0: never)."""
        try:
            while self._thread.is_alive():
                time.sleep(0.5)
                if idle_shutdown and time.monotonic() - self.last_request > idle_shutdown:
                    print(f"no request for {idle_shutdown:.0f} s: stopping", file=sys.stderr)
                    return
        except KeyboardInterrupt:
            return


def invoke(args: Namespace) -> int:
    event = sys.stdin.read() if args.event == "-" else Path(args.event).read_text()
    stop_on_signals()
    try:
        with _app(args) as app, _cloud(args, app) as cloud:
            response = app.invoke(args.function, event)
            results = cloud.results() if cloud else {}
    except (KeyError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: sandboxes stopped", file=sys.stderr)
        return 130
    print(json.dumps(response, indent=2))
    for key, body in results.items():
        print(f"--- s3://{cloud.data_bucket}/{key}\n{body.decode('utf-8', 'replace')[:2000]}")
    return 0


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the command like Ctrl-C (SIGINT): leaving the ``with`` blocks then stops every
    sandbox (busy ones too) and moto."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def _cloud(args: Namespace, app: LocalApp):
    """A LocalCloud (moto on 127.0.0.1) when ``--moto`` was given, else a context that does nothing."""
    from contextlib import nullcontext

    if not getattr(args, "moto", False):
        return nullcontext(None)
    from .cloud import LocalCloud

    return LocalCloud(app)


def start_api(args: Namespace) -> int:
    stop_on_signals()
    with _app(args, max_sandboxes=args.max_sandboxes) as app, _cloud(args, app) as cloud:
        if cloud:
            cloud.deliver_in_background()
            print(f"AWS on {cloud.endpoint} (moto): data bucket {cloud.data_bucket}; S3 and SQS events are delivered "
                  "to the functions as they arrive", flush=True)
        server = app.serve_api(args.port)
        routes = ApiProvider(app.stacks, cwd=os.getcwd()).api.routes
        for route in sorted(routes, key=lambda r: r.path):
            print(f"  {route.function_name:>18}  {','.join(sorted(route.methods)):<40} {server.url}{route.path}")
        print(f"API listening on {server.url} (Ctrl-C to stop)", flush=True)
        try:
            server.wait(args.idle_shutdown)
        finally:
            server.stop()
    return 0


def _app(args: Namespace, **kwargs: Any) -> LocalApp:
    env_vars = json.loads(Path(args.env_vars).read_text()) if args.env_vars else None
    overrides = dict(item.split("=", 1) for item in args.parameter_overrides)
    return LocalApp(args.template, env_vars=env_vars, parameter_overrides=overrides, python=args.python, **kwargs)
