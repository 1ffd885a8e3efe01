"""A rule's backup owner: set by the owner or an admin on the rule page or through the API (an active rule
owner or admin, never the owner themselves), kept in the rule's history but frozen into no version; may sign
the rule off (recorded as themselves) and sees it in "My rules"."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from routing.governance.backup_owner import rule_backup_owner_set
from routing.governance.models import RuleSignOff
from routing.governance.selectors import my_rules
from tests.factories import RuleFactory, UserFactory, personal_token
from tests.governance.helpers import reviewed_sign_off

pytestmark = pytest.mark.django_db

TUESDAY = dt.datetime(2026, 11, 17, 10, 0, tzinfo=dt.UTC)  # ISO week 2026-W47


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def rule(sales, rule_owner):
    with time_machine.travel(TUESDAY - dt.timedelta(days=30), tick=False):
        return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)


@pytest.fixture
def bea(db):
    user = UserFactory(username="bea")
    user.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    return user


def test_the_owner_names_a_backup_owner_kept_in_history_and_audit_but_in_no_version(rule, rule_owner, bea):
    rule_backup_owner_set(rule=rule, backup_owner=bea, by=rule_owner)

    rule.refresh_from_db()
    assert rule.backup_owner == bea
    assert (rule.history.first().backup_owner_id, rule.history.first().history_user) == (bea.pk, rule_owner)
    assert rule.versions.count() == 1 and not hasattr(rule.production_version, "backup_owner")
    event = AuditEvent.objects.get(action=AuditAction.RULE_SAVED, outcome="backup owner changed")
    assert (event.actor, event.data) == (rule_owner, {"backup_owner": {"before": None, "after": "bea"}})


def test_an_admin_may_name_or_clear_the_backup_owner(rule, admin, bea):
    rule_backup_owner_set(rule=rule, backup_owner=bea, by=admin)
    rule_backup_owner_set(rule=rule, backup_owner=None, by=admin)

    rule.refresh_from_db()
    assert rule.backup_owner is None


@pytest.mark.parametrize("persona", ["ops_person", "bea"])
def test_only_the_owner_or_an_admin_names_the_backup_owner(rule, bea, persona, request, admin):
    with pytest.raises(PermissionDenied, match=r"Only the rule's owner \(rowan\) or an admin"):
        rule_backup_owner_set(rule=rule, backup_owner=admin, by=request.getfixturevalue(persona))


def test_the_owner_cannot_be_their_own_backup(rule, rule_owner):
    with pytest.raises(ValueError, match="rowan owns 'MQL to sales'; name someone else as the backup owner."):
        rule_backup_owner_set(rule=rule, backup_owner=rule_owner, by=rule_owner)


@pytest.mark.parametrize(
    "who", [{"username": "gone", "is_active": False, "group": True}, {"username": "olly", "group": False}]
)
def test_a_backup_owner_is_an_active_rule_owner_or_admin(rule, rule_owner, who):
    user = UserFactory(username=who["username"], is_active=who.get("is_active", True))
    if who["group"]:
        user.groups.add(Group.objects.get_or_create(name="rule_owners")[0])

    with pytest.raises(ValueError, match="name an active user in the rule_owners group, or an admin"):
        rule_backup_owner_set(rule=rule, backup_owner=user, by=rule_owner)
    rule.refresh_from_db()
    assert rule.backup_owner is None


def test_the_backup_owner_signs_off_recorded_as_themselves(rule, rule_owner, bea):
    rule_backup_owner_set(rule=rule, backup_owner=bea, by=rule_owner)
    rule.refresh_from_db()

    sign_off = reviewed_sign_off(rule=rule, by=bea, at=TUESDAY)

    assert (sign_off.by, RuleSignOff.objects.get().by) == (bea, bea)
    assert AuditEvent.objects.get(action=AuditAction.RULE_SIGNED_OFF).actor == bea


def test_nobody_else_signs_off_and_the_refusal_names_owner_and_backup(rule, rule_owner, bea, ops_person):
    rule_backup_owner_set(rule=rule, backup_owner=bea, by=rule_owner)
    rule.refresh_from_db()

    with pytest.raises(PermissionDenied, match=r"Only the rule's owner \(rowan\) or backup owner \(bea\) signs"):
        reviewed_sign_off(rule=rule, by=ops_person, at=TUESDAY)


def test_the_backup_owner_sees_the_rule_in_my_rules(client, rule, rule_owner, bea):
    rule_backup_owner_set(rule=rule, backup_owner=bea, by=rule_owner)

    assert [view.row.rule for view in my_rules(owner=bea)] == [rule]
    client.force_login(bea)
    page = client.get(reverse("console:my-rules")).content.decode()
    assert "backup owner (owner rowan)" in page
    assert reverse("console:rule-action", args=[rule.pk, "sign_off"]) in page


def test_the_rule_page_form_sets_the_backup_owner(client, rule, rule_owner, bea):
    client.force_login(rule_owner)
    page = client.get(reverse("console:rule", args=[rule.pk])).content.decode()
    assert 'id="backup-owner"' in page and "csrfmiddlewaretoken" in page

    url = reverse("console:rule-action", args=[rule.pk, "backup_owner"])
    response = client.post(url, {"backup_owner": "bea"}, follow=True)

    assert messages_of(response) == ["bea is now the backup owner of 'MQL to sales'."]
    rule.refresh_from_db()
    assert rule.backup_owner == bea


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("nobody-here", "Backup owner: there is no user 'nobody-here'; give an existing username."),
        ("rowan", "rowan owns 'MQL to sales'; name someone else as the backup owner."),
    ],
)
def test_the_rule_page_form_says_why_a_backup_owner_was_refused(client, rule, rule_owner, typed, message):
    client.force_login(rule_owner)

    response = client.post(
        reverse("console:rule-action", args=[rule.pk, "backup_owner"]), {"backup_owner": typed}, follow=True
    )

    assert messages_of(response) == [message]
    rule.refresh_from_db()
    assert rule.backup_owner is None


def test_the_rule_page_form_is_forbidden_to_others(client, rule, bea, ops_person):
    client.force_login(ops_person)

    response = client.post(reverse("console:rule-action", args=[rule.pk, "backup_owner"]), {"backup_owner": "bea"})

    assert response.status_code == 403


def test_the_api_reads_and_writes_the_backup_owner_by_username(rule, rule_owner, bea):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(rule_owner)}")
    url = f"/api/v1/rules/{rule.pk}/"

    assert api.get(url).json()["backup_owner"] is None
    changed = api.patch(url, {"backup_owner": "bea"}, format="json")
    assert (changed.status_code, changed.json()["backup_owner"]) == (200, "bea")
    assert api.get("/api/v1/rules/").json()[0]["backup_owner"] == "bea"
    assert api.patch(url, {"backup_owner": None}, format="json").json()["backup_owner"] is None


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (
            {"backup_owner": "nobody-here"},
            400,
            {"backup_owner": ["No user 'nobody-here': give an existing username, or null to clear it."]},
        ),
        (
            {"backup_owner": "rowan"},
            400,
            {"detail": "rowan owns 'MQL to sales'; name someone else as the backup owner."},
        ),
        ({}, 400, {"backup_owner": ["This field is required."]}),
    ],
)
def test_the_api_says_what_to_fix_in_a_refused_backup_owner(rule, rule_owner, bea, body, status, detail):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(rule_owner)}")

    answer = api.patch(f"/api/v1/rules/{rule.pk}/", body, format="json")

    assert (answer.status_code, answer.json()) == (status, detail)


def test_the_api_refuses_someone_else_s_rule_with_403(rule, bea):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(bea)}")

    answer = api.patch(f"/api/v1/rules/{rule.pk}/", {"backup_owner": "bea"}, format="json")

    assert answer.status_code == 403
    assert "Only the rule's owner (rowan) or an admin" in answer.json()["detail"]
