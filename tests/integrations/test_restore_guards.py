"""What a restore and the change history never do: re-open a revoked source, show a URL's secrets, or take
settings that would break routing later (second reader's findings on issue 19)."""

import pytest
from django.test import Client

from routing.changes.history import ChangeKind, change_list, config_restore, url_shown
from routing.models import Queue
from tests.factories import EnrichmentProviderFactory, QueueFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_restoring_a_source_never_turns_a_revoked_token_back_on():
    admin = UserFactory(is_superuser=True, is_staff=True)
    source = SourceFactory(schema_version="")
    version = source.history.latest().history_id
    source.schema_version, source.is_active = "1", False
    source.save()
    config_restore(kind=ChangeKind.SOURCE, history_id=version, by=admin)
    source.refresh_from_db()
    assert (source.schema_version, source.is_active) == ("", False)


def test_the_history_shows_a_url_by_its_host_and_a_fingerprint_only():
    secret_url = "https://user:hunter77@enrich.example/v1?api_key=sk_live_URLSECRET"
    provider = EnrichmentProviderFactory(url=secret_url)
    shown = [f.new for change in change_list(kind=ChangeKind.PROVIDER) for f in change.fields if f.name == "url"]
    assert shown == [url_shown(secret_url)]
    assert shown[0].startswith("https://enrich.example/… (#") and "hunter77" not in shown[0]
    assert url_shown("http://[::1").startswith("(a URL, #")
    assert provider.url == secret_url


def test_queue_settings_refuse_a_bad_zone_bad_days_and_an_absurd_weight():
    admin = UserFactory(is_superuser=True, is_staff=True)
    queue = QueueFactory()
    client = Client()
    client.force_login(admin)
    url = f"/console/queues/{queue.pk}/settings/"
    page = client.get(url)
    assert page.status_code == 200
    form = {
        "strategy": queue.strategy,
        "when_everyone_away": queue.when_everyone_away,
        "return_policy": queue.return_policy,
        "distribution_period": queue.distribution_period,
        "business_timezone": "Mars/Olympus",
        "business_days": "9,x",
        "add_member": admin.username,
        "add_weight": "99999999999",
    }
    response = client.post(url, form)
    assert response.status_code in (200, 400)
    text = response.content.decode()
    assert "is not an IANA time zone" in text
    assert "Ensure this value is less than or equal to 1000." in text
    queue.refresh_from_db()
    assert queue.business_timezone != "Mars/Olympus" and not Queue.objects.filter(business_days="9,x").exists()
