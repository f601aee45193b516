"""The OpenAPI document as a test oracle: is this answer (status, headers, body) one the document describes?

OpenAPI 3.1 schemas are JSON Schema 2020-12, so ``jsonschema`` validates bodies against the document itself
(resolved through a ``referencing`` registry); the rest of the response object (which statuses, which media
types, which headers are required) is read here. openapi-core does the same job, but its releases pin
openapi-spec-validator and openapi-schema-validator below the ones this project uses.

Example:
    >>> contract = Contract(document)                                       # doctest: +SKIP
    >>> contract.check_response("GET", "/v2/health/live", 200, {"Content-Type": "application/json"}, b'{"live":true}')
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents({"$schema": "https://json-schema.org/draft/2020-12/schema", **document})
        self.registry = Registry().with_resource("urn:api", resource)
        self.templates = [(re.compile(_pattern(path)), path) for path in document["paths"]]

    def path_of(self, path: str) -> str | None:
        """The document's path template a concrete path matches (``/v2/models/m/versions/{version}/infer``)."""
        return next((template for pattern, template in self.templates if pattern.fullmatch(path)), None)

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        template = self.path_of(path)
        return self.document["paths"][template].get(method.lower()) if template else None

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        """A validator of ``schema`` (a document node: ``$ref`` into the document resolve)."""
        return Draft202012Validator(_rooted(schema), registry=self.registry)

    def request_schema(self, method: str, path: str, media_type: str = "application/json") -> Draft202012Validator:
        operation = self.operation(method, path)
        assert operation is not None and "requestBody" in operation, f"{method} {path} takes no documented body"
        return self.validator(operation["requestBody"]["content"][media_type]["schema"])

    def response_of(self, method: str, path: str, status: int) -> dict[str, Any]:
        """The documented response object for an answer; AssertionError naming what is undocumented."""
        template = self.path_of(path)
        assert template is not None, f"{path} is not a documented path"
        item = self.document["paths"][template]
        operation = item.get("get" if method.upper() == "HEAD" else method.lower())  # HEAD: GET's status and headers
        if operation is None:
            assert status == 405, f"{method} {path} is not documented, so it must answer 405, not {status}"
            return self.resolve({"$ref": "#/components/responses/MethodNotAllowed"})
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {path} answered {status}; documented: {sorted(responses)}"
        return self.resolve(responses[str(status)])

    def check_response(self, method: str, path: str, status: int, headers: dict[str, str], body: bytes) -> None:
        """AssertionError unless status, required headers, media type and body are as the document says."""
        response = self.response_of(method, path, status)
        folded = {key.lower(): value for key, value in headers.items()}
        for name, header in (response.get("headers") or {}).items():
            header = self.resolve(header)
            if header.get("required"):
                assert name.lower() in folded, f"{method} {path} {status}: header {name} missing"
                value = folded[name.lower()]
                if header["schema"].get("type") == "integer":
                    assert value.isdigit(), f"{method} {path} {status}: header {name}: {value!r} is not an integer"
        if method.upper() == "HEAD":
            assert body == b"", f"HEAD {path} answered a body"
            return
        media_type = folded.get("content-type", "").split(";")[0].strip()
        content = response.get("content") or {}
        assert media_type in content, f"{method} {path} {status}: Content-Type {media_type!r}; documented: {sorted(content)}"
        if media_type == "application/json":
            instance = json.loads(body)
            errors = sorted(self.validator(content[media_type]["schema"]).iter_errors(instance), key=lambda e: e.path)
            assert not errors, f"{method} {path} {status}: {errors[0].message[:300]} at {list(errors[0].absolute_path)}"

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node


def _rooted(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its local ``$ref`` (``#/components/...``) pointing into the registered document."""
    text = json.dumps(schema).replace('"$ref": "#/', '"$ref": "urn:api#/')
    return json.loads(text)


def _pattern(template: str) -> str:
    parts = re.split(r"(\{[^}]+\})", template)
    return "".join("[^/:]+" if part.startswith("{") else re.escape(part) for part in parts)
