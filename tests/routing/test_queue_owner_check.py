"""Every queue can hold exception items, so each needs an active owner and escalation contact: `manage.py
check` warns about the queues lacking one, `check --deploy` fails, staff see a banner until they are set, and
the queues the product creates itself get the system owner (HANDOFF_SYSTEM_OWNER)."""

import os
import subprocess
import sys

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse

from exceptions.services import triage_queue
from routing.queue_owners import enrichment_review_queue
from tests.conftest import ROOT
from tests.factories import QueueFactory, UserFactory

pytestmark = pytest.mark.django_db


def ids(*, deploy=False) -> dict[str, str]:
    return {m.id: m.msg for m in checks.run_checks(include_deployment_checks=deploy) if m.id.startswith("exceptions.")}


@pytest.fixture
def system_owner(settings):
    person = UserFactory(username="sysop", email="sysop@example.com")
    settings.HANDOFF = {**settings.HANDOFF, "SYSTEM_OWNER": "sysop"}
    return person


def test_check_warns_about_each_queue_without_owner_or_contact():
    QueueFactory(name="Triage")
    QueueFactory(name="EMEA", owner=UserFactory(), escalation_contact=UserFactory(username="gone", is_active=False))
    QueueFactory(name="Owned", owner=UserFactory(), escalation_contact=UserFactory())
    found = ids()
    assert list(found) == ["exceptions.W001"]
    assert found["exceptions.W001"] == (
        "2 queue(s) have no active owner or escalation contact, so an escalation there reaches nobody: "
        "EMEA: its escalation contact gone is deactivated; Triage: no owner, no escalation contact"
    )
    call_command("check")  # a warning: the command still succeeds


def test_check_deploy_makes_it_an_error():
    QueueFactory(name="Triage", owner=UserFactory())
    assert "exceptions.E001" in ids(deploy=True)
    with pytest.raises(SystemCheckError, match="exceptions.E001"):
        call_command("check", "--deploy")


def test_queues_with_active_owner_and_contact_pass_both_checks():
    QueueFactory(name="Triage", owner=UserFactory(), escalation_contact=UserFactory())
    assert ids() == {} and ids(deploy=True) == {}


def test_a_system_owner_naming_no_active_account_is_a_warning(settings):
    settings.HANDOFF = {**settings.HANDOFF, "SYSTEM_OWNER": "nobody-here"}
    assert "HANDOFF_SYSTEM_OWNER='nobody-here' names no active account" in ids()["exceptions.W002"]


def test_auto_created_queues_get_the_system_owner(system_owner):
    for queue in (triage_queue(), enrichment_review_queue()):
        assert (queue.owner, queue.escalation_contact) == (system_owner, system_owner), queue.name
    assert enrichment_review_queue().ack_sla_minutes == 30  # its own default kept
    assert ids() == {}


def test_an_existing_queue_keeps_its_people(system_owner):
    owner = UserFactory(username="ada")
    QueueFactory(name="Triage", owner=owner)
    assert triage_queue().owner == owner


def test_without_a_system_owner_auto_created_queues_stay_unset_and_the_check_says_so(settings):
    settings.HANDOFF = {**settings.HANDOFF, "SYSTEM_OWNER": ""}
    queue = triage_queue()
    assert (queue.owner, queue.escalation_contact) == (None, None)
    assert "Triage: no owner, no escalation contact" in ids()["exceptions.W001"]


def test_a_deactivated_system_owner_is_not_given_queues(system_owner):
    system_owner.is_active = False
    system_owner.save()
    assert triage_queue().owner is None


def test_staff_see_a_banner_until_every_queue_has_owner_and_contact(ops_person):
    queue = QueueFactory(name="Triage")
    client = Client()
    client.force_login(ops_person)  # staff
    body = client.get(reverse("console:overview")).content.decode()
    assert "1 queue has no active owner or escalation contact" in body
    assert f'<a href="{reverse("admin:routing_queue_changelist")}">set them</a>' in body
    queue.owner, queue.escalation_contact = UserFactory(), UserFactory()
    queue.save()
    assert 'id="queue-owner-banner"' not in client.get(reverse("console:overview")).content.decode()


def test_people_who_are_not_staff_see_no_banner(rule_owner):
    QueueFactory(name="Triage")
    client = Client()
    client.force_login(rule_owner)
    assert 'id="queue-owner-banner"' not in client.get(reverse("console:rules")).content.decode()


def test_check_runs_before_the_database_is_migrated(tmp_path):
    """`makemigrations --check` (make lint) and a first `check` run with no tables: nothing to say."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exceptions." not in result.stdout + result.stderr
