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

from flask import g, request  # noqa: E402
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner  # noqa: E402
from samcli.lib.providers.api_provider import ApiProvider  # noqa: E402
from samcli.lib.providers.sam_function_provider import SamFunctionProvider  # noqa: E402
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider  # noqa: E402
from samcli.lib.utils.stream_writer import StreamWriter  # noqa: E402
from samcli.local.apigw.exceptions import LambdaResponseParseException  # noqa: E402
from samcli.local.apigw.local_apigw_service import LocalApigwService  # noqa: E402
from samcli.local.apigw.route import Route  # noqa: E402
from samcli.local.apigw.service_error_responses import ServiceErrorResponses  # noqa: E402
from werkzeug.exceptions import HTTPException  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from modelfn_export.defaults import DEFAULT_STORE  # noqa: E402
from modelfn_runtime.errors import LAMBDA_SYNC_PAYLOAD_LIMIT, payload_too_large  # noqa: E402
from modelfn_runtime.http import status_class  # noqa: E402
from modelfn_runtime.usage import USAGE_TABLE_ENV  # noqa: E402

from ..catalog import API_KEY_HEADER  # noqa: E402
from ..tenants import DEFAULT_LOCAL_TENANTS, LocalTenants  # noqa: E402
from .apikeys import ApiKeyGate, Refused, plans_from_template  # noqa: E402
from .sandbox import HostLambdaRuntime  # noqa: E402
from .store import local_store_env, missing_models, resolve_relative  # noqa: E402

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
        model_store: str | Path | None = None,
    ) -> None:
        for name, value in {"AWS_DEFAULT_REGION": DEFAULT_REGION, **FAKE_CREDENTIALS}.items():
            os.environ.setdefault(name, value)
        template = Path(template).resolve()
        stacks, _ = SamLocalStackProvider.get_stacks(str(template), parameter_overrides=parameter_overrides or {})
        self.stacks = stacks
        self.functions = SamFunctionProvider(stacks)
        # template variables per function; local paths in overrides resolve against the project root
        self.variables = {f.name: dict((f.environment or {}).get("Variables") or {}) for f in self.functions.get_all()}
        self.model_store = Path(model_store).resolve() if model_store is not None else None
        env_vars = env_vars or {}
        if self.model_store is not None:
            env_vars = local_store_env(self.variables, self.model_store, env_vars)
        self.env_vars = resolve_relative(env_vars, template.parent)
        self.runtime = HostLambdaRuntime(python=python, max_sandboxes=max_sandboxes)
        self.runner = LocalLambdaRunner(
            local_runtime=self.runtime,
            function_provider=self.functions,
            cwd=str(template.parent),
            real_path=str(template.parent),
            aws_region=os.environ["AWS_DEFAULT_REGION"],
            env_vars_values=_without_deployed_tables(self.env_vars),
        )
        self.log = StreamWriter(log_stream or sys.stderr, auto_flush=True)
        # Lambda's Invoke API for the functions themselves (the catch-all probes the model functions for readiness)
        self.lambda_endpoint = LambdaEndpoint(self.runner, self.log)
        self.runtime.extra_env["AWS_ENDPOINT_URL_LAMBDA"] = self.lambda_endpoint.url

    def __enter__(self) -> "LocalApp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.lambda_endpoint.stop()
        self.runtime.close()

    def missing_models(self, functions: list[str] | None = None) -> list[str]:
        """One line per model (of ``functions``) whose local model directory is incomplete."""
        return missing_models(self.variables, self.env_vars, functions)

    def invoke(self, function: str, event: dict[str, Any] | str) -> Any:
        """Invoke one function by logical id and return its decoded JSON response."""
        if self.functions.get(function) is None:
            names = sorted(f.name for f in self.functions.get_all())
            raise KeyError(f"function {function!r} is not in the template; choose one of {names}")
        with StringIO() as out:
            body = event if isinstance(event, str) else json.dumps(event)
            self.runner.invoke(function, body, stdout=StreamWriter(out, auto_flush=True), stderr=self.log)
            return json.loads(out.getvalue())

    def serve_api(self, port: int = 3000, *, api_keys: bool = True, tenants: str | Path = DEFAULT_LOCAL_TENANTS) -> "ApiServer":
        """Serve the API; ``api_keys=False`` skips key checks, throttling and quotas (as ``sam local start-api`` does)."""
        api = ApiProvider(self.stacks, cwd=os.getcwd()).api
        service = ApiGatewayService(api=api, lambda_runner=self.runner, port=port, host="127.0.0.1", stderr=self.log)
        if api_keys:
            service.gate = ApiKeyGate.from_template(self.resources, LocalTenants(tenants, plans_from_template(self.resources)))
        service.create()
        return ApiServer(service, port)

    @property
    def resources(self) -> dict[str, Any]:
        """The template's resources (parameters resolved by SAM), for the API-key gate."""
        return self.stacks[0].resources


class LambdaEndpoint:
    """SAM CLI's local Lambda service (what ``sam local start-lambda`` serves: the Invoke API) on 127.0.0.1, for
    SDK calls the functions make to other functions of the template; stopped with the app."""

    def __init__(self, runner: LocalLambdaRunner, log) -> None:
        from samcli.local.lambda_service.local_lambda_http_service import LocalLambdaHttpService

        service = LocalLambdaHttpService(lambda_runner=runner, port=0, host="127.0.0.1", stderr=log)
        service.create()
        self._server = make_server("127.0.0.1", 0, service._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="modelfn-lambda-endpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class FunctionError(Exception):
    """The function raised, crashed or timed out: API Gateway answers 502 for a Lambda proxy integration."""


class ApiGatewayService(LocalApigwService):
    """SAM's API Gateway emulation, with API Gateway's 502 for function errors and its documented binary rule,
    and (when ``gate`` is set) its API-key check, usage-plan throttling and quotas."""

    gate: ApiKeyGate | None = None

    def _request_handler(self, **kwargs):
        if self.gate is not None:
            route = self._get_current_route(request)
            decision = self.gate.check(route.function_name, route.path, request.headers.get(API_KEY_HEADER))
            if isinstance(decision, Refused):
                body = json.dumps({"error": decision.message})
                return self.service_response(body, {"Content-Type": "application/json"}, decision.status)
            g.modelfn_tenant = decision.tenant
        return _as_gateway_error(super()._request_handler(**kwargs))

    def _generate_lambda_event(self, flask_request, route, method, endpoint):
        event = super()._generate_lambda_event(flask_request, route, method, endpoint)
        tenant = getattr(g, "modelfn_tenant", None)
        if tenant is not None and route.event_type == Route.API:  # API Gateway puts the key into the REST event
            event["requestContext"]["identity"].update(apiKey=flask_request.headers.get(API_KEY_HEADER), apiKeyId=tenant.id)
        return event

    def create(self):
        super().create()
        self._app.register_error_handler(FunctionError, lambda error: _as_gateway_error(ServiceErrorResponses.lambda_failure_response()))
        # The deployed API maps MISSING_AUTHENTICATION_TOKEN (no such route) to a JSON 404; SAM answers 403.
        for status in (404, 405):
            self._app.register_error_handler(status, _no_route)

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


def _as_gateway_error(response):
    """SAM answers a failed function with ``{"message": "Internal server error"}``; the deployed API's DEFAULT_5XX
    gateway response (catalog.ERROR_TEMPLATE) writes ``{"error": ...}``, the one error shape the OpenAPI document
    promises."""
    if getattr(response, "status_code", None) == 502 and response.is_json and set(response.get_json(silent=True) or {}) == {"message"}:
        response.set_data(json.dumps({"error": response.get_json()["message"]}))
    return response


def _no_route(error: HTTPException):
    from flask import jsonify, make_response, request

    message = f"no route {request.method} {request.path}; see GET / or GET /openapi.json for this API's routes"
    return make_response(jsonify({"error": message}), 404)


class ApiServer:
    """The emulated API on 127.0.0.1 in a background thread; ``stop()`` or idle shutdown ends it."""

    def __init__(self, service: LocalApigwService, port: int) -> None:
        self.last_request = time.monotonic()
        self.gate: ApiKeyGate | None = getattr(service, "gate", None)
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
    """Print the function's response; exit 1 when the function failed (its error in one line), 2 for bad input."""
    event = sys.stdin.read() if args.event == "-" else Path(args.event).read_text()
    stop_on_signals()
    try:
        with _app(args) as app, _cloud(args, app) as cloud:
            if _report_missing(app, [args.function]):
                return 2
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
    if isinstance(response, dict) and "errorType" in response and "statusCode" not in response:
        message = str(response.get("errorMessage", "")).strip().splitlines() or [""]
        print(f"error: {args.function} failed: {response['errorType']}: {message[-1]} (its log is above)", file=sys.stderr)
        return 1
    status = response.get("statusCode", response.get("status")) if isinstance(response, dict) else None
    if isinstance(status, int) and status_class(status) == "server_error":  # it answered, but failed (e.g. 503 not ready)
        body = response.get("body") or response.get("error") or ""
        print(f"error: {args.function} failed: answered {status}: {str(body)[:300]}", file=sys.stderr)
        return 1
    return 0


def _cloud(args: Namespace, app: LocalApp):
    """A LocalCloud (moto on 127.0.0.1) when ``--moto`` was given, else a context that does nothing."""
    from contextlib import nullcontext

    if not getattr(args, "moto", False):
        return nullcontext(None)
    from .cloud import LocalCloud

    return LocalCloud(app)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the command like Ctrl-C (SIGINT): the ``with LocalApp`` block then stops every sandbox."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def _first_tenant(app: LocalApp, path: str | Path, port: int) -> None:
    """A fresh project has no local tenant, so every model route would answer 403: create ``dev`` on the most
    generous plan and print its key once (`modelfn tenants list --local` shows the tenants later)."""
    from ..tenants import LocalTenants
    from .apikeys import plans_from_template

    plans = plans_from_template(app.resources)
    tenants = LocalTenants(path, plans)
    if not plans or tenants.list():
        return
    plan = max(plans.values(), key=lambda limits: (limits.rate_limit, limits.quota or float("inf"))).name
    tenant = tenants.create("dev", plan)
    print(f"no local tenant yet: created tenant dev (plan {plan}) in {path}; its API key, shown once: {tenant.key}\n"
          f"  e.g. curl -H 'x-api-key: {tenant.key}' http://127.0.0.1:{port}/v2/models/<name>/ready", flush=True)


def start_api(args: Namespace) -> int:
    stop_on_signals()  # SIGTERM/SIGHUP: leaving the contexts below stops every sandbox and moto
    with _app(args, max_sandboxes=args.max_sandboxes) as app, _cloud(args, app) as cloud:
        if _report_missing(app):
            return 2
        if cloud:
            cloud.deliver_in_background()
            print(f"AWS on {cloud.endpoint} (moto): data bucket {cloud.data_bucket}; S3 and SQS events are delivered "
                  "to the functions as they arrive", flush=True)
        if not args.no_api_keys:
            _first_tenant(app, args.tenants, args.port)
        server = app.serve_api(args.port, api_keys=not args.no_api_keys, tenants=args.tenants)
        routes = ApiProvider(app.stacks, cwd=os.getcwd()).api.routes
        for route in sorted(routes, key=lambda r: r.path):
            print(f"  {route.function_name:>18}  {','.join(sorted(route.methods)):<40} {server.url}{route.path}")
        if server.gate is not None and server.gate.required:
            print(f"API keys from {args.tenants} are required on model routes (x-api-key header); "
                  "create one with `modelfn tenants create NAME --plan PLAN --local`")
        print(f"API listening on {server.url} (Ctrl-C to stop); playground: {server.url}/, OpenAPI: {server.url}/openapi.json",
              flush=True)
        try:
            server.wait(args.idle_shutdown)
        finally:
            server.stop()
    return 0


def _without_deployed_tables(env_vars: dict[str, Any] | None) -> dict[str, Any]:
    """Locally, ``Ref: UsageTable`` resolves to the logical id, a table that exists nowhere: meter nothing
    unless the environment names a table (as ``make demo`` does with a moto server)."""
    merged = dict(env_vars or {})
    merged["Parameters"] = {USAGE_TABLE_ENV: "", **(merged.get("Parameters") or {})}
    return merged


def _app(args: Namespace, **kwargs: Any) -> LocalApp:
    env_vars = json.loads(Path(args.env_vars).read_text()) if args.env_vars else None
    overrides = dict(item.split("=", 1) for item in args.parameter_overrides)
    store = None
    if "ModelBucket" not in overrides:
        store = Path(args.template).resolve().parent / DEFAULT_STORE
        print(f"serving models from the local store {store}/<name>/<version>/ "
              "(--parameter-overrides ModelBucket=BUCKET serves them from S3)", file=sys.stderr)
    return LocalApp(args.template, env_vars=env_vars, parameter_overrides=overrides, python=args.python,
                    model_store=store, **kwargs)


def _report_missing(app: LocalApp, functions: list[str] | None = None) -> bool:
    problems = app.missing_models(functions)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return bool(problems)
