"""First-responder playbooks: versioned saves, the queue's playbook over the reason's on the item page, and the
admin-only editor with its history."""

import datetime as dt
import re

import factory
import pytest
import time_machine
from django.test import Client

from audit.models import AuditAction, AuditEvent
from exceptions.models import PLAYBOOK_MAX_CHARS, ExceptionReason, Playbook
from exceptions.playbooks import (
    PlaybookConflict,
    PlaybookRefused,
    playbook_for,
    playbook_save,
    playbooks_overview,
)
from tests.factories import QueueFactory, UserFactory, open_exception

pytestmark = pytest.mark.django_db

NO_RULE = ExceptionReason.NO_MATCHING_RULE
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


class PlaybookFactory(factory.django.DjangoModelFactory):
    """A stored version, as playbook_save writes one (tests of reading build history with it)."""

    class Meta:
        model = Playbook

    reason = NO_RULE
    queue = None
    body = factory.Sequence(lambda n: f"1. Check the source's form fields.\n2. Step {n}.")
    version = factory.Sequence(lambda n: n + 1)
    edited_by = factory.SubFactory(UserFactory)
    edited_at = factory.LazyFunction(lambda: T0)


@pytest.fixture
def admin(db):
    return UserFactory(username="ada", is_superuser=True, is_staff=True)


@pytest.fixture
def admin_client(admin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    return client


@pytest.fixture
def ops_client(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


def csrf_post(client, url, data):
    """POST as the browser does: with the token the form page carries."""
    page = client.get(url).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    return client.post(url, {**data, "csrfmiddlewaretoken": token})


# --- the service ---------------------------------------------------------------------------------------------


def test_every_save_writes_a_new_version_and_keeps_the_old(admin):
    with time_machine.travel(T0, tick=False):
        first = playbook_save(reason=NO_RULE, body="Check the form.", by=admin, expected_version=None)
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        second = playbook_save(reason=NO_RULE, body="Check the form, then the rules.", by=admin, expected_version=1)

    assert (first.version, second.version) == (1, 2)
    assert list(Playbook.objects.filter(reason=NO_RULE).values_list("version", "body")) == [
        (2, "Check the form, then the rules."),
        (1, "Check the form."),
    ]
    assert second.edited_at == T0 + dt.timedelta(days=1) and second.edited_by == admin
    events = AuditEvent.objects.filter(action=AuditAction.PLAYBOOK_SAVED).order_by("id")
    assert [(e.outcome, e.data["version"], e.actor_id) for e in events] == [("v1", 1, admin.pk), ("v2", 2, admin.pk)]


def test_saving_over_a_version_someone_else_saved_meanwhile_conflicts(admin):
    playbook_save(reason=NO_RULE, body="Mine.", by=admin, expected_version=None)
    other = UserFactory(username="bea", is_superuser=True)
    playbook_save(reason=NO_RULE, body="Theirs.", by=other, expected_version=1)

    with pytest.raises(PlaybookConflict, match="Version 2 was saved by bea"):
        playbook_save(reason=NO_RULE, body="Mine again.", by=admin, expected_version=1)
    assert Playbook.objects.count() == 2


def test_a_playbook_longer_than_the_bound_is_refused(admin):
    with pytest.raises(PlaybookRefused, match=f"at most {PLAYBOOK_MAX_CHARS} characters"):
        playbook_save(reason=NO_RULE, body="x" * (PLAYBOOK_MAX_CHARS + 1), by=admin, expected_version=None)
    assert not Playbook.objects.exists()


def test_queue_overrides_are_versioned_apart_from_the_reasons_playbook(admin):
    queue = QueueFactory(name="EMEA")
    playbook_save(reason=NO_RULE, body="General.", by=admin, expected_version=None)
    override = playbook_save(reason=NO_RULE, queue=queue, body="EMEA steps.", by=admin, expected_version=None)

    assert override.version == 1
    (row,) = [r for r in playbooks_overview() if r.reason == NO_RULE]
    assert row.current.body == "General." and [p.body for p in row.overrides] == ["EMEA steps."]


def test_the_queues_playbook_wins_over_the_reasons_in_one_query(admin, django_assert_num_queries):
    queue = QueueFactory(name="EMEA")
    PlaybookFactory(body="General.", version=1)
    PlaybookFactory(queue=queue, body="EMEA v1.", version=1)
    PlaybookFactory(queue=queue, body="EMEA v2.", version=2)

    with django_assert_num_queries(1):
        shown = playbook_for(reason=NO_RULE, queue_id=queue.pk)

    assert shown.body == "EMEA v2."
    assert playbook_for(reason=NO_RULE, queue_id=QueueFactory(name="APAC").pk).body == "General."


def test_a_withdrawn_queue_playbook_falls_back_to_the_reasons(admin):
    queue = QueueFactory(name="EMEA")
    PlaybookFactory(body="General.", version=1)
    PlaybookFactory(queue=queue, body="EMEA steps.", version=1)
    playbook_save(reason=NO_RULE, queue=queue, body="", by=admin, expected_version=1)

    assert playbook_for(reason=NO_RULE, queue_id=queue.pk).body == "General."


# --- the console ---------------------------------------------------------------------------------------------


def test_the_item_page_shows_the_queues_playbook(ops_client):
    queue = QueueFactory(name="Triage")
    PlaybookFactory(body="General steps.", version=1)
    PlaybookFactory(queue=queue, body="Triage: call the source owner.", version=1)
    item = open_exception(queue=queue)

    html = ops_client.get(f"/console/items/{item.pk}/").content.decode()

    assert 'id="item-playbook"' in html
    assert "Triage: call the source owner." in html and "General steps." not in html


def test_the_item_page_without_a_playbook_shows_none(ops_client):
    item = open_exception(queue=QueueFactory(name="Triage"))

    html = ops_client.get(f"/console/items/{item.pk}/").content.decode()

    assert 'id="item-playbook"' not in html


def test_an_admin_saves_a_playbook_in_the_console_with_its_csrf_token(admin_client, admin):
    url = f"/console/playbooks/{NO_RULE}/"

    response = csrf_post(admin_client, url, {"body": "1. Read the lead.\n2. Find the rule.", "version": ""})

    assert response.status_code == 302
    saved = Playbook.objects.get()
    assert (saved.version, saved.body, saved.edited_by) == (1, "1. Read the lead.\n2. Find the rule.", admin)
    assert admin_client.post(url, {"body": "no token"}).status_code == 403  # CSRF enforced


def test_an_admin_saves_a_queue_override_in_the_console(admin_client):
    queue = QueueFactory(name="EMEA")

    response = csrf_post(
        admin_client, f"/console/playbooks/{NO_RULE}/?queue={queue.pk}", {"body": "EMEA.", "queue": queue.pk}
    )

    assert response.status_code == 302 and response["Location"].endswith(f"?queue={queue.pk}")
    assert Playbook.objects.get().queue == queue


def test_a_stale_edit_in_the_console_is_a_409_that_says_who_saved(admin_client, admin):
    PlaybookFactory(version=1, edited_by=admin)
    PlaybookFactory(version=2, edited_by=UserFactory(username="bea"))

    response = csrf_post(admin_client, f"/console/playbooks/{NO_RULE}/", {"body": "Late.", "version": 1})

    assert response.status_code == 409
    assert "Version 2 was saved by bea" in response.content.decode()
    assert Playbook.objects.count() == 2


def test_ops_staff_read_playbooks_but_cannot_save_them(ops_client):
    PlaybookFactory(body="Read me.", version=1)

    page = ops_client.get(f"/console/playbooks/{NO_RULE}/").content.decode()
    response = ops_client.post(f"/console/playbooks/{NO_RULE}/", {"body": "Mine now.", "version": 1})

    assert "Read me." in page and 'id="playbook-form"' not in page
    assert response.status_code == 403
    assert Playbook.objects.count() == 1


def test_the_history_lists_every_version_with_who_and_when(admin_client):
    PlaybookFactory(version=1, edited_by=UserFactory(username="ada2"), edited_at=T0)
    PlaybookFactory(version=2, edited_by=UserFactory(username="bea"), edited_at=T0 + dt.timedelta(days=3))

    html = admin_client.get(f"/console/playbooks/{NO_RULE}/").content.decode()
    history = html[html.index('id="playbook-history"') :]

    assert history.index("v2") < history.index("v1")
    assert "2026-03-05 09:00" in history and "bea" in history
    assert "2026-03-02 09:00" in history and "ada2" in history


def test_the_list_shows_each_reason_with_its_queue_overrides(ops_client):
    queue = QueueFactory(name="EMEA")
    PlaybookFactory(queue=queue, body="EMEA.", version=1)

    html = ops_client.get("/console/playbooks/").content.decode()

    for label in ExceptionReason.labels:
        assert label in html
    assert f'?queue={queue.pk}">EMEA</a> v1' in html


def test_an_unknown_reason_is_a_404(ops_client):
    assert ops_client.get("/console/playbooks/not_a_reason/").status_code == 404
