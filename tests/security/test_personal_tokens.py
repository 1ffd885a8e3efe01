"""Issue 15, finding 7 (tokens): personal API tokens are stored as a hash, shown once, expire and can be
revoked by their owner (console) or an admin; the tokens kept in clear before are carried over as hashes."""

import datetime as dt
import hashlib
import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from audit.db_roles import as_owner
from routing.models import PersonalToken
from routing.tokens import personal_token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("routing.migrations.0018_personal_tokens")
API = "/api/v1/exceptions/"


def api_get(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get(API)


def test_a_token_is_stored_as_its_hash_only(ops_person):
    token, clear = personal_token_create(user=ops_person, name="script")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM routing_personaltoken WHERE id = %s", [token.pk])
        row = cursor.fetchone()
    assert clear not in [str(value) for value in row]
    assert token.token_hash == hashlib.sha256(clear.encode()).hexdigest()
    assert api_get(clear).status_code == 200


def test_a_token_expires_after_the_configured_days(ops_person, settings):
    token, _ = personal_token_create(user=ops_person)
    assert (
        token.expires_at - token.created_at
        == dt.timedelta(days=settings.HANDOFF["API_TOKEN_DAYS"])
        == dt.timedelta(days=90)
    )


def test_an_expired_token_is_refused_with_the_date(ops_person):
    made = timezone.now() - dt.timedelta(days=31)
    token, clear = personal_token_create(user=ops_person, days=30, at=made)
    response = api_get(clear)
    assert response.status_code == 401
    assert response.json() == {
        "detail": f"This token expired on {token.expires_at:%Y-%m-%d}; make a new one on the console's API tokens page."
    }


def test_a_token_of_a_deactivated_person_is_refused(ops_person):
    _, clear = personal_token_create(user=ops_person)
    ops_person.is_active = False
    ops_person.save()
    assert api_get(clear).status_code == 401


def test_the_console_shows_a_new_token_once_and_it_works(client, ops_person):
    client.force_login(ops_person)
    response = client.post("/console/api-tokens/", {"name": "reporting", "days": 30})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = PersonalToken.objects.get(user=ops_person)
    clear = response.context["new"][1]
    assert clear in response.content.decode()
    assert token.expires_at - token.created_at == dt.timedelta(days=30)
    assert clear not in client.get("/console/api-tokens/").content.decode()  # never again
    assert api_get(clear).status_code == 200


def test_the_console_refuses_a_token_longer_than_the_maximum(client, ops_person, settings):
    client.force_login(ops_person)
    response = client.post("/console/api-tokens/", {"days": settings.HANDOFF["API_TOKEN_MAX_DAYS"] + 1})
    assert response.status_code == 400
    assert "Valid for (days): Ensure this value is less than or equal to 366." in response.content.decode()
    assert not PersonalToken.objects.exists()


def test_the_owner_revokes_a_token_in_the_console_and_it_stops_working(client, ops_person):
    token, clear = personal_token_create(user=ops_person)
    client.force_login(ops_person)
    assert client.post("/console/api-tokens/", {"revoke": token.pk}).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == ops_person
    response = api_get(clear)
    assert response.status_code == 401 and response.json() == {"detail": "Invalid or revoked token."}


def test_nobody_revokes_someone_elses_token_in_the_console(client, ops_person):
    token, clear = personal_token_create(user=UserFactory(username="someone"))
    client.force_login(ops_person)
    assert client.post("/console/api-tokens/", {"revoke": token.pk}).status_code == 404
    assert api_get(clear).status_code in (200, 403)  # still authenticates (403: someone has no console access)


def test_an_admin_revokes_tokens(client, ops_person):
    token, clear = personal_token_create(user=ops_person)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/routing/personaltoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert "Revoked 1 token(s)." in response.content.decode()
    assert api_get(clear).status_code == 401


@pytest.mark.django_db(transaction=True)  # as the schema's owner, as migrations run (the application may not CREATE)
def test_the_migration_turns_clear_tokens_into_hashes_that_keep_working(ops_person):
    old_key = "0123456789abcdef0123456789abcdef01234567"  # DRF authtoken's 40 hex characters
    with as_owner(connection):
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz, user_id int)"
            )
            cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [old_key, ops_person.pk])
        try:
            migration.hash_clear_tokens(apps, SimpleNamespace(connection=connection))
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM authtoken_token")
                assert cursor.fetchone()[0] == 0  # nothing left in clear
        finally:
            with connection.cursor() as cursor:
                cursor.execute("DROP TABLE authtoken_token")
    token = PersonalToken.objects.get(user=ops_person)
    assert token.token_hash == hashlib.sha256(old_key.encode()).hexdigest()
    assert token.expires_at > timezone.now() + dt.timedelta(days=89)
    assert api_get(old_key).status_code == 200
