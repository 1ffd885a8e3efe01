"""A governed queue's routing (settings and members) cannot be changed around the staging (issue 19): the admin
shows it read-only and points to the settings screen; a rules file import stages the change as the person
importing; turning governance off is a superuser's, with a reason, audited. A person's own hours are theirs."""

import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from routing.availability.models import WorkingHours
from routing.changes.queues import STAGED, queue_change_confirm, staged_changes
from routing.models import AssignmentStrategy, Queue, QueueMembership
from routing.rules import ActorRequired, RulesFileError, rules_export, rules_import
from tests.factories import MembershipFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def governed_queue():
    queue = QueueFactory(name="Enterprise", governed=True, strategy=AssignmentStrategy.ROUND_ROBIN, ack_sla_minutes=30)
    MembershipFactory(queue=queue, user=UserFactory(username="ada"))
    MembershipFactory(queue=queue, user=UserFactory(username="bob"), weight=2)
    return queue


def members(queue) -> set[tuple[str, int, bool]]:
    return set(QueueMembership.objects.filter(queue=queue).values_list("user__username", "weight", "is_available"))


def admin_post(queue, *, member_changes=None, add_member=None, **fields) -> dict:
    """The admin change form as a browser posts it: every queue field (read-only ones too, as a forged post
    would), the membership rows with `member_changes` (username → {weight, is_available, DELETE}) over them."""
    data = {}
    for f in Queue._meta.concrete_fields:
        if f.editable and not f.primary_key:
            value = fields.get(f.name, getattr(queue, f.attname))
            if isinstance(value, bool):
                if value:
                    data[f.name] = "on"
            else:
                data[f.name] = "" if value is None else value
    data.update({k: v for k, v in fields.items() if k not in data and not isinstance(v, bool)})
    rows = list(queue.memberships.select_related("user").order_by("pk")) if queue.pk else []
    for i, m in enumerate(rows):
        row = {"weight": m.weight, "is_available": m.is_available, **(member_changes or {}).get(m.user.username, {})}
        data |= {f"memberships-{i}-id": m.pk, f"memberships-{i}-queue": queue.pk, f"memberships-{i}-user": m.user_id}
        data[f"memberships-{i}-weight"] = row["weight"]
        if row["is_available"]:
            data[f"memberships-{i}-is_available"] = "on"
        if row.get("DELETE"):
            data[f"memberships-{i}-DELETE"] = "on"
    total = len(rows)
    if add_member is not None:
        data |= {f"memberships-{total}-user": add_member.pk, f"memberships-{total}-weight": 5}
        data[f"memberships-{total}-is_available"] = "on"
        total += 1
    data |= {
        "memberships-TOTAL_FORMS": total,
        "memberships-INITIAL_FORMS": len(rows),
        "memberships-MIN_NUM_FORMS": 0,
        "memberships-MAX_NUM_FORMS": 1000,
    }
    return data


def change_url(queue) -> str:
    return reverse("admin:routing_queue_change", args=[queue.pk])


# The admin


def test_admin_shows_a_governed_queues_routing_read_only_linking_its_settings_screen(client, root, governed_queue):
    client.force_login(root)

    page = client.get(change_url(governed_queue)).content.decode()

    assert reverse("console:queue-settings", args=[governed_queue.pk]) in page
    assert "This queue is governed" in page
    assert 'name="strategy"' not in page and 'name="max_open_per_member"' not in page
    assert 'name="ack_sla_minutes"' in page  # not a routing setting: edited here as before
    assert 'name="memberships-0-weight"' not in page and 'name="memberships-0-DELETE"' not in page


def test_admin_post_changes_neither_a_governed_queues_routing_nor_its_members(client, root, governed_queue):
    newcomer = UserFactory(username="cy")
    client.force_login(root)
    data = admin_post(
        governed_queue,
        strategy=AssignmentStrategy.LEAST_LOADED,
        max_open_per_member=3,
        business_start="09:00",
        business_end="17:00",
        ack_sla_minutes=15,
        governed=True,
        member_changes={"ada": {"weight": 9, "is_available": False}, "bob": {"DELETE": True}},
        add_member=newcomer,
    )

    answer = client.post(change_url(governed_queue), data)

    assert answer.status_code == 302, answer.content.decode()[:2000]
    queue = Queue.objects.get(pk=governed_queue.pk)
    assert queue.ack_sla_minutes == 15  # the one setting that is not routing applied
    assert (queue.strategy, queue.max_open_per_member, queue.business_start) == ("round_robin", None, None)
    assert members(queue) == {("ada", 1, True), ("bob", 2, True)}


def test_admin_still_changes_an_ungoverned_queues_routing_and_members_at_once(client, root):
    queue = QueueFactory(name="SMB")
    MembershipFactory(queue=queue, user=UserFactory(username="ada"))
    client.force_login(root)

    answer = client.post(
        change_url(queue), admin_post(queue, max_open_per_member=3, member_changes={"ada": {"weight": 4}})
    )

    assert answer.status_code == 302
    assert Queue.objects.get(pk=queue.pk).max_open_per_member == 3
    assert members(queue) == {("ada", 4, True)}


def test_staff_who_may_change_queues_cannot_turn_governance_off(client, governed_queue):
    staff = UserFactory(username="sam", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_queue", "change_queue", "view_queuemembership"])
    )
    client.force_login(staff)
    assert 'name="governed"' not in client.get(change_url(governed_queue)).content.decode()

    answer = client.post(change_url(governed_queue), admin_post(governed_queue, governed=False))

    assert answer.status_code == 302
    assert Queue.objects.get(pk=governed_queue.pk).governed is True
    assert not AuditEvent.objects.filter(action=AuditAction.CONFIG_CHANGED).exists()


def test_a_superuser_turns_governance_off_only_with_a_reason_and_it_is_audited(client, root, governed_queue):
    client.force_login(root)

    no_reason = client.post(change_url(governed_queue), admin_post(governed_queue, governed=False))
    assert no_reason.status_code == 200
    assert "Say why governance is turned off" in no_reason.content.decode()
    assert Queue.objects.get(pk=governed_queue.pk).governed is True

    reason = "Reorganising the team this week"
    answer = client.post(
        change_url(governed_queue), admin_post(governed_queue, governed=False, governance_reason=reason)
    )

    assert answer.status_code == 302
    assert Queue.objects.get(pk=governed_queue.pk).governed is False
    event = AuditEvent.objects.get(action=AuditAction.CONFIG_CHANGED, outcome="governance_off")
    assert (event.actor, event.data["queue_id"], event.data["reason"]) == (root, governed_queue.pk, reason)
    newest = Queue.history.filter(id=governed_queue.pk).latest()
    assert (newest.history_user, newest.history_change_reason) == (root, reason)


def test_the_admin_will_not_revert_a_governed_queue_to_an_old_version(client, root, governed_queue):
    old = Queue.history.filter(id=governed_queue.pk).earliest()
    Queue.objects.filter(pk=governed_queue.pk).update(max_open_per_member=4)
    client.force_login(root)
    url = reverse("admin:routing_queue_simple_history", args=[governed_queue.pk, old.history_id])

    answer = client.post(url, admin_post(governed_queue, max_open_per_member="", governed=False), follow=True)

    assert "Not reverted: Enterprise is governed" in answer.content.decode()
    queue = Queue.objects.get(pk=governed_queue.pk)
    assert (queue.max_open_per_member, queue.governed) == (4, True)


# The rules file


@pytest.fixture
def ops(ops_person):
    return ops_person


def file_with(change) -> dict:
    document = json.loads(json.dumps(rules_export()))
    change(next(q for q in document["queues"] if q["name"] == "Enterprise"))
    return document


def routing_change(queue: dict) -> None:
    queue["strategy"] = "least_loaded"
    queue["max_open_per_member"] = 3
    queue["members"] = ["ada"]  # bob leaves
    queue["ack_sla_minutes"] = 12  # not routing: applies at once


def test_import_stages_a_governed_queues_routing_change_as_the_importer_and_applies_the_rest(ops, governed_queue):
    imported = rules_import(document=file_with(routing_change), by=ops)

    queue = Queue.objects.get(pk=governed_queue.pk)
    assert queue.ack_sla_minutes == 12
    assert (queue.strategy, queue.max_open_per_member) == ("round_robin", None)
    assert members(queue) == {("ada", 1, True), ("bob", 2, True)}
    [staged] = staged_changes(queue=queue)
    assert staged.actor == ops and staged.outcome == STAGED
    assert set(staged.data["fields"]) == {"strategy", "max_open_per_member"}
    assert [m["user"] for m in staged.data["members"]] == ["bob"]
    assert [change.staged_id for change in imported.queues_staged] == [staged.pk]
    assert imported.changed

    queue_change_confirm(event_id=staged.pk, by=ops)  # once confirmed, the queue is what the file says

    queue = Queue.objects.get(pk=governed_queue.pk)
    assert (queue.strategy, queue.max_open_per_member, queue.ack_sla_minutes) == ("least_loaded", 3, 12)
    assert members(queue) == {("ada", 1, True)}


def test_importing_the_same_file_again_stages_nothing_new(ops, governed_queue):
    document = file_with(routing_change)
    first = rules_import(document=document, by=ops)

    again = rules_import(document=json.loads(json.dumps(document)), by=ops)

    assert len(staged_changes(queue=governed_queue)) == 1
    assert again.queues_staged[0].already_staged
    assert again.queues_staged[0].staged_id == first.queues_staged[0].staged_id
    assert not again.changed


def test_export_then_import_of_a_governed_queue_writes_and_stages_nothing(ops, governed_queue):
    governed_queue.business_start, governed_queue.business_end = "09:00", "17:00"
    governed_queue.save()
    queue_history, audit = Queue.history.count(), AuditEvent.objects.count()

    imported = rules_import(document=json.loads(json.dumps(rules_export())), by=ops)

    assert not imported.changed and imported.queues_staged == []
    assert Queue.history.count() == queue_history
    assert AuditEvent.objects.exclude(action=AuditAction.RULES_IMPORTED).count() == audit


def test_import_changing_a_governed_queue_without_a_person_is_refused_and_writes_nothing(governed_queue):
    with pytest.raises(ActorRequired) as refused:
        rules_import(document=file_with(routing_change))

    assert any("queues[0] (Enterprise)" in problem and "governed" in problem for problem in refused.value.problems)
    assert Queue.objects.get(pk=governed_queue.pk).ack_sla_minutes == 30  # all or nothing
    assert staged_changes() == []


def test_import_as_someone_who_may_not_change_queues_names_the_queue_and_its_settings_screen(
    rule_owner, governed_queue
):
    with pytest.raises(RulesFileError) as refused:
        rules_import(document=file_with(routing_change), by=rule_owner)

    [problem] = refused.value.problems
    assert problem.startswith("queues[0] (Enterprise) is governed: rowan may not stage a change to its routing")
    assert reverse("console:queue-settings", args=[governed_queue.pk]) in problem
    assert staged_changes() == [] and Queue.objects.get(pk=governed_queue.pk).ack_sla_minutes == 30


def test_the_command_dry_run_says_the_change_would_be_staged_and_writes_nothing(tmp_path, ops, governed_queue):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(file_with(routing_change)))
    out = io.StringIO()

    call_command("import_rules", str(path), "--dry-run", "--as", "olga", stdout=out)

    said = out.getvalue()
    assert "Would be staged for review, not applied (governed queue;" in said
    assert "queues[0] (Enterprise): changes strategy, max open per member; member bob: removed" in said
    assert staged_changes() == [] and Queue.objects.get(pk=governed_queue.pk).ack_sla_minutes == 30


def test_the_command_stages_as_the_named_person_and_says_where_to_apply_it(tmp_path, ops, governed_queue):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(file_with(routing_change)))
    with pytest.raises(CommandError, match="staged for review on a governed queue"):
        call_command("import_rules", str(path))
    out = io.StringIO()

    call_command("import_rules", str(path), "--as", "olga", stdout=out)

    [staged] = staged_changes(queue=governed_queue)
    assert staged.actor == ops
    assert reverse("console:staged-change", args=[staged.pk]) in out.getvalue()


def test_a_members_own_hours_from_a_file_apply_at_once_on_a_governed_queue(ops, governed_queue):
    def ada_hours(queue):
        queue["members"] = [{"username": "ada", "timezone": "Europe/Berlin"}, "bob"]

    imported = rules_import(document=file_with(ada_hours), by=ops)

    assert WorkingHours.objects.get(user__username="ada").timezone == "Europe/Berlin"
    assert imported.queues_staged == [] and staged_changes() == []
    assert members(governed_queue) == {("ada", 1, True), ("bob", 2, True)}


def test_a_superuser_may_add_a_queue_that_is_governed_from_the_start_and_it_is_audited(client, root):
    client.force_login(root)
    page = client.get(reverse("admin:routing_queue_add")).content.decode()
    assert 'name="governed"' in page and 'name="governance_reason"' not in page

    data = admin_post(Queue(name="Strategic"), governed=True)
    answer = client.post(reverse("admin:routing_queue_add"), data)

    assert answer.status_code == 302, answer.content.decode()[:2000]
    queue = Queue.objects.get(name="Strategic")
    assert queue.governed
    assert AuditEvent.objects.get(outcome="governance_on").data["queue_id"] == queue.pk
