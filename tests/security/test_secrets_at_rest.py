"""Issue 15, finding 7 (secrets): delivery secrets and enrichment credentials are stored encrypted with the
key from HANDOFF_SECRETS_KEY, rotate to a new key, and are write-only in the admin: set or replaced, shown as
"set" or "not set", never rendered, also not to staff who may only view."""

import importlib

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from routing.integrations.models import DeliveryTarget, EnrichmentProvider
from tests.factories import DeliveryTargetFactory, EnrichmentProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("routing.migrations.0017_sealed_secrets")
SECRET = "whsec-live-0f1e2d3c4b5a"
CREDENTIAL = "Bearer sk_live_abcdef123456"


def stored(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed names
        return cursor.fetchone()[0]


def test_a_delivery_secret_is_stored_encrypted_and_read_back_plain(settings):
    target = DeliveryTargetFactory(secret=SECRET)
    raw = stored("routing_deliverytarget", "secret", target.pk)
    assert SECRET not in raw
    assert Fernet(settings.HANDOFF["SECRETS_KEYS"][0]).decrypt(raw.encode()).decode() == SECRET
    assert DeliveryTarget.objects.get(pk=target.pk).secret == SECRET


def test_an_enrichment_credential_is_stored_encrypted(settings):
    provider = EnrichmentProviderFactory(auth_value=CREDENTIAL)
    assert "sk_live" not in stored("routing_enrichmentprovider", "auth_value", provider.pk)
    assert EnrichmentProvider.objects.get(pk=provider.pk).auth_value == CREDENTIAL


def test_keys_rotate_old_values_read_until_rotate_secrets_rewrites_them(settings):
    old_key = settings.HANDOFF["SECRETS_KEYS"][0]
    target = DeliveryTargetFactory(secret=SECRET)
    new_key = Fernet.generate_key().decode()
    settings.HANDOFF = {**settings.HANDOFF, "SECRETS_KEYS": [new_key, old_key]}
    assert DeliveryTarget.objects.get(pk=target.pk).secret == SECRET  # the old key still reads
    call_command("rotate_secrets", stdout=None)
    settings.HANDOFF = {**settings.HANDOFF, "SECRETS_KEYS": [new_key]}  # the old key dropped
    assert DeliveryTarget.objects.get(pk=target.pk).secret == SECRET
    assert Fernet(new_key).decrypt(stored("routing_deliverytarget", "secret", target.pk).encode()) == SECRET.encode()


def test_a_missing_key_is_a_clear_error_not_a_wrong_secret(settings):
    target = DeliveryTargetFactory(secret=SECRET)
    settings.HANDOFF = {**settings.HANDOFF, "SECRETS_KEYS": [Fernet.generate_key().decode()]}
    with pytest.raises(ImproperlyConfigured, match="does not decrypt with any key in HANDOFF_SECRETS_KEY"):
        DeliveryTarget.objects.get(pk=target.pk)


def test_the_migration_encrypts_the_secrets_already_stored():
    before = MigrationExecutor(connection).loader.project_state(("routing", "0015_dashboard_account_figures")).apps
    plain_target = before.get_model("routing", "DeliveryTarget").objects.create(
        name="Old CRM", url="https://crm.example.com/h", secret=SECRET, events=["lead.assigned"]
    )
    before.get_model("routing", "EnrichmentProvider").objects.create(
        name="Old vendor", url="https://vendor.example.com/e", auth_value=CREDENTIAL
    )
    assert stored("routing_deliverytarget", "secret", plain_target.pk) == SECRET  # as it was: in clear

    migration.encrypt_stored(before, None)

    assert SECRET not in stored("routing_deliverytarget", "secret", plain_target.pk)
    assert DeliveryTarget.objects.get(name="Old CRM").secret == SECRET
    assert EnrichmentProvider.objects.get(name="Old vendor").auth_value == CREDENTIAL


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_admin_never_renders_a_delivery_secret_and_says_it_is_set(admin_client):
    target = DeliveryTargetFactory(secret=SECRET)
    page = admin_client.get(f"/admin/routing/deliverytarget/{target.pk}/change/").content.decode()
    assert SECRET not in page
    assert "Set; leave blank to keep it, or type a new one to replace it." in page


def change_form(target, **changes) -> dict:
    return {
        "name": target.name,
        "url": "https://crm.example.com/hooks",
        "signature_scheme": "legacy",  # any secret string is taken for the legacy headers
        "secret": "",
        "events": target.events,
        "is_active": "on",
        "max_attempts": target.max_attempts,
        "timeout_seconds": target.timeout_seconds,
        "confirm_within_minutes": target.confirm_within_minutes,
        **changes,
    }


def test_a_blank_secret_in_the_admin_keeps_the_stored_one_and_a_new_one_replaces_it(admin_client):
    target = DeliveryTargetFactory(secret=SECRET)
    url = f"/admin/routing/deliverytarget/{target.pk}/change/"
    assert admin_client.post(url, change_form(target)).status_code == 302
    assert DeliveryTarget.objects.get(pk=target.pk).secret == SECRET
    assert admin_client.post(url, change_form(target, secret="whsec-rotated")).status_code == 302
    assert DeliveryTarget.objects.get(pk=target.pk).secret == "whsec-rotated"


def test_the_admin_never_renders_an_enrichment_credential(admin_client):
    provider = EnrichmentProviderFactory(auth_value=CREDENTIAL)
    page = admin_client.get(f"/admin/routing/enrichmentprovider/{provider.pk}/change/").content.decode()
    assert "sk_live" not in page


def test_view_only_staff_see_set_not_the_secret(client):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_deliverytarget"),
        Permission.objects.get(codename="view_enrichmentprovider"),
    )
    client.force_login(viewer)
    target = DeliveryTargetFactory(secret=SECRET)
    provider = EnrichmentProviderFactory(auth_value=CREDENTIAL)
    target_page = client.get(f"/admin/routing/deliverytarget/{target.pk}/change/")
    provider_page = client.get(f"/admin/routing/enrichmentprovider/{provider.pk}/change/")
    assert target_page.status_code == provider_page.status_code == 200
    assert SECRET not in target_page.content.decode() and "sk_live" not in provider_page.content.decode()
    assert '<div class="readonly">set</div>' in target_page.content.decode()


def test_an_enrichment_credential_is_removed_only_when_asked(admin_client):
    provider = EnrichmentProviderFactory(auth_value=CREDENTIAL)
    url = f"/admin/routing/enrichmentprovider/{provider.pk}/change/"
    form = {
        "name": provider.name,
        "url": "https://vendor.example.com/enrich",
        "auth_header": "Authorization",
        "auth_value": "",
        "timeout_seconds": 3,
        "max_attempts": 4,
        "is_active": "on",
    }
    assert admin_client.post(url, form).status_code == 302
    assert EnrichmentProvider.objects.get(pk=provider.pk).auth_value == CREDENTIAL  # blank keeps it
    assert admin_client.post(url, {**form, "clear_auth_value": "on"}).status_code == 302
    assert EnrichmentProvider.objects.get(pk=provider.pk).auth_value == ""
