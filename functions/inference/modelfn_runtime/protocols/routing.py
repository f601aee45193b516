"""Routes as data. Each protocol declares its own with these types (``server_routes``, ``oip_routes``,
``tfserving_routes``); the service matches requests against them, and the OpenAPI document, the event jobs, the
readiness probe and the template renderer (``gateway``) build their paths from them.

A path is a template: ``{name}`` stands for a model name, and a model route also answers with
``/versions/{version}`` right after the name (``/v2/models/m/versions/2/infer``). This module imports nothing
(no numpy): the catch-all function routes, and answers 404 and 405, with it alone.

Example:
    >>> infer = Route("POST", "/v2/models/{name}/infer", "infer", "oip")
    >>> infer.path_for("digits"), infer.path_for("digits", "2")
    ('/v2/models/digits/infer', '/v2/models/digits/versions/2/infer')
    >>> infer.match("/v2/models/digits/versions/2/infer")
    {'name': 'digits', 'version': '2'}
    >>> match([infer], "GET", "/v2/models/digits/infer").allowed
    ['POST']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

NAME = "{name}"
VERSION = "/versions/{version}"
"""The optional segment after ``{name}`` that names a version."""
_NAME_PATTERN = r"(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"


@dataclass(frozen=True)
class Route:
    """One operation of a protocol: ``method`` on ``path`` (a template) runs the handler named ``operation``.

    ``open`` routes are answered without an API key (health, server metadata, the playground page).
    """

    method: str
    path: str
    operation: str
    protocol: str
    open: bool = False
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        head, found, tail = self.path.partition(NAME)
        regex = re.escape(head) + (_NAME_PATTERN + re.escape(tail) if found else "")
        object.__setattr__(self, "pattern", re.compile(regex))

    @property
    def for_model(self) -> bool:
        """True when the path names a model (its handler serves the model the function loaded)."""
        return NAME in self.path

    @property
    def versioned_path(self) -> str:
        """The template with the version segment: ``/v2/models/{name}/versions/{version}/infer``."""
        head, found, tail = self.path.partition(NAME)
        return f"{head}{NAME}{VERSION}{tail}" if found else self.path

    def path_for(self, name: str | None = None, version: str | None = None) -> str:
        """The concrete path for model ``name`` (and ``version``, when given)."""
        if not self.for_model:
            return self.path
        if name is None:
            raise ValueError(f"route {self.operation!r} ({self.path}) needs a model name")
        path = self.versioned_path if version is not None else self.path
        return path.replace(NAME, name).replace("{version}", str(version))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` is this route's (whatever the method), else None."""
        found = self.pattern.fullmatch(path)
        return {k: v for k, v in found.groupdict().items() if v is not None} if found else None


@dataclass(frozen=True)
class GatewayRoute:
    """One API Gateway route: an ``Api`` event of a function in template.yaml.

    ``path`` uses API Gateway's syntax (``{proxy+}`` matches the rest of the path); ``method`` is GET, POST or ANY;
    ``open`` routes need no API key even where the API requires one.
    """

    event: str
    path: str
    method: str
    open: bool = False

    def for_model(self, name: str) -> "GatewayRoute":
        return GatewayRoute(self.event, self.path.replace(NAME, name), self.method, self.open)


@dataclass(frozen=True)
class Match:
    """What ``match`` found: the route and its path parameters, or no route and the methods the path does allow
    (empty: no route has this path at all)."""

    route: Route | None
    params: dict[str, str] = field(default_factory=dict)
    allowed: list[str] = field(default_factory=list)


def match(routes: Iterable[Route], method: str, path: str) -> Match:
    """The route answering ``method`` on ``path``: a trailing slash is ignored, and HEAD is answered wherever GET is."""
    path = path.rstrip("/") or "/"
    wanted = "GET" if method == "HEAD" else method
    allowed: set[str] = set()
    for route in routes:
        found = route.match(path)
        if found is None:
            continue
        if route.method == wanted:
            return Match(route, found)
        allowed.add(route.method)
    if "GET" in allowed:
        allowed.add("HEAD")
    return Match(None, allowed=sorted(allowed))
