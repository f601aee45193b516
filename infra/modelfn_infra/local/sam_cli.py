"""SAM CLI, the one place the local runtime touches it: template loading, the Lambda runner, API Gateway's and
Lambda's local services, the private methods modelfn overrides and the Lambda RIE binary SAM CLI ships.

SAM CLI has no Python API, so all of this is its internals. This module imports every piece modelfn uses and
checks, when it is imported (at the start of ``modelfn local ...``), that the installed SAM CLI is the series it
was written against and that each private entry point still has the shape it relies on. Otherwise it stops with
one line naming the supported version (``SamCliMismatch``, a ``SystemExit``: uncaught, Python prints the line and
exits 1)::

    modelfn local needs aws-sam-cli 1.170.x (found 1.171.0: LocalApigwService._request_handler changed); pip install 'aws-sam-cli==1.170.*'

``tests/local/test_sam_cli.py`` pins each behaviour relied on, one small test per entry point, so an upgrade shows
exactly what broke.

Example:
    >>> stacks = load_stacks(Path("template.yaml"), {"ModelBucket": "unused"})            # doctest: +SKIP
    >>> runner = lambda_runner(runtime, function_provider(stacks), Path("."), "us-east-1", {})  # doctest: +SKIP
    >>> app = api_gateway_app(stacks, runner, writer(sys.stderr))  # a WSGI app: serve it    # doctest: +SKIP
"""

from __future__ import annotations

import base64
import inspect
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("SAM_CLI_TELEMETRY", "0")

SUPPORTED_SERIES = "1.170"
PIN = f"aws-sam-cli=={SUPPORTED_SERIES}.*"


class SamCliMismatch(SystemExit):
    """The installed SAM CLI is not the one this module was written against; the message is one line."""


def _mismatch(found: str, problems: list[str]) -> SamCliMismatch:
    detail = f"{found}: {'; '.join(problems)}" if problems else found
    return SamCliMismatch(f"modelfn local needs aws-sam-cli {SUPPORTED_SERIES}.x (found {detail}); pip install '{PIN}'")


try:
    import samcli
    from flask import g, jsonify, make_response, request
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
    from samcli.lib.providers.api_provider import ApiProvider
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
    from samcli.lib.utils.stream_writer import StreamWriter
    from samcli.local.apigw.exceptions import LambdaResponseParseException
    from samcli.local.apigw.local_apigw_service import LocalApigwService
    from samcli.local.apigw.route import Route
    from samcli.local.apigw.service_error_responses import ServiceErrorResponses
    from samcli.local.lambda_service.local_lambda_http_service import LocalLambdaHttpService
    from samcli.local.lambdafn.config import FunctionConfig
    from samcli.local.lambdafn.env_vars import EnvironmentVariables
    from samcli.local.lambdafn.runtime import LambdaRuntime
except ImportError as error:  # a module moved, or SAM CLI is not installed at all
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("aws-sam-cli")
    except PackageNotFoundError:
        raise _mismatch("none installed", []) from None
    raise _mismatch(installed, [f"cannot import {error.name or error}"]) from None


RIE_BINARY = Path(samcli.__file__).parent / "local" / "rapid" / (
    f"aws-lambda-rie-{'arm64' if os.uname().machine in ('aarch64', 'arm64') else 'x86_64'}"
)
"""The Lambda Runtime Interface Emulator SAM CLI ships (it copies it into its containers; modelfn runs it on the host)."""

OWNERS = {owner.__name__: owner for owner in (
    LocalApigwService, LocalLambdaHttpService, LocalLambdaRunner, LambdaRuntime, FunctionConfig, EnvironmentVariables,
    SamLocalStackProvider, ServiceErrorResponses, Route,
)}

# Each callable modelfn overrides or calls, with the parameters it relies on, in order. "prefix": SAM may add
# optional parameters after them; "subset": keyword arguments modelfn passes (or attributes it reads) are all there.
SIGNATURES: dict[str, tuple[tuple[str, ...], str]] = {
    "LocalApigwService.__init__": (("self", "api", "lambda_runner", "static_dir", "port", "host", "stderr"), "prefix"),
    "LocalApigwService.create": (("self",), "exact"),
    "LocalApigwService._request_handler": (("self", "kwargs"), "exact"),
    "LocalApigwService._get_current_route": (("self", "flask_request"), "exact"),
    "LocalApigwService._generate_lambda_event": (("self", "flask_request", "route", "method", "endpoint"), "exact"),
    "LocalApigwService._invoke_lambda_function": (("self", "lambda_function_name", "event", "tenant_id"), "exact"),
    "LocalApigwService._parse_v1_payload_format_lambda_output": (
        ("lambda_output", "binary_types", "flask_request", "event_type"), "exact"),
    "LocalApigwService.service_response": (("body", "headers", "status_code"), "exact"),
    "LocalLambdaHttpService.__init__": (("self", "lambda_runner", "port", "host", "stderr"), "prefix"),
    "LocalLambdaHttpService.create": (("self",), "exact"),
    "LocalLambdaRunner.__init__": (
        ("local_runtime", "function_provider", "cwd", "real_path", "aws_region", "env_vars_values"), "subset"),
    "LocalLambdaRunner.invoke": (("self", "function_identifier", "event", "tenant_id", "stdout", "stderr"), "prefix"),
    "LocalLambdaRunner.get_invoke_config": (("self", "function"), "prefix"),
    # HostLambdaRuntime stands in for LambdaRuntime: the runner calls invoke(config, event, tenant_id, stdout=, stderr=, ...)
    "LambdaRuntime.invoke": (("self", "function_config", "event", "tenant_id"), "prefix"),
    # ... with a FunctionConfig whose attributes HostLambdaRuntime reads
    "FunctionConfig.__init__": (("name", "handler", "code_abs_path", "memory", "timeout", "env_vars"), "subset"),
    "EnvironmentVariables.resolve": (("self",), "exact"),
    "SamLocalStackProvider.get_stacks": (("template_file", "stack_path", "name", "parameter_overrides"), "prefix"),
    "ServiceErrorResponses.lambda_failure_response": (("args",), "exact"),
    # api_gateway_app clears each route's authorizer (modelfn's admit hook authenticates instead)
    "Route.__init__": (("authorizer_name", "authorizer_object"), "subset"),
}

ASSIGNED_ATTRIBUTES = {"LocalApigwService.create": "_app", "LocalLambdaHttpService.create": "_app"}
"""Private attributes read from outside: the Flask app each service's ``create()`` builds."""


def _entry_point(name: str) -> Any:
    owner, attribute = name.split(".")
    return getattr(OWNERS[owner], attribute, None)


def problems() -> list[str]:
    """What differs from the SAM CLI this module was written against (``[]``: nothing), one phrase per entry point."""
    found = []
    for name, (expected, rule) in SIGNATURES.items():
        function = _entry_point(name)
        if function is None:
            found.append(f"{name} is gone")
            continue
        try:
            parameters = tuple(inspect.signature(function).parameters)
        except (TypeError, ValueError):
            parameters = ()
        if not _matches(parameters, expected, rule):
            found.append(f"{name} changed")
    for name, attribute in ASSIGNED_ATTRIBUTES.items():
        if attribute not in getattr(getattr(_entry_point(name), "__code__", None), "co_names", ()):
            found.append(f"{name} no longer sets {attribute}")
    if getattr(Route, "API", None) != "Api":
        found.append("Route.API changed")
    if not (RIE_BINARY.is_file() and os.access(RIE_BINARY, os.X_OK)):
        found.append(f"no Lambda RIE at {RIE_BINARY}")
    return found


def _matches(parameters: tuple[str, ...], expected: tuple[str, ...], rule: str) -> bool:
    if rule == "exact":
        return parameters == expected
    if rule == "prefix":
        return parameters[: len(expected)] == expected
    return set(expected) <= set(parameters)


def require_supported() -> None:
    """Raise ``SamCliMismatch`` unless the installed SAM CLI is the supported series with every entry point intact."""
    version = getattr(samcli, "__version__", "unknown")
    found = problems()
    if found or not version.startswith(SUPPORTED_SERIES + "."):
        raise _mismatch(version, found)


require_supported()


# -- the template, as SAM CLI reads it ----------------------------------------------------------------------------

def load_stacks(template: Path, parameter_overrides: Mapping[str, str]) -> list[Any]:
    """The template's stacks (SAM's transform applied, parameters resolved); ``stacks[0].resources`` is the root's."""
    stacks, _ = SamLocalStackProvider.get_stacks(str(template), parameter_overrides=dict(parameter_overrides))
    return stacks


def function_provider(stacks: list[Any]) -> SamFunctionProvider:
    """The template's functions: ``.get_all()`` (each with ``.name`` and ``.environment``) and ``.get(logical_id)``."""
    return SamFunctionProvider(stacks)


def api_routes(stacks: list[Any]) -> list[Any]:
    """The API's routes (``function_name``, ``path``, ``methods``), as SAM's API provider reads them."""
    return ApiProvider(stacks, cwd=os.getcwd()).api.routes


def writer(stream: Any) -> StreamWriter:
    """SAM's stream writer (``write_str``, ``flush``) over a text stream, flushed on every write."""
    return StreamWriter(stream, auto_flush=True)


def lambda_runner(runtime: Any, functions: SamFunctionProvider, root: Path, region: str, env_vars: dict[str, Any]) -> LocalLambdaRunner:
    """SAM's Lambda runner (template, Globals, environment, ``--env-vars``) driving ``runtime`` (a ``LambdaRuntime``
    look-alike: ``invoke(function_config, event, tenant_id, *, stdout, stderr, **_)``)."""
    return LocalLambdaRunner(local_runtime=runtime, function_provider=functions, cwd=str(root), real_path=str(root),
                             aws_region=region, env_vars_values=env_vars)


def function_environment(runner: LocalLambdaRunner, function: Any) -> dict[str, str]:
    """The environment ``function`` runs with: template variables, Globals and ``--env-vars`` resolved by SAM."""
    return runner.get_invoke_config(function).env_vars.resolve()


def lambda_invoke_app(runner: LocalLambdaRunner, log: StreamWriter) -> Any:
    """The WSGI app of SAM's local Lambda service (``sam local start-lambda``: the Invoke API) over ``runner``."""
    service = LocalLambdaHttpService(lambda_runner=runner, port=0, host="127.0.0.1", stderr=log)
    service.create()
    return service._app


# -- API Gateway: SAM's emulation with three behaviours of the deployed API that SAM lacks --------------------------

@dataclass(frozen=True)
class Refusal:
    """An answer given before the route's function runs (API Gateway's 403/429 for keys, throttling and quotas)."""

    status: int
    body: dict[str, Any]


Admit = Callable[[str, str, Any], "Refusal | dict[str, dict[str, Any]] | None"]
"""``admit(function, route_path, request)`` (the Flask request: headers, method, raw URI, body): a Refusal, or what the
REST event's ``requestContext`` gets, by part (``{"identity": {"apiKeyId": ...}, "authorizer": {...}}``: fields merged
into ``identity``, ``authorizer`` set), or None to add nothing."""


class FunctionError(Exception):
    """The function raised, crashed or timed out: API Gateway answers 502 for a Lambda proxy integration."""


def api_gateway_app(stacks: list[Any], runner: LocalLambdaRunner, log: StreamWriter, *, admit: Admit | None = None) -> Any:
    """The WSGI app of SAM's API Gateway emulation for the template's API, with ``admit`` run before each function."""
    api = ApiProvider(stacks, cwd=os.getcwd()).api
    for route in api.routes:  # admit authenticates (SigV4, JWT) as the deployed authorizers do; SAM must not run the
        route.authorizer_name, route.authorizer_object = None, None  # authorizer function (it needs AWS and the issuer)
    service = _ApiGatewayService(api=api, lambda_runner=runner, port=0, host="127.0.0.1", stderr=log)
    service.admit = admit
    service.create()
    return service._app


class _ApiGatewayService(LocalApigwService):
    """API Gateway's 502 for function errors, its documented binary rule, its JSON 404 for no route, and the ``admit``
    hook (API keys, usage-plan throttling and quotas) before the function runs."""

    admit: Admit | None = None

    def _request_handler(self, **kwargs):
        if self.admit is not None:
            route = self._get_current_route(request)
            decision = self.admit(route.function_name, route.path, request)
            if isinstance(decision, Refusal):
                return self.service_response(json.dumps(decision.body), {"Content-Type": "application/json"}, decision.status)
            g.modelfn_identity = decision
        return _as_gateway_error(super()._request_handler(**kwargs))

    def _generate_lambda_event(self, flask_request, route, method, endpoint):
        event = super()._generate_lambda_event(flask_request, route, method, endpoint)
        context = getattr(g, "modelfn_identity", None)
        if context and route.event_type == Route.API:  # API Gateway puts the key and the authorizer's answer in it
            event["requestContext"]["identity"].update(context.get("identity") or {})
            if "authorizer" in context:
                event["requestContext"]["authorizer"] = context["authorizer"]
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


def _as_gateway_error(response: Any) -> Any:
    """SAM answers a failed function with ``{"message": "Internal server error"}``; the deployed API's DEFAULT_5XX
    gateway response (catalog.ERROR_TEMPLATE) writes ``{"error": ...}``, the one error shape the OpenAPI document
    promises."""
    if getattr(response, "status_code", None) == 502 and response.is_json and set(response.get_json(silent=True) or {}) == {"message"}:
        response.set_data(json.dumps({"error": response.get_json()["message"]}))
    return response


def _no_route(error: Exception):
    message = f"no route {request.method} {request.path}; see GET / or GET /openapi.json for this API's routes"
    return make_response(jsonify({"error": message}), 404)
