"""``modelfn local invoke`` and ``modelfn local start-api``: SAM CLI's own template handling and API
Gateway emulation, with functions running in host sandboxes (``sandbox.HostLambdaRuntime``) instead of
Docker containers.

Example:
    >>> with LocalApp("template.yaml") as app:                         # doctest: +SKIP
    ...     server = app.serve_api(port=3000)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from argparse import Namespace
from io import StringIO
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from modelfn_export.defaults import DEFAULT_STORE
from modelfn_runtime.errors import LAMBDA_SYNC_PAYLOAD_LIMIT
from modelfn_runtime.http import status_class
from modelfn_runtime.usage import USAGE_TABLE_ENV
from modelfn_runtime.validation import payload_too_large

from ..catalog import API_KEY_HEADER
from ..tenants import DEFAULT_LOCAL_TENANTS, LocalTenants
from . import sam_cli
from .apikeys import ApiKeyGate, Refused, plans_from_template
from .credentials import AuthSettings, CredentialGate, Incoming
from .issuer import ISSUER_DIRECTORY, LocalIssuer
from .logs import LogSubscription
from .sandbox import HostLambdaRuntime
from .shutdown import stop_on_signals
from .store import local_store_env, missing_models, resolve_relative

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
        self.stacks = sam_cli.load_stacks(template, parameter_overrides or {})
        self.functions = sam_cli.function_provider(self.stacks)
        # template variables per function; local paths in overrides resolve against the project root
        self.variables = {f.name: dict((f.environment or {}).get("Variables") or {}) for f in self.functions.get_all()}
        self.model_store = Path(model_store).resolve() if model_store is not None else None
        env_vars = env_vars or {}
        if self.model_store is not None:
            env_vars = local_store_env(self.variables, self.model_store, env_vars)
        self.env_vars = resolve_relative(env_vars, template.parent)
        self.runtime = HostLambdaRuntime(python=python, max_sandboxes=max_sandboxes, rie=sam_cli.RIE_BINARY)
        self.region = os.environ["AWS_DEFAULT_REGION"]
        self.runner = sam_cli.lambda_runner(self.runtime, self.functions, template.parent, self.region,
                                            _without_deployed_tables(self.env_vars))
        self.log_file = log_stream or sys.stderr
        self.log = sam_cli.writer(self.log_file)
        # Lambda's Invoke API for the functions themselves (the catch-all probes the model functions for readiness)
        self.lambda_endpoint = LambdaEndpoint(self.runner, self.log)
        self.runtime.extra_env["AWS_ENDPOINT_URL_LAMBDA"] = self.lambda_endpoint.url
        # the usage table the env-vars name (as `make demo` does): the functions' metering lines are aggregated into it
        table = ((env_vars or {}).get("Parameters") or {}).get(USAGE_TABLE_ENV)
        self.usage = LogSubscription(table, log=self.log_file) if table else None
        if self.usage is not None:
            self.runtime.log_sink = self.usage.put

    def __enter__(self) -> "LocalApp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the Lambda endpoint and every sandbox; calling it again does nothing."""
        self.lambda_endpoint.stop()
        self.runtime.close()
        if self.usage is not None:  # after the sandboxes: their last lines are delivered too
            self.usage.close()

    def missing_models(self, functions: list[str] | None = None) -> list[str]:
        """One line per model (of ``functions``) whose local model directory is incomplete."""
        return missing_models(self.variables, self.env_vars, functions)

    def function_names(self) -> list[str]:
        """The logical ids of the template's functions."""
        return [function.name for function in self.functions.get_all()]

    def function_environment(self, function: str) -> dict[str, str]:
        """The environment ``function`` runs with (template, Globals and env-vars overrides resolved)."""
        return sam_cli.function_environment(self.runner, self.functions.get(function))

    def invoke(self, function: str, event: dict[str, Any] | str) -> Any:
        """Invoke one function by logical id and return its decoded JSON response."""
        if self.functions.get(function) is None:
            raise KeyError(f"function {function!r} is not in the template; choose one of {sorted(self.function_names())}")
        with StringIO() as out:
            body = event if isinstance(event, str) else json.dumps(event)
            self.runner.invoke(function, body, stdout=sam_cli.writer(out), stderr=self.log)
            return json.loads(out.getvalue())

    def serve_api(self, port: int = 3000, *, api_keys: bool = True, tenants: str | Path = DEFAULT_LOCAL_TENANTS) -> "ApiServer":
        """Serve the API; ``api_keys=False`` skips credentials, key checks, throttling and quotas (as ``sam local
        start-api`` does). With ``auth: jwt`` the local issuer's JWKS is served on 127.0.0.1 too, stopped with the API."""
        if not api_keys:
            return ApiServer(sam_cli.api_gateway_app(self.stacks, self.runner, self.log), port, None)
        directory = LocalTenants(tenants, plans_from_template(self.resources))
        gate = ApiKeyGate.from_template(self.resources, directory)
        jwks = None
        if AuthSettings.from_template(self.resources).mode == "jwt":
            jwks = JwksEndpoint(LocalIssuer(Path(tenants).parent / ISSUER_DIRECTORY))
        credentials = CredentialGate.from_template(self.resources, directory, jwks.url + "/jwks.json" if jwks else None)
        app = sam_cli.api_gateway_app(self.stacks, self.runner, self.log, admit=_admission(gate, credentials))
        return ApiServer(app, port, gate, credentials, companions=[jwks] if jwks else [])

    def routes(self) -> list[Any]:
        """The API's routes (``function_name``, ``path``, ``methods``)."""
        return sam_cli.api_routes(self.stacks)

    @property
    def resources(self) -> dict[str, Any]:
        """The template's resources (parameters resolved by SAM), for the API-key gate."""
        return self.stacks[0].resources


def _admission(keys: ApiKeyGate, credentials: CredentialGate) -> sam_cli.Admit:
    """What API Gateway does before a route's function runs: the mode's credential (SigV4, JWT) if the route has an
    authorizer, then the usage-plan key (the header's, or the authorizer's), throttling and quotas; what it learnt goes
    into the REST event's requestContext."""

    def admit(function: str, path: str, request) -> sam_cli.Refusal | dict[str, dict[str, Any]] | None:
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
        incoming = Incoming(request.method, f"{request.scheme}://{request.host}{raw}", request.headers, request.get_data())
        identity = credentials.authenticate(function, path, incoming)
        if isinstance(identity, Refused):
            return sam_cli.Refusal(identity.status, {"error": identity.message})
        if identity is not None and identity.supplies_key:  # the Lambda authorizer's usageIdentifierKey
            key, decision = None, keys.check_tenant(function, path, identity.tenant)
        else:  # ApiKeySourceType HEADER: the caller's x-api-key, whoever signed the request
            key = request.headers.get(API_KEY_HEADER)
            decision = keys.check(function, path, key)
        if isinstance(decision, Refused):
            return sam_cli.Refusal(decision.status, {"error": decision.message})
        context = {part: dict(fields) for part, fields in (identity.context if identity else {}).items()}
        if decision.tenant is not None:
            context.setdefault("identity", {}).update(apiKeyId=decision.tenant.id, **({"apiKey": key} if key else {}))
        return context or None

    return admit


class _BackgroundServer:
    """A threaded werkzeug server on 127.0.0.1 in a daemon thread; ``stop()`` ends it (again: nothing)."""

    def __init__(self, app, port: int, name: str) -> None:
        self._stopped = False
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        # polled every 0.1 s for shutdown (the default 0.5 s, twice over, was most of a clean stop's time)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class LambdaEndpoint(_BackgroundServer):
    """SAM CLI's local Lambda service (what ``sam local start-lambda`` serves: the Invoke API) on 127.0.0.1, for
    SDK calls the functions make to other functions of the template; stopped with the app."""

    def __init__(self, runner, log) -> None:
        super().__init__(sam_cli.lambda_invoke_app(runner, log), 0, "modelfn-lambda-endpoint")


class JwksEndpoint(_BackgroundServer):
    """The local issuer's JWKS on 127.0.0.1 (what a real issuer serves at its jwks_uri), for the token checks."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer
        super().__init__(issuer.jwks_app(), 0, "modelfn-jwks")


class ApiServer(_BackgroundServer):
    """The emulated API on 127.0.0.1 in a background thread; ``stop()`` or idle shutdown ends it (and its companions,
    e.g. the local issuer's JWKS endpoint)."""

    def __init__(self, app, port: int, gate: ApiKeyGate | None = None, credentials: CredentialGate | None = None,
                 companions: list[_BackgroundServer] | None = None) -> None:
        self.last_request = time.monotonic()
        self.gate, self.credentials = gate, credentials
        self.companions = companions or []
        super().__init__(self._guard(app), port, "modelfn-api")

    def stop(self) -> None:
        super().stop()
        for companion in self.companions:
            companion.stop()

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


def _first_tenant(app: LocalApp, path: str | Path, port: int) -> None:
    """A fresh project has no local tenant, so every model route would answer 403: create ``dev`` on the most
    generous plan and print its key once (`modelfn tenants list --local` shows the tenants later)."""
    from ..tenants import LOCAL_ACCOUNT

    plans = plans_from_template(app.resources)
    tenants = LocalTenants(path, plans)
    if not plans or tenants.list():
        return
    plan = max(plans.values(), key=lambda limits: (limits.rate_limit, limits.quota or float("inf"))).name
    mode = AuthSettings.from_template(app.resources).mode
    tenant = tenants.create("dev", plan, f"arn:aws:iam::{LOCAL_ACCOUNT}:user/dev" if mode == "iam" else None)
    print(f"no local tenant yet: created tenant dev (plan {plan}) in {path}; its API key, shown once: {tenant.key}\n"
          f"  e.g. curl -H 'x-api-key: {tenant.key}' http://127.0.0.1:{port}/v2/models/<name>/ready", flush=True)
    if mode == "iam":
        credentials = tenants.sigv4_credentials("dev")
        print(f"  its local SigV4 credentials: AWS_ACCESS_KEY_ID={credentials.access_key_id} "
              f"AWS_SECRET_ACCESS_KEY={credentials.secret_access_key}", flush=True)
    elif mode == "jwt":
        print("  its access token: `modelfn tenants token dev --local`", flush=True)


def start_api(args: Namespace) -> int:
    """Serve until idle shutdown or a signal (SIGINT, SIGTERM, SIGHUP; see ``shutdown``): 0 once every sandbox stopped."""
    stop_on_signals()
    try:
        with _app(args, max_sandboxes=args.max_sandboxes) as app, _cloud(args, app) as cloud:
            if _report_missing(app):
                return 2
            _serve(args, app, cloud)
    except KeyboardInterrupt:  # a signal before the API was up: the contexts above stopped what had started
        print("interrupted: sandboxes stopped", file=sys.stderr)
        return 130
    return 0


def _serve(args: Namespace, app: LocalApp, cloud) -> None:
    if cloud:
        cloud.deliver_in_background()
        print(f"AWS on {cloud.endpoint} (moto): data bucket {cloud.data_bucket}; S3 and SQS events are delivered "
              "to the functions as they arrive", flush=True)
    if not args.no_api_keys:
        _first_tenant(app, args.tenants, args.port)
    server = app.serve_api(args.port, api_keys=not args.no_api_keys, tenants=args.tenants)
    for route in sorted(app.routes(), key=lambda r: r.path):
        print(f"  {route.function_name:>18}  {','.join(sorted(route.methods)):<40} {server.url}{route.path}")
    mode = server.credentials.settings.mode if server.credentials is not None else "api_key"
    if mode == "iam":
        print(f"auth iam: model routes need a SigV4 signature (service execute-api) with a tenant's local credentials "
              f"from {args.tenants} and its x-api-key (`modelfn tenants create NAME --plan PLAN --local` prints both)")
    elif mode == "jwt":
        print(f"auth jwt: model routes need 'Authorization: Bearer <token>' from the local issuer (issuer "
              f"{server.credentials.settings.issuer}): `modelfn tenants token NAME --local` signs one")
    elif server.gate is not None and server.gate.required:
        print(f"API keys from {args.tenants} are required on model routes (x-api-key header); "
              "create one with `modelfn tenants create NAME --plan PLAN --local`")
    print(f"API listening on {server.url} (Ctrl-C to stop); playground: {server.url}/, OpenAPI: {server.url}/openapi.json",
          flush=True)
    try:
        server.wait(args.idle_shutdown)
    finally:  # no new request, no new event delivery, then every sandbox (in-flight invocations answer as crashed)
        server.stop()
        if cloud:
            cloud.stop_delivery()
        app.close()


def _without_deployed_tables(env_vars: dict[str, Any] | None) -> dict[str, Any]:
    """Locally, ``Ref: UsageTable`` resolves to the logical id, a table that exists nowhere: the aggregator's
    environment (the only function that reads it) names no table unless the env-vars do; ``LocalApp`` aggregates the
    metering lines into that table itself (``logs.LogSubscription``)."""
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
