"""Finding 11 (docs/security.md): a Content-Security-Policy on every page, sessions that last a working day
(configurable), and X-Forwarded-Proto trusted only when a proxy is declared."""

import re

import pytest
from django.urls import reverse

from tests.factories import ExceptionItemFactory
from tests.test_deploy_settings import PRODUCTION_ENV, manage

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
INLINE_HANDLER_OR_STYLE = re.compile(r"""\s(on[a-z]+|style)\s*=\s*["']|<style""", re.IGNORECASE)


def policy(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/accounts/login/", "/console/", "/console/items/", "/console/rules/", "/console/dashboard/", "/api/docs/"],
)
def test_every_page_has_a_policy_without_inline_script_and_obeys_it(client, ops_person, path):
    ExceptionItemFactory()
    client.force_login(ops_person)

    response = client.get(path)

    assert response.status_code == 200
    directives = policy(response)
    assert directives["script-src"] == "script-src 'self'"
    assert directives["style-src"] == "style-src 'self'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html)
    assert not INLINE_HANDLER_OR_STYLE.search(html), INLINE_HANDLER_OR_STYLE.search(html)


@pytest.mark.django_db
def test_api_answers_carry_the_policy_too(source_client):
    assert policy(source_client.get("/api/v1/leads/1/"))["default-src"] == "default-src 'self'"


@pytest.mark.django_db
def test_a_session_lasts_eight_hours_by_default(client, ops_person):
    client.post(reverse("login"), {"username": "olga", "password": "pw-for-tests"})

    assert client.session.get_expiry_age() == 8 * 3600
    assert client.cookies["sessionid"]["max-age"] == 8 * 3600


def setting_in_production(name: str, **env) -> str:
    code = f"from django.conf import settings; print(repr(getattr(settings, {name!r}, None)))"
    result = manage("shell", "-c", code, **PRODUCTION_ENV, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_session_lifetime_is_set_by_the_environment():
    assert setting_in_production("SESSION_COOKIE_AGE", DJANGO_SESSION_COOKIE_AGE="3600") == "3600"


def test_forwarded_proto_is_not_trusted_unless_a_proxy_is_declared():
    assert setting_in_production("SECURE_PROXY_SSL_HEADER") == "None"
    assert setting_in_production("SECURE_PROXY_SSL_HEADER", HANDOFF_PROXY_COUNT="1") == (
        "('HTTP_X_FORWARDED_PROTO', 'https')"
    )
