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
}


def manage(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
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
