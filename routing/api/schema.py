"""Tells drf-spectacular how capture sources authenticate, so the docs page offers the token."""

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
            "or a person's API token (`manage.py drf_create_token USERNAME`) for the console API.",
        }
