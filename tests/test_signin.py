"""Finding 3 (docs/security.md): failed sign-ins are counted, logged and locked out, in the console's login
form, the admin's and for API tokens; a lockout lifts after the cool-off or when an admin lifts it."""

import datetime as dt
import logging

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from config.signin import TOKEN_USERNAME
from tests.factories import personal_token

LIMIT = 5  # HANDOFF_LOGIN_FAILURE_LIMIT's default
PASSWORD = "pw-for-tests"  # tests/factories.py UserFactory


def sign_in(client, password, path="/accounts/login/", username="rowan", **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def fail_until_locked(client, path="/accounts/login/", username="rowan", **extra):
    answers = [sign_in(client, f"wrong-{n}", path, username, **extra).status_code for n in range(LIMIT)]
    assert answers == [200] * (LIMIT - 1) + [429], answers


@pytest.mark.django_db
def test_wrong_passwords_lock_the_login_form_even_for_the_right_password(client, rule_owner):
    fail_until_locked(client)

    answer = sign_in(client, PASSWORD)

    assert answer.status_code == 429
    assert "Too many failed sign-ins" in answer.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/console/").status_code == 302  # still signed out


@pytest.mark.django_db
def test_wrong_passwords_lock_the_admin_login_too(client, ops_person):
    fail_until_locked(client, path="/admin/login/", username="olga")

    answer = sign_in(client, PASSWORD, path="/admin/login/", username="olga")

    assert answer.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_few_wrong_passwords_then_the_right_one_still_signs_in(client, rule_owner):
    for n in range(LIMIT - 1):
        sign_in(client, f"wrong-{n}")

    assert sign_in(client, PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username="rowan").exists()  # the count starts again


@pytest.mark.django_db
def test_a_lockout_is_per_address_so_nobody_elsewhere_can_lock_a_person_out(client, rule_owner):
    fail_until_locked(client, REMOTE_ADDR="203.0.113.9")

    assert sign_in(client, PASSWORD, REMOTE_ADDR="198.51.100.20").status_code == 302


@pytest.mark.django_db
def test_a_made_up_forwarded_for_header_does_not_escape_the_lockout(client, rule_owner):
    """With no proxy configured (HANDOFF_PROXY_COUNT=0), X-Forwarded-For is the client's own words."""
    for n in range(LIMIT):
        sign_in(client, f"wrong-{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")

    assert sign_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429


@pytest.mark.django_db
@override_settings(HANDOFF_PROXY_COUNT=1)
def test_behind_one_proxy_the_address_it_appended_is_the_one_locked_out(client, rule_owner):
    # The client wrote "192.0.2.1, …" itself; the proxy appended the address it saw, 203.0.113.9.
    fail_until_locked(client, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.9")

    assert AccessAttempt.objects.get(username="rowan").ip_address == "203.0.113.9"
    other_client = sign_in(client, PASSWORD, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert other_client.status_code == 302


@pytest.mark.django_db
def test_a_failed_login_is_logged_with_the_username_and_address_but_not_the_password(client, rule_owner, caplog):
    with caplog.at_level(logging.WARNING):
        sign_in(client, "hunter2-wrong", REMOTE_ADDR="203.0.113.9")

    failures = [r.getMessage() for r in caplog.records if "login failure" in r.getMessage()]
    assert failures, [r.getMessage() for r in caplog.records]
    assert "rowan" in failures[0] and "203.0.113.9" in failures[0]
    assert "hunter2-wrong" not in caplog.text


@pytest.mark.django_db
def test_a_lockout_lifts_by_itself_after_the_cool_off(client, rule_owner):
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC), tick=False):
        fail_until_locked(client)
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 14, tzinfo=dt.UTC), tick=False):
        assert sign_in(client, PASSWORD).status_code == 429
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC), tick=False):
        assert sign_in(client, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_an_admin_lifts_a_lockout_with_axes_reset_username(client, rule_owner):
    fail_until_locked(client)

    call_command("axes_reset_username", "rowan")

    assert sign_in(client, PASSWORD).status_code == 302


def token_client(key, address="203.0.113.9"):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.django_db
def test_wrong_api_tokens_lock_the_address_out_even_for_a_right_personal_token(ops_person):
    right = personal_token(ops_person)
    answers = [token_client(f"{n:040x}").get("/api/v1/exceptions/").status_code for n in range(LIMIT)]
    assert answers == [401] * (LIMIT - 1) + [429], answers

    locked = token_client(right).get("/api/v1/exceptions/")

    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.json()["detail"]
    assert locked["Retry-After"] == str(15 * 60)
    assert token_client(right, address="198.51.100.20").get("/api/v1/exceptions/").status_code == 200


@pytest.mark.django_db
def test_wrong_api_tokens_lock_out_a_capture_source_token_from_that_address(source, ops_person):
    for n in range(LIMIT):
        token_client(f"{n:040x}").get("/api/v1/exceptions/")

    answer = token_client(source.token).post(
        "/api/v1/leads/", {"lead_id": "f-1", "email": "a@b.example"}, format="json"
    )

    assert answer.status_code == 429
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address) == (TOKEN_USERNAME, "203.0.113.9")


@pytest.mark.django_db
def test_a_token_lockout_is_lifted_with_axes_reset_ip(ops_person):
    right = personal_token(ops_person)
    for n in range(LIMIT):
        token_client(f"{n:040x}").get("/api/v1/exceptions/")

    call_command("axes_reset_ip", "203.0.113.9")

    assert token_client(right).get("/api/v1/exceptions/").status_code == 200


@pytest.mark.django_db
def test_a_wrong_token_is_logged_without_the_key(ops_person, caplog):
    with caplog.at_level(logging.WARNING):
        token_client("f" * 40).get("/api/v1/exceptions/")

    assert any("login failure" in r.getMessage() and TOKEN_USERNAME in r.getMessage() for r in caplog.records)
    assert "f" * 40 not in caplog.text


@pytest.mark.django_db
def test_password_reset_is_not_offered_to_anyone(client, rule_owner, mailoutbox):
    """Finding 9: the reset views were reachable anonymously and mailed a reset link, unthrottled."""
    for path in ("/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/done/"):
        assert client.get(path).status_code == 404, path
    assert client.get("/accounts/reset/MQ/set-password/").status_code == 404

    answer = client.post("/accounts/password_reset/", {"email": rule_owner.email})

    assert answer.status_code == 404
    assert mailoutbox == []


@pytest.mark.django_db
def test_a_signed_in_person_changes_their_password_with_the_old_one(client, rule_owner):
    client.force_login(rule_owner)

    answer = client.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-long-passphrase-42",
            "new_password2": "a-new-long-passphrase-42",
        },
    )

    assert answer.status_code == 302
    rule_owner.refresh_from_db()
    assert rule_owner.check_password("a-new-long-passphrase-42")


@pytest.mark.django_db
def test_wrong_old_passwords_on_the_password_change_form_lock_out_and_are_logged(client, rule_owner, caplog):
    client.force_login(rule_owner)
    change = {"new_password1": "a-new-long-passphrase-42", "new_password2": "a-new-long-passphrase-42"}
    answers = [
        client.post("/accounts/password_change/", {**change, "old_password": f"wrong-{n}"}).status_code
        for n in range(LIMIT)
    ]
    assert answers == [200] * (LIMIT - 1) + [429]

    answer = client.post("/accounts/password_change/", {**change, "old_password": PASSWORD})

    assert answer.status_code == 429
    rule_owner.refresh_from_db()
    assert rule_owner.check_password(PASSWORD)  # unchanged
    assert AccessAttempt.objects.filter(username="rowan", failures_since_start=LIMIT).exists()
    assert "AXES: Repeated login failure" in caplog.text or "AXES: New login failure" in caplog.text
    client.logout()
    assert sign_in(client, PASSWORD).status_code == 429  # the same lockout as the login form's
