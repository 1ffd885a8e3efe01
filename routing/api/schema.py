"""Tells drf-spectacular how capture sources authenticate, so the docs page offers the token."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SourceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "routing.api.auth.SourceTokenAuthentication"
    name = "sourceToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Capture-source token: `Token <key>` (from `manage.py create_source NAME`).",
        }
