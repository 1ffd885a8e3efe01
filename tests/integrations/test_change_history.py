"""Change history and restore of targets, providers, sources and queues (with their memberships), and governed
queues: a routing change is staged with evidence on recent leads and applies once confirmed (issue 19)."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from routing.changes.history import ChangeKind, RestoreError, change_list, config_restore, url_shown
from routing.changes.queues import (
    APPLIED,
    DISCARDED,
    STAGED,
    QueueChangeError,
    queue_change_confirm,
    queue_change_discard,
    queue_change_propose,
    queue_proposal_current,
    queue_restore,
    replay_picks,
    staged_changes,
    staged_get,
)
from routing.integrations.models import DeliveryTarget, EnrichmentProvider
from routing.models import AssignmentStrategy, Lead, LeadStatus, Queue, QueueMembership, Source
from tests.factories import (
    DeliveryTargetFactory,
    EnrichmentProviderFactory,
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    SourceFactory,
    TimeOffFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def edit(obj, by, **changes):
    """Save a change as a person does (the history row names them)."""
    for name, value in changes.items():
        setattr(obj, name, value)
    obj._history_user = by
    obj.save()
    return obj


def history_columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s", [table])
        return {row[0] for row in cursor.fetchall()}


def test_history_rows_record_the_person_and_the_fields_changed(ops_person):
    target = DeliveryTargetFactory(name="CRM", max_attempts=8)
    edit(target, ops_person, max_attempts=3, url="http://127.0.0.1:9/new")

    newest = change_list(kind=ChangeKind.TARGET, object_id=target.pk)[0]

    assert newest.person == "olga"
    assert newest.change_type == "changed"
    assert {(f.name, f.old, f.new) for f in newest.fields} == {
        ("max_attempts", "8", "3"),
        ("url", url_shown("http://127.0.0.1:9/unused"), url_shown("http://127.0.0.1:9/new")),  # never the path
    }


def test_secrets_and_breaker_state_are_never_in_history_tables(ops_person):
    target = DeliveryTargetFactory(secret="whsec-very-secret")
    edit(target, ops_person, secret="whsec-replaced", previous_secret="whsec-very-secret")
    provider = EnrichmentProviderFactory(auth_value="Bearer sk_live_secret")
    edit(provider, ops_person, auth_value="Bearer sk_live_other", failures_in_a_row=3)

    assert not {"secret", "previous_secret", "previous_secret_until"} & history_columns(
        "routing_historicaldeliverytarget"
    )
    assert not {"auth_value", "failures_in_a_row", "down_until"} & history_columns(
        "routing_historicalenrichmentprovider"
    )
    assert "token_hash" not in history_columns("routing_historicalsource")
    with connection.cursor() as cursor:
        for table in ("routing_historicaldeliverytarget", "routing_historicalenrichmentprovider"):
            cursor.execute(f"SELECT row_to_json(h)::text FROM {table} h")  # noqa: S608 (fixed names)
            rows = " ".join(row[0] for row in cursor.fetchall())
            assert "secret" not in rows and "sk_live" not in rows


def test_change_list_shows_every_kind_newest_first_within_a_query_budget(
    client, ops_person, django_assert_max_num_queries
):
    target = DeliveryTargetFactory(name="CRM")
    provider = EnrichmentProviderFactory(name="Clearbit")
    source = SourceFactory(name="web-form")
    queue = QueueFactory(name="EMEA")
    for _ in range(3):
        edit(target, ops_person, max_attempts=target.max_attempts + 1)
    edit(provider, ops_person, timeout_seconds=2.5)
    edit(source, ops_person, is_active=False)
    edit(queue, ops_person, max_open_per_member=5)
    MembershipFactory(queue=queue, user=ops_person)
    client.force_login(ops_person)

    with django_assert_max_num_queries(30):
        page = client.get(reverse("console:changes")).content.decode()

    for name in ("CRM", "Clearbit", "web-form", "EMEA", "olga in EMEA"):
        assert name in page
    assert "Timeout seconds" in page or "timeout seconds" in page
    filtered = client.get(reverse("console:changes"), {"kind": "provider"}).content.decode()
    assert "Clearbit" in filtered and "web-form" not in filtered


def test_object_page_shows_old_and_new_values_and_no_secret(client, ops_person):
    target = DeliveryTargetFactory(name="CRM", secret="whsec-hidden", timeout_seconds=10.0)
    edit(target, ops_person, timeout_seconds=4.0)
    client.force_login(ops_person)

    page = client.get(reverse("console:object-changes", args=["target", target.pk])).content.decode()

    assert "<del>10.0</del> → <ins>4.0</ins>" in page
    assert "whsec-hidden" not in page
    assert "Restore</button>" not in page  # ops people see the history; admins restore


def test_admin_restores_a_target_keeping_its_current_secret(admin, ops_person):
    target = DeliveryTargetFactory(name="CRM", max_attempts=8, events=["lead.assigned"])
    version = target.history.latest().history_id
    edit(target, ops_person, max_attempts=2, events=["exception.resolved"], secret="whsec-rotated")

    config_restore(kind=ChangeKind.TARGET, history_id=version, by=admin)

    target.refresh_from_db()
    assert (target.max_attempts, target.events, target.secret) == (8, ["lead.assigned"], "whsec-rotated")
    newest = target.history.latest()
    assert newest.history_user == admin and "Restored version" in newest.history_change_reason
    event = AuditEvent.objects.get(action=AuditAction.CONFIG_RESTORED)
    assert event.actor == admin
    assert event.data["restored_from"] == version
    assert sorted(event.data["fields"]) == ["events", "max_attempts"]


def test_admin_restores_a_provider_and_a_source(admin, ops_person):
    provider = EnrichmentProviderFactory(name="Clearbit", url="http://127.0.0.1:9/a", auth_value="Bearer key")
    provider_version = provider.history.latest().history_id
    edit(provider, ops_person, url="http://127.0.0.1:9/b", is_active=False, auth_value="Bearer new-key")
    source = SourceFactory(name="web-form", shares_lead_ids=False)
    prefix = source.token_prefix
    source_version = source.history.latest().history_id
    edit(source, ops_person, shares_lead_ids=True, schema_version="2")

    config_restore(kind=ChangeKind.PROVIDER, history_id=provider_version, by=admin)
    config_restore(kind=ChangeKind.SOURCE, history_id=source_version, by=admin)

    provider.refresh_from_db()
    source.refresh_from_db()
    # Switched off stays off: whether it is in use is not a setting a restore undoes (changes.history.NEVER_RESTORED).
    assert (provider.url, provider.is_active, provider.auth_value) == ("http://127.0.0.1:9/a", False, "Bearer new-key")
    assert (source.shares_lead_ids, source.schema_version, source.token_prefix) == (False, "", prefix)
    assert AuditEvent.objects.filter(action=AuditAction.CONFIG_RESTORED).count() == 2


def test_restoring_the_current_settings_is_refused(admin):
    target = DeliveryTargetFactory()
    with pytest.raises(RestoreError, match="nothing to restore"):
        config_restore(kind=ChangeKind.TARGET, history_id=target.history.latest().history_id, by=admin)


def test_restore_onto_a_name_taken_since_says_so(admin, ops_person):
    target = DeliveryTargetFactory(name="CRM")
    version = target.history.latest().history_id
    edit(target, ops_person, name="CRM old")
    DeliveryTargetFactory(name="CRM")

    with pytest.raises(RestoreError, match="name"):
        config_restore(kind=ChangeKind.TARGET, history_id=version, by=admin)
    assert DeliveryTarget.objects.get(pk=target.pk).name == "CRM old"


def test_queue_restore_brings_back_its_members_as_they_were(admin, ops_person):
    queue = QueueFactory(name="EMEA", max_open_per_member=10)
    ada, bob, cy = UserFactory(username="ada"), UserFactory(username="bob"), UserFactory(username="cy")
    MembershipFactory(queue=queue, user=ada, weight=2)
    MembershipFactory(queue=queue, user=bob)
    then = QueueMembership.history.filter(queue_id=queue.pk).latest()
    edit(queue, ops_person, max_open_per_member=3)
    QueueMembership.objects.get(queue=queue, user=bob).delete()
    edit(QueueMembership.objects.get(queue=queue, user=ada), ops_person, weight=5)
    MembershipFactory(queue=queue, user=cy)

    result = queue_restore(queue=queue, kind=ChangeKind.MEMBERSHIP, history_id=then.history_id, by=admin)

    # Staged first, governed or not: the admin sees who it adds and removes before anything changes.
    assert not result.applied and queue.memberships.count() == 2
    assert {m["user"] for m in result.staged.data["members"]} == {"ada", "bob", "cy"}
    queue_change_confirm(event_id=result.staged.pk, by=admin)
    queue.refresh_from_db()
    assert queue.max_open_per_member == 10
    assert dict(queue.memberships.values_list("user__username", "weight")) == {"ada": 2, "bob": 1}
    event = AuditEvent.objects.get(action=AuditAction.CONFIG_RESTORED)
    assert event.data["restored_from"] == then.history_id
    assert {m["user"] for m in event.data["members"]} == {"ada", "bob", "cy"}
    assert QueueMembership.history.filter(queue_id=queue.pk, history_user=admin).count() == 3


def test_ops_cannot_restore(client, ops_person):
    target = DeliveryTargetFactory(max_attempts=8)
    version = target.history.latest().history_id
    edit(target, ops_person, max_attempts=2)
    client.force_login(ops_person)

    url = reverse("console:restore-version", args=["target", target.pk, "target", version])
    response = client.post(url, {"confirm": "yes"})

    assert response.status_code == 403
    assert DeliveryTarget.objects.get(pk=target.pk).max_attempts == 2
    with pytest.raises(PermissionDenied, match="Only admins"):
        config_restore(kind=ChangeKind.TARGET, history_id=version, by=ops_person)


def test_console_restore_needs_the_confirmation_box(client, admin, ops_person):
    provider = EnrichmentProviderFactory(max_attempts=4)
    version = provider.history.latest().history_id
    edit(provider, ops_person, max_attempts=1)
    client.force_login(admin)
    url = reverse("console:restore-version", args=["provider", provider.pk, "provider", version])

    unconfirmed = client.post(url, follow=True)
    assert "tick the box" in unconfirmed.content.decode()
    assert EnrichmentProvider.objects.get(pk=provider.pk).max_attempts == 1

    client.post(url, {"confirm": "yes"})
    assert EnrichmentProvider.objects.get(pk=provider.pk).max_attempts == 4


def assigned_leads(queue, person, n, days_ago=1):
    at = timezone.now() - dt.timedelta(days=days_ago)
    return [
        LeadFactory(queue=queue, assignee=person, status=LeadStatus.ASSIGNED, assigned_at=at, received_at=at)
        for _ in range(n)
    ]


@pytest.fixture
def governed_queue():
    queue = QueueFactory(name="Enterprise", governed=True, strategy=AssignmentStrategy.ROUND_ROBIN)
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")
    MembershipFactory(queue=queue, user=ada)
    MembershipFactory(queue=queue, user=bob)
    assigned_leads(queue, ada, 6)
    assigned_leads(queue, bob, 4)
    assigned_leads(queue, bob, 5, days_ago=30)  # outside the evidence window
    return queue


def without(queue, username):
    proposal = queue_proposal_current(queue)
    uid = QueueMembership.objects.get(queue=queue, user__username=username).user_id
    del proposal["members"][str(uid)]
    return proposal


def test_governed_queue_stages_a_member_removal_with_evidence(ops_person, governed_queue):
    result = queue_change_propose(queue=governed_queue, proposal=without(governed_queue, "bob"), by=ops_person)

    assert not result.applied
    assert governed_queue.memberships.count() == 2  # nothing applied yet
    evidence = result.staged.data["evidence"]
    assert evidence["leads"] == 10
    assert evidence["moved_certain"] == 4  # bob's leads of the last 14 days
    assert evidence["moved_estimate"] == 5  # replayed: every other lead went to bob, now all to ada
    assert evidence["needs_rollout_plan"] is True
    assert [m["change"] for m in result.staged.data["members"]] == ["removed"]
    assert staged_changes(queue=governed_queue) == [result.staged]


def test_confirming_a_staged_change_applies_it_once(ops_person, governed_queue):
    staged = queue_change_propose(queue=governed_queue, proposal=without(governed_queue, "bob"), by=ops_person).staged

    queue_change_confirm(event_id=staged.pk, by=ops_person)

    assert list(governed_queue.memberships.values_list("user__username", flat=True)) == ["ada"]
    assert staged_get(event_id=staged.pk)[1] == APPLIED
    applied = AuditEvent.objects.get(action=AuditAction.CONFIG_CHANGED, outcome=APPLIED)
    assert applied.data["staged_event"] == staged.pk and applied.actor == ops_person
    assert staged_changes() == []
    with pytest.raises(QueueChangeError, match="already applied"):
        queue_change_confirm(event_id=staged.pk, by=ops_person)


def test_a_staged_change_is_refused_once_the_queue_changed_since(ops_person, governed_queue):
    staged = queue_change_propose(queue=governed_queue, proposal=without(governed_queue, "bob"), by=ops_person).staged
    edit(governed_queue, ops_person, ack_sla_minutes=5)

    with pytest.raises(QueueChangeError, match="changed after this was staged"):
        queue_change_confirm(event_id=staged.pk, by=ops_person)
    assert governed_queue.memberships.count() == 2


def test_only_the_stager_or_an_admin_settles_a_staged_change(ops_person, admin, governed_queue):
    staged = queue_change_propose(queue=governed_queue, proposal=without(governed_queue, "bob"), by=ops_person).staged
    other_ops = UserFactory(username="oscar")
    other_ops.groups.set(ops_person.groups.all())

    with pytest.raises(PermissionDenied, match="Only the person who staged"):
        queue_change_confirm(event_id=staged.pk, by=other_ops)
    queue_change_discard(event_id=staged.pk, by=admin)

    assert staged_get(event_id=staged.pk)[1] == DISCARDED
    assert governed_queue.memberships.count() == 2


def test_a_change_that_does_not_alter_routing_applies_at_once_on_a_governed_queue(ops_person, governed_queue):
    proposal = queue_proposal_current(governed_queue)
    proposal["fields"]["ack_sla_minutes"] = 12

    result = queue_change_propose(queue=governed_queue, proposal=proposal, by=ops_person)

    assert result.applied
    assert Queue.objects.get(pk=governed_queue.pk).ack_sla_minutes == 12


def test_console_settings_stage_then_apply_on_a_governed_queue(client, ops_person, governed_queue):
    client.force_login(ops_person)
    ada = QueueMembership.objects.get(queue=governed_queue, user__username="ada")
    bob = QueueMembership.objects.get(queue=governed_queue, user__username="bob")
    form = {
        "strategy": AssignmentStrategy.WEIGHTED_ROUND_ROBIN,
        "max_open_per_member": "20",
        "overflow_queue": "",
        "when_everyone_away": governed_queue.when_everyone_away,
        "return_policy": governed_queue.return_policy,
        "distribution_period": governed_queue.distribution_period,
        "credit_back": "on",
        "business_timezone": "UTC",
        "business_days": "0,1,2,3,4",
        f"weight_{ada.user_id}": "3",
        f"available_{ada.user_id}": "on",
        f"weight_{bob.user_id}": "1",
        f"available_{bob.user_id}": "on",
    }

    response = client.post(reverse("console:queue-settings", args=[governed_queue.pk]), form)

    staged = AuditEvent.objects.get(action=AuditAction.CONFIG_CHANGED, outcome=STAGED)
    assert response.headers["Location"] == reverse("console:staged-change", args=[staged.pk])
    assert Queue.objects.get(pk=governed_queue.pk).strategy == AssignmentStrategy.ROUND_ROBIN
    page = client.get(response.headers["Location"]).content.decode()
    assert "Weighted round robin" in page and "weight 1 → 3" in page
    assert "75.0%" in page  # ada's share after: 3 of 4

    client.post(response.headers["Location"], {"action": "apply", "confirm": "yes"})

    queue = Queue.objects.get(pk=governed_queue.pk)
    assert (queue.strategy, queue.max_open_per_member) == (AssignmentStrategy.WEIGHTED_ROUND_ROBIN, 20)
    assert QueueMembership.objects.get(pk=ada.pk).weight == 3


def test_console_settings_apply_at_once_when_not_governed(client, ops_person):
    queue = QueueFactory(name="SMB")
    client.force_login(ops_person)
    page = client.get(reverse("console:queue-settings", args=[queue.pk])).content.decode()
    assert "Add member" in page and "Stage the change" not in page
    form = {
        "strategy": AssignmentStrategy.LEAST_LOADED,
        "when_everyone_away": queue.when_everyone_away,
        "return_policy": queue.return_policy,
        "distribution_period": queue.distribution_period,
        "business_timezone": "UTC",
        "business_days": "0,1,2,3,4",
        "add_member": ops_person.username,
        "add_weight": "2",
    }

    client.post(reverse("console:queue-settings", args=[queue.pk]), form)

    queue.refresh_from_db()
    assert queue.strategy == AssignmentStrategy.LEAST_LOADED and queue.credit_back is False
    assert dict(queue.memberships.values_list("user__username", "weight")) == {"olga": 2}
    assert queue.history.latest().history_user == ops_person


def test_rule_owners_may_view_but_not_change_queue_settings(client, rule_owner):
    queue = QueueFactory(name="SMB")
    client.force_login(rule_owner)

    assert client.get(reverse("console:changes")).status_code == 200
    assert client.get(reverse("console:queue-settings", args=[queue.pk])).status_code == 403


def test_restoring_a_governed_queue_is_staged(admin, ops_person, governed_queue):
    version = Queue.history.filter(id=governed_queue.pk).latest()
    edit(governed_queue, ops_person, max_open_per_member=2)

    result = queue_restore(queue=governed_queue, kind=ChangeKind.QUEUE, history_id=version.history_id, by=admin)

    assert not result.applied and result.staged.data["restored_from"] == version.history_id
    assert Queue.objects.get(pk=governed_queue.pk).max_open_per_member == 2
    queue_change_confirm(event_id=result.staged.pk, by=admin)
    assert Queue.objects.get(pk=governed_queue.pk).max_open_per_member is None
    assert AuditEvent.objects.get(action=AuditAction.CONFIG_RESTORED).data["staged_event"] == result.staged.pk


def test_a_source_token_change_is_listed_without_the_token(ops_person):
    source = SourceFactory(name="chat")
    source.set_new_token()
    edit(source, ops_person)

    newest = change_list(kind=ChangeKind.SOURCE, object_id=source.pk)[0]

    assert [f.name for f in newest.fields] == ["token_prefix"]  # a prefix tells tokens apart; the hash is not kept
    assert not hasattr(Source.history.latest(), "token_hash")


def test_evidence_names_members_a_new_cap_would_skip_now_and_what_it_does_not_estimate(ops_person, governed_queue):
    proposal = queue_proposal_current(governed_queue)
    proposal["fields"]["max_open_per_member"] = 5
    proposal["fields"]["when_everyone_away"] = "hold"

    evidence = queue_change_propose(queue=governed_queue, proposal=proposal, by=ops_person).staged.data["evidence"]

    assert evidence["at_cap_now"] == ["ada", "bob"]  # 6 and 9 open leads
    assert evidence["moved_estimate"] == 0  # shares unchanged
    assert evidence["not_estimated"] == []  # the away policy is modelled: where leads with nobody in go
    assert evidence["nobody_in"]["goes_new"] == "held until the first member's hours start"


def test_queue_history_page_lists_queue_and_membership_changes_within_a_query_budget(
    client, admin, ops_person, governed_queue, django_assert_max_num_queries
):
    edit(governed_queue, ops_person, ack_sla_minutes=15)
    client.force_login(admin)

    with django_assert_max_num_queries(25):
        page = client.get(reverse("console:object-changes", args=["queue", governed_queue.pk])).content.decode()

    assert "Member ada in Enterprise" in page and "<del>30</del> → <ins>15</ins>" in page
    assert page.count("Restore</button>") == 3  # every version but the newest


def test_replay_picks_share_by_weight_and_skip_unavailable_members():
    members = {1: {"weight": 3, "is_available": True}, 2: {"weight": 1, "is_available": True}}

    weighted = replay_picks(AssignmentStrategy.WEIGHTED_ROUND_ROBIN, members, 8)
    plain = replay_picks(AssignmentStrategy.ROUND_ROBIN, members, 4)
    members[1]["is_available"] = False
    one_left = replay_picks(AssignmentStrategy.ROUND_ROBIN, members, 3)
    members[2]["is_available"] = False

    assert (weighted.count(1), weighted.count(2)) == (6, 2)
    assert plain == [1, 2, 1, 2]
    assert one_left == [2, 2, 2]
    assert replay_picks(AssignmentStrategy.LEAST_LOADED, members, 2) == [None, None]


def test_evidence_of_a_weight_change_lists_the_replayed_leads_that_move(ops_person, governed_queue):
    proposal = queue_proposal_current(governed_queue)
    proposal["fields"]["strategy"] = AssignmentStrategy.WEIGHTED_ROUND_ROBIN
    ada = QueueMembership.objects.get(queue=governed_queue, user__username="ada")
    proposal["members"][str(ada.user_id)]["weight"] = 3

    evidence = queue_change_propose(queue=governed_queue, proposal=proposal, by=ops_person).staged.data["evidence"]

    assert evidence["moved_certain"] == 0
    assert evidence["moved_estimate"] == len(evidence["moved_leads"]) > 0
    assert {(m["from"], m["to"]) for m in evidence["moved_leads"]} == {("bob", "ada")}
    assert {m["user"]: m["leads_new"] for m in evidence["members"]} == {"ada": 7, "bob": 3}


def test_console_settings_refuse_half_set_hours_saying_why(client, ops_person):
    queue = QueueFactory(name="SMB")
    client.force_login(ops_person)
    form = {
        "strategy": queue.strategy,
        "when_everyone_away": queue.when_everyone_away,
        "return_policy": queue.return_policy,
        "distribution_period": queue.distribution_period,
        "business_timezone": "UTC",
        "business_days": "0,1,2,3,4",
        "business_start": "09:00",
    }

    response = client.post(reverse("console:queue-settings", args=[queue.pk]), form)

    assert response.status_code == 400
    assert "Set both business start and end" in response.content.decode()
    assert Queue.objects.get(pk=queue.pk).business_start is None


def test_the_replay_counts_leads_nobody_was_in_for_and_where_they_would_go(ops_person, governed_queue):
    """A member on time off at a lead's time is not picked for it; a change that leaves nobody in says where
    those leads go under the proposed overflow and away policy."""
    overflow = QueueFactory(name="Overflow desk")
    members = list(governed_queue.memberships.values_list("user_id", flat=True))
    window = timezone.now() - dt.timedelta(days=14)
    leads = list(Lead.objects.filter(queue=governed_queue, assignee__isnull=False, assigned_at__gte=window))
    first = min(lead.assigned_at for lead in leads)
    for user_id in members:
        TimeOffFactory(user_id=user_id, start=first - dt.timedelta(hours=1), end=timezone.now() + dt.timedelta(days=1))
    proposal = queue_proposal_current(governed_queue)
    proposal["fields"]["overflow_queue_id"] = overflow.pk
    proposal["fields"]["when_everyone_away"] = "overflow"

    evidence = queue_change_propose(queue=governed_queue, proposal=proposal, by=ops_person).staged.data["evidence"]

    assert evidence["nobody_in"]["now"] == evidence["nobody_in"]["new"] == len(leads) > 0
    assert evidence["nobody_in"]["goes_new"] == "the overflow queue Overflow desk"
