"""OpenAPI schema extensions: how capture sources authenticate, and the error answers every endpoint gives."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
