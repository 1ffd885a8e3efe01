"""OpenAPI schema extensions: how capture sources authenticate, and the error answers every endpoint gives."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from exceptions.filters import ExceptionFilter


class SourceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "routing.api.auth.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`: a capture source's token (`manage.py create_source NAME`) for intake, "
            "or a person's API token (console: API tokens, or `manage.py create_api_token USERNAME`; it expires) "
            "for the console API.",
        }


ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
    "description": 'What went wrong, e.g. {"detail": "Invalid or revoked token."}',
}
# DRF's validation errors: messages per field (`non_field_errors` for the body as a whole), nested as the input
# is; or a `detail` about the whole request (malformed JSON, a refused action).
ERROR_MESSAGES = {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}}
VALIDATION_ERRORS = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "string"}, ERROR_MESSAGES, {"type": "object"}]},
    "description": 'Messages per field, e.g. {"email": ["Enter a valid email address."]}, or a "detail".',
}

# The answers DRF gives any endpoint before or around its own work, with when they apply.
COMMON_ERRORS = {
    "401": "No token, or an invalid or revoked one.",
    "403": "This kind of caller may not use this operation.",
    "404": "No such object (or page).",
    "400": "Invalid input: messages per field.",
    "415": "The body is not JSON (`Content-Type: application/json`).",
    "429": "Too many failed sign-ins from this address: locked out for a while (`Retry-After`, seconds).",
}


def _applicable(operation: dict) -> set[str]:
    # Every operation needs a token or a session, checks who the caller is, and refuses a locked-out address.
    codes = {"401", "403", "429"}
    parameters = operation.get("parameters", [])
    if any(p["in"] == "path" for p in parameters) or any(p["name"] == "page" for p in parameters):
        codes.add("404")
    if "requestBody" in operation or any(p["in"] == "query" for p in parameters):
        codes.add("400")
    if "requestBody" in operation:
        codes.add("415")
    return codes


def document_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation documents the 400/401/403/404/415/429 it can answer,
    and every error documented with only a description gets the JSON body DRF sends with it. A body a view
    declares itself is kept (a 400 one also allows field errors, when there is a request body to validate)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR)
    schemas.setdefault("ValidationErrors", VALIDATION_ERRORS)
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for code in _applicable(operation):
                responses.setdefault(code, {"description": COMMON_ERRORS[code]})
            for code, response in responses.items():
                if code.startswith("4") and "content" not in response:
                    body = "ValidationErrors" if code == "400" else "Error"
                    response["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}
            if "requestBody" in operation:
                _also_field_errors(responses["400"])
    return result


def _also_field_errors(response: dict) -> None:
    """A view's own 400 body (e.g. a blocked promotion) is one answer; a body that fails validation is another."""
    media = response["content"]["application/json"]
    field_errors = {"$ref": "#/components/schemas/ValidationErrors"}
    if media.get("schema") != field_errors:
        media["schema"] = {"anyOf": [media["schema"], field_errors]}


# Operations whose views name no summary of their own (generic list and detail views): what each one answers.
SUMMARIES = {
    "v1_exceptions_list": "Exception items, filtered and sorted as on the console's list (50 per page)",
    "v1_exceptions_retrieve": "One exception item",
    "v1_incidents_list": "Incidents, newest first",
    "v1_incidents_retrieve": "One incident with its item counts",
    "v1_rules_list": "Every rule with its stage, owner, stored test status and sign-off",
    "v1_rules_retrieve": "One rule with its condition, test cases and versions",
    "v1_rules_replay_retrieve": "A replay's progress and, once finished, its result",
}


# Query parameters a view reads by hand rather than through a FilterSet, which drf-spectacular cannot see.
QUERY_PARAMETERS = {
    "v1_incidents_list": [
        {
            "in": "query",
            "name": "status",
            "description": "Only incidents in these states (repeat it for several).",
            "schema": {"type": "array", "items": {"type": "string", "enum": ["open", "acknowledged", "resolved"]}},
            "style": "form",
            "explode": True,
        }
    ],
}


def complete_for_openapi_31(result, generator, request, public):
    """drf-spectacular postprocessing hook: what the views and DRF leave out or write in OpenAPI 3.0 terms.

    - every operation has a summary (SUMMARIES for the generic views that give none), and its hand-read query
      parameters (QUERY_PARAMETERS);
    - `nullable: true` (DRF's paginator writes it for `next`/`previous`) becomes a `null` type, since OpenAPI
      3.1 has no `nullable` and strict validators refused the first and last page of every list;
    - a JSON-array body is required: without one there is no list, and the view answers 400;
    - an operation that takes no token has `security: []`, so no reader takes it for one whose scheme is missing."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not operation.get("summary") and operation.get("operationId") in SUMMARIES:
                operation["summary"] = SUMMARIES[operation["operationId"]]
            for parameter in QUERY_PARAMETERS.get(operation.get("operationId"), ()):
                parameters = operation.setdefault("parameters", [])
                if all(p["name"] != parameter["name"] for p in parameters):
                    parameters.append(parameter)
            # No token (a webhook its signature authenticates): said outright, not left to a default.
            operation.setdefault("security", [])
            body = operation.get("requestBody")
            if body and all(media.get("schema", {}).get("type") == "array" for media in body["content"].values()):
                body["required"] = True
    _filter_bounds(result)
    _null_as_a_type(result)
    return result


# Form bounds a filter enforces (a 400 otherwise) and its schema should say: FilterSet extra -> JSON Schema.
_BOUNDS = {"min_length": "minLength", "max_length": "maxLength", "min_value": "minimum", "max_value": "maximum"}


def _filter_bounds(result) -> None:
    """The exception lists' query parameters carry the bounds their filters enforce (`q` of 3 to 200 characters,
    `due_within` 0 to 10,080 minutes), which drf-spectacular leaves out: a client generated from the schema
    learns them before the server answers 400."""
    bounds = {
        name: {_BOUNDS[key]: value for key, value in declared.extra.items() if key in _BOUNDS}
        for name, declared in ExceptionFilter.base_filters.items()
    }
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            parameters = operation.get("parameters", [])
            if not any(parameter["name"] == "due_within" for parameter in parameters):
                continue  # not an exception list (they alone filter by due time)
            for parameter in parameters:
                if parameter.get("in") == "query" and bounds.get(parameter["name"]):
                    parameter.setdefault("schema", {}).update(bounds[parameter["name"]])


def _null_as_a_type(node) -> None:
    """Rewrite every `nullable: true` in place as JSON Schema 2020-12 says it: `null` among the types."""
    if isinstance(node, list):
        for child in node:
            _null_as_a_type(child)
        return
    if not isinstance(node, dict):
        return
    if node.get("nullable") is True:
        del node["nullable"]
        kind = node.get("type")
        if isinstance(kind, str):
            node["type"] = [kind, "null"]
        elif isinstance(kind, list):
            node["type"] = [*kind, "null"] if "null" not in kind else kind
        else:  # a $ref or a combination: either it, or null
            alternatives = {key: node.pop(key) for key in list(node) if key in ("$ref", "allOf", "oneOf", "anyOf")}
            node["anyOf"] = [alternatives, {"type": "null"}]
    for child in node.values():
        _null_as_a_type(child)
