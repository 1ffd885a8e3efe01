"""Production settings: `check --deploy` is clean, and a missing secret key fails loudly."""

import os
import subprocess
import sys

from tests.conftest import ROOT

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "k3y-for-the-deploy-check-only-9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1",
    "DJANGO_ALLOWED_HOSTS": "handoff.example.com",
    "HANDOFF_SECRETS_KEY": "cHJvZC1zZXR0aW5ncy1jaGVjay1vbmx5LWtleS0wMDA=",
}


def manage(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "HANDOFF_SECRETS"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing_for_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_a_secret_key_refuses_to_start():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    result = manage("check", **env)
    assert result.returncode != 0
    assert "Set the environment variable DJANGO_SECRET_KEY." in result.stderr


def test_a_bad_boolean_is_refused_with_the_variable_named():
    result = manage("check", **{**PRODUCTION_ENV, "DJANGO_DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


def test_production_without_a_secrets_key_refuses_to_start():
    """Delivery secrets and enrichment credentials are encrypted with it (docs/security.md, finding 7)."""
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "HANDOFF_SECRETS_KEY"}
    result = manage("check", **env)
    assert result.returncode != 0
    assert "Set the environment variable HANDOFF_SECRETS_KEY." in result.stderr


def test_a_secrets_key_that_is_not_a_fernet_key_is_refused():
    result = manage("check", **{**PRODUCTION_ENV, "HANDOFF_SECRETS_KEY": "hunter2"})
    assert result.returncode != 0
    assert "HANDOFF_SECRETS_KEY: key 1 is not a Fernet key" in result.stderr
