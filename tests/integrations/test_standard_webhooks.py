"""Deliveries follow Standard Webhooks: real requests received by the local fake target are verified by the
official `standardwebhooks` package and by the README's own snippets (read from README.md and run, so the
README cannot drift), replays keep their webhook-id, tampering, a wrong secret and a stale timestamp are
refused; the legacy X-Handoff-* headers stay available per target; secrets are generated, shown once, replaced
with an overlap; routing migration 0026 keeps existing targets on the legacy headers."""

import base64
import datetime as dt
import io
import re
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from routing.integrations.deadletter import dead_letters_replay
from routing.integrations.delivery import event_deliver
from routing.integrations.models import DeliveryTarget, OutboxStatus, SignatureScheme
from routing.integrations.signing import verify as legacy_verify
from routing.integrations.targets import ROTATION_OVERLAP
from tests.factories import DeliveryTargetFactory, OutboxEventFactory, UserFactory
from tests.integrations.fake_target import status

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
README = Path(__file__).resolve().parents[2] / "README.md"
STANDARD_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature"}
LEGACY_HEADERS = {"X-Handoff-Event", "Idempotency-Key", "X-Handoff-Timestamp", "X-Handoff-Signature"}


def readme_verifiers() -> dict:
    """The receiver snippets of README "Delivery to targets", run as they are: {"standard": verify, "legacy": …}."""
    text = README.read_text()
    section = text[text.index("## Delivery to targets") :]
    section = section[: section.index("\n## ", 1)]
    verifiers = {}
    for code in re.findall(r"```python\n(.*?)```", section, re.S):
        namespace = {}
        exec(code, namespace)  # noqa: S102 - the README's own text, which receivers copy
        verifiers["standard" if "webhook-signature" in code else "legacy"] = namespace["verify"]
    assert set(verifiers) == {"standard", "legacy"}, "README: one standard and one legacy snippet expected"
    return verifiers


readme_verify = readme_verifiers()["standard"]
readme_legacy_verify = readme_verifiers()["legacy"]


def library_verifies(secret: str, request) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def deliver(fake_target, **target_fields):
    target = DeliveryTargetFactory(url=fake_target.url, **{"secret": SECRET, **target_fields})
    event = OutboxEventFactory(target=target)
    assert event_deliver(event_id=event.pk).status == OutboxStatus.DELIVERED
    return event, fake_target.received[-1]


def test_a_delivery_verifies_with_the_standardwebhooks_library_and_the_readme_snippet(fake_target):
    event, request = deliver(fake_target)
    assert Webhook(SECRET).verify(request.body, request.headers)["id"] == str(event.idempotency_key)
    assert readme_verify(SECRET, request.headers, request.body)
    assert request.headers["webhook-id"] == str(event.idempotency_key)
    assert request.headers["webhook-signature"].startswith("v1,")
    assert STANDARD_HEADERS <= set(request.headers) and not LEGACY_HEADERS & set(request.headers)


def test_a_replayed_delivery_keeps_its_webhook_id_with_a_new_timestamp_and_signature(fake_target, ops_person):
    target = DeliveryTargetFactory(url=fake_target.url, secret=SECRET)
    fake_target.script = [status(422)]
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        event = event_deliver(event_id=OutboxEventFactory(target=target).pk)
        assert event.status == OutboxStatus.DEAD
        traveller.shift(dt.timedelta(seconds=90))
        dead_letters_replay(event_ids=[event.pk], by=ops_person)
        assert event_deliver(event_id=event.pk).status == OutboxStatus.DELIVERED

        first, replay = fake_target.received
        assert first.headers["webhook-id"] == replay.headers["webhook-id"] == str(event.idempotency_key)
        assert int(replay.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) in (89, 90, 91)
        assert first.headers["webhook-signature"] != replay.headers["webhook-signature"]
        for request in (first, replay):
            assert library_verifies(SECRET, request) and readme_verify(SECRET, request.headers, request.body)


def test_a_tampered_body_or_id_a_wrong_secret_or_a_stale_timestamp_is_refused(fake_target):
    _, request = deliver(fake_target)
    tampered = request.body.replace(b'"lead.assigned"', b'"lead.reassigned"')
    assert tampered != request.body
    other_id = {**request.headers, "webhook-id": "another-id"}
    for verifies in (library_verifies, lambda s, r: readme_verify(s, r.headers, r.body)):
        assert verifies(SECRET, request)
        assert not verifies(SECRET, type(request)(request.at, request.headers, tampered, 200))
        assert not verifies(SECRET, type(request)(request.at, other_id, request.body, 200))
        assert not verifies(OTHER_SECRET, request)
    sent_at = dt.datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), tz=dt.UTC)
    with time_machine.travel(sent_at + dt.timedelta(seconds=301)):
        assert not library_verifies(SECRET, request)
        assert not readme_verify(SECRET, request.headers, request.body)


def test_a_legacy_target_gets_the_old_headers_which_the_readme_legacy_snippet_verifies(fake_target):
    event, request = deliver(fake_target, secret="an-old-free-form-secret", signature_scheme=SignatureScheme.LEGACY)
    assert LEGACY_HEADERS <= set(request.headers) and not STANDARD_HEADERS & set(request.headers)
    assert request.headers["Idempotency-Key"] == str(event.idempotency_key)
    assert request.headers["X-Handoff-Event"] == "lead.assigned"
    assert readme_legacy_verify("an-old-free-form-secret", request.headers, request.body)
    assert legacy_verify("an-old-free-form-secret", request.headers, request.body)
    assert not readme_legacy_verify("an-old-free-form-secret", request.headers, request.body + b" ")
    assert not readme_legacy_verify("another-secret", request.headers, request.body)


def test_both_sends_both_header_sets_and_each_verifies(fake_target):
    _, request = deliver(fake_target, signature_scheme=SignatureScheme.BOTH)
    assert STANDARD_HEADERS | LEGACY_HEADERS <= set(request.headers)
    assert request.headers["webhook-id"] == request.headers["Idempotency-Key"]
    assert library_verifies(SECRET, request) and readme_verify(SECRET, request.headers, request.body)
    assert readme_legacy_verify(SECRET, request.headers, request.body)  # the secret string, as it is


def test_an_old_free_form_secret_verifies_in_its_readme_whsec_form(fake_target):
    old = "s3cret-from-2025"
    _, request = deliver(fake_target, secret=old)
    as_whsec = "whsec_" + base64.b64encode(old.encode()).decode()  # the README's formula
    assert library_verifies(as_whsec, request) and readme_verify(as_whsec, request.headers, request.body)


def test_during_the_overlap_a_delivery_verifies_with_either_secret_and_after_it_with_the_new_one_only(fake_target):
    target = DeliveryTargetFactory(
        url=fake_target.url,
        secret=SECRET,
        previous_secret=OTHER_SECRET,
        previous_secret_until=timezone.now() + ROTATION_OVERLAP,
    )
    assert event_deliver(event_id=OutboxEventFactory(target=target).pk).status == OutboxStatus.DELIVERED
    during = fake_target.received[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OTHER_SECRET):
        assert library_verifies(secret, during) and readme_verify(secret, during.headers, during.body)

    with time_machine.travel(timezone.now() + ROTATION_OVERLAP + dt.timedelta(seconds=1), tick=True):
        assert event_deliver(event_id=OutboxEventFactory(target=target).pk).status == OutboxStatus.DELIVERED
        after = fake_target.received[-1]
        assert library_verifies(SECRET, after) and readme_verify(SECRET, after.headers, after.body)
        assert not library_verifies(OTHER_SECRET, after)
        assert not readme_verify(OTHER_SECRET, after.headers, after.body)


# The admin: scheme, generated secret shown once, replacement with an overlap.


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def target_form(**changes) -> dict:
    return {
        "name": "CRM",
        "url": "https://crm.example.com/hooks",
        "signature_scheme": "standard",
        "secret": "",
        "events": ["lead.assigned"],
        "is_active": "on",
        "max_attempts": 8,
        "timeout_seconds": 10,
        "confirm_within_minutes": 15,
        **changes,
    }


def shown_secret(page) -> str:
    (secret,) = re.findall(r'<code id="signing-secret">(whsec_[A-Za-z0-9+/=]+)</code>', page.content.decode())
    return secret


def test_a_new_target_gets_a_generated_whsec_secret_shown_once(admin_client):
    page = admin_client.post("/admin/routing/deliverytarget/add/", target_form())
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    secret = shown_secret(page)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    target = DeliveryTarget.objects.get(name="CRM")
    assert (target.secret, target.signature_scheme) == (secret, SignatureScheme.STANDARD)
    assert secret not in admin_client.get(f"/admin/routing/deliverytarget/{target.pk}/change/").content.decode()


def test_a_typed_secret_must_be_whsec_base64_for_the_standard_scheme_but_not_for_legacy(admin_client):
    page = admin_client.post("/admin/routing/deliverytarget/add/", target_form(secret="hunter2"))
    assert page.status_code == 200 and not DeliveryTarget.objects.exists()
    assert "A Standard Webhooks secret starts with &#x27;whsec_&#x27; followed by base64" in page.content.decode()
    page = admin_client.post("/admin/routing/deliverytarget/add/", target_form(secret="whsec_not*base64"))
    assert "is not valid base64" in page.content.decode()
    page = admin_client.post("/admin/routing/deliverytarget/add/", target_form(secret="whsec_c2hvcnQ="))
    assert "The secret decodes to 5 bytes; Standard Webhooks asks for 24 to 64" in page.content.decode()

    page = admin_client.post("/admin/routing/deliverytarget/add/", target_form(secret=SECRET))
    assert page.status_code == 302  # typed, so not shown back
    assert DeliveryTarget.objects.get(name="CRM").secret == SECRET
    legacy = target_form(name="Old CRM", secret="hunter2", signature_scheme="legacy")
    assert admin_client.post("/admin/routing/deliverytarget/add/", legacy).status_code == 302
    assert DeliveryTarget.objects.get(name="Old CRM").secret == "hunter2"


def test_generating_a_new_secret_keeps_the_old_one_signing_until_the_overlap_is_ended(admin_client, fake_target):
    target = DeliveryTargetFactory(name="CRM", secret=SECRET, events=["lead.assigned"])
    url = f"/admin/routing/deliverytarget/{target.pk}/change/"
    page = admin_client.post(url, target_form(generate_secret="on"))
    new = shown_secret(page)
    target.refresh_from_db()
    assert (target.secret, target.previous_secret) == (new, SECRET)
    assert target.previous_secret_until > timezone.now() + ROTATION_OVERLAP - dt.timedelta(minutes=1)
    assert "still signs (Standard Webhooks) until" in admin_client.get(url).content.decode()

    DeliveryTarget.objects.filter(pk=target.pk).update(url=fake_target.url)
    assert event_deliver(event_id=OutboxEventFactory(target=target).pk).status == OutboxStatus.DELIVERED
    assert library_verifies(new, fake_target.received[-1]) and library_verifies(SECRET, fake_target.received[-1])

    assert admin_client.post(url, target_form(end_overlap="on")).status_code == 302  # nothing new to show
    target.refresh_from_db()
    assert (target.secret, target.previous_secret, target.previous_secret_until) == (new, "", None)


def test_rotate_secrets_re_encrypts_the_previous_secret_too(settings):
    from cryptography.fernet import Fernet

    target = DeliveryTargetFactory(previous_secret=OTHER_SECRET, previous_secret_until=timezone.now())
    new_key = Fernet.generate_key().decode()
    settings.HANDOFF = {**settings.HANDOFF, "SECRETS_KEYS": [new_key, *settings.HANDOFF["SECRETS_KEYS"]]}
    call_command("rotate_secrets", stdout=None)
    settings.HANDOFF = {**settings.HANDOFF, "SECRETS_KEYS": [new_key]}  # the old key dropped
    assert DeliveryTarget.objects.get(pk=target.pk).previous_secret == OTHER_SECRET


def test_migration_0026_keeps_existing_targets_on_the_legacy_headers_and_new_ones_default_to_standard():
    """Read from the SQL migration 0026 runs (the suite's database role may not alter tables, as production's
    application role may not): the column is added filled with `legacy` for the rows already there, then its
    default becomes `standard`, in the database as in Python."""
    out = io.StringIO()
    call_command("sqlmigrate", "routing", "0026", stdout=out)
    statements = [line for line in out.getvalue().splitlines() if '"signature_scheme"' in line]
    added = next(line for line in statements if "ADD COLUMN" in line)
    assert "DEFAULT 'legacy' NOT NULL" in added  # every existing target: legacy
    defaults = [line for line in statements if "SET DEFAULT" in line]
    assert defaults and "SET DEFAULT 'standard'" in defaults[-1]
    assert statements.index(added) < statements.index(defaults[-1])
    created = DeliveryTarget.objects.create(name="New", url="https://n.example.com", secret=SECRET)
    assert created.signature_scheme == SignatureScheme.STANDARD


def test_view_only_staff_see_the_scheme_and_the_overlap_but_no_secret_actions(client):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_deliverytarget"))
    client.force_login(viewer)
    target = DeliveryTargetFactory(secret=SECRET, previous_secret=OTHER_SECRET, previous_secret_until=None)
    page = client.get(f"/admin/routing/deliverytarget/{target.pk}/change/").content.decode()
    assert "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)" in page
    assert "Generate a new secret" not in page and "Stop signing with the previous secret" not in page
    assert SECRET not in page and OTHER_SECRET not in page
