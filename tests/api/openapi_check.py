"""Checks a live answer of the API against /api/schema/: the operation its method and URL reach, a status the
operation documents, and a body valid (JSON Schema 2020-12, OpenAPI 3.1's dialect, formats checked) against that
status's schema. Every checked answer is recorded, so a test can say which operations and statuses it drove."""

import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote

from django.test import Client
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_URI = "urn:handoff:openapi"


def _escape(part: str) -> str:
    """A JSON Pointer token (RFC 6901), percent-encoded as a URI fragment needs."""
    return quote(part.replace("~", "~0").replace("/", "~1"), safe="~")


def served_document() -> dict:
    """The document as clients download it."""
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)


@dataclass(frozen=True)
class Answer:
    method: str
    path: str  # the template, e.g. /api/v1/exceptions/{id}/
    status: int


@dataclass
class ResponseChecker:
    document: dict
    seen: set[Answer] = field(default_factory=set)

    def __post_init__(self):
        # `#/components/...` references resolve against the document itself.
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(DOCUMENT_URI, resource)
        # Concrete segments first, so `/accounts/match/` wins over `/accounts/{account_id}/`, as Django routes.
        self._routes = sorted(
            ((self._pattern(path), path) for path in self.document["paths"]),
            key=lambda route: route[1].count("{"),
        )

    @staticmethod
    def _pattern(template: str) -> re.Pattern:
        parts = re.split(r"(\{[^}]+\})", template)
        return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts) + "$")

    def operation_for(self, method: str, path: str) -> tuple[str, dict]:
        for pattern, template in self._routes:
            if pattern.match(path) and method.lower() in self.document["paths"][template]:
                return template, self.document["paths"][template][method.lower()]
        raise AssertionError(f"{method} {path}: no operation of the schema serves it")

    def check(self, response):
        """Fail, saying what differs, unless `response` (a Django test client answer) is one the schema documents."""
        request = response.wsgi_request
        template, operation = self.operation_for(request.method, request.path)
        where = f"{request.method} {request.get_full_path()} → {response.status_code}"
        code = str(response.status_code) if str(response.status_code) in operation["responses"] else "default"
        documented = operation["responses"].get(code)
        assert documented is not None, f"{where}: status not documented ({sorted(operation['responses'])})"
        body = response.content
        content = documented.get("content")
        if not content:
            assert not body, f"{where}: documented without a body, answered {body[:200]!r}"
        else:
            media_type = response["Content-Type"].split(";")[0].strip()
            assert media_type in content, f"{where}: {media_type} is not among {sorted(content)}"
            if content[media_type].get("schema") is not None:
                pointer = "/".join(
                    _escape(part)
                    for part in ("paths", template, request.method.lower(), "responses", code, "content", media_type)
                )
                self.validate(json.loads(body), f"/{pointer}/schema", where=where)
        self.seen.add(Answer(request.method, template, response.status_code))
        return response

    def validate(self, instance, pointer: str, *, where: str) -> None:
        """Validate against the schema at `pointer` inside the document, where its `#/components/…` resolve."""
        schema = {"$ref": f"{DOCUMENT_URI}#{pointer}"}
        validator = OAS31Validator(schema, registry=self._registry, format_checker=OAS31Validator.FORMAT_CHECKER)
        error = best_match(validator.iter_errors(instance))
        if error is not None:
            at = "/".join(str(part) for part in error.absolute_path) or "(the body)"
            raise AssertionError(f"{where}: body does not match the schema at {at}: {error.message[:500]}")

    def operations(self) -> set[tuple[str, str]]:
        return {
            (method.upper(), path)
            for path, methods in self.document["paths"].items()
            for method in methods
            if method in ("get", "put", "post", "patch", "delete")
        }


class CheckedClient(Client):
    """Django's test client, checking every answer against the schema."""

    def __init__(self, checker: ResponseChecker, token: str | None = None, **defaults):
        if token:
            defaults["HTTP_AUTHORIZATION"] = f"Token {token}"
        super().__init__(**defaults)
        self.checker = checker

    def request(self, **request):
        return self.checker.check(super().request(**request))

    def post_json(self, path: str, body=None, **extra):
        """POST `body` as JSON; with no body, POST nothing (and no Content-Type), as a client with nothing to say."""
        data = "" if body is None else json.dumps(body)
        return self.post(path, data=data, content_type="application/json", **extra)
