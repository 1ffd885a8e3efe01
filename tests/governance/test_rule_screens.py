"""The rule screens: who may do what (403 otherwise), what a refused action says, the draft editor, the
replay command, and the list page's query count."""

import io
import json

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.urls import reverse

from routing.governance.models import ReplayRun, RuleSignOff
from routing.governance.services import rule_promote
from routing.models import Rule
from routing.services import lead_route
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, UserFactory, case
from tests.governance.helpers import review

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_owner():
    user = UserFactory(username="petra")
    user.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    return user


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_promotion_blocked_on_the_console_lists_every_missing_piece(client, rule_owner):
    rule = RuleFactory(owner=rule_owner, stage="draft", description="", test_cases=[])
    client.force_login(rule_owner)
    response = client.post(reverse("console:rule-action", args=[rule.pk, "promote_staging"]), follow=True)
    (message,) = messages_of(response)
    assert message.startswith("Promotion blocked:")
    assert "Write a description: what the rule is for." in message
    assert "Add at least one test case" in message
    assert Rule.objects.get(pk=rule.pk).stage == "draft"


def test_a_rule_owner_cannot_edit_promote_or_sign_off_someone_elses_rule(client, rule_owner, other_owner):
    rule = RuleFactory(owner=rule_owner, stage="draft")
    client.force_login(other_owner)
    assert client.get(reverse("console:rule-edit", args=[rule.pk])).status_code == 403
    assert client.post(reverse("console:rule-action", args=[rule.pk, "promote_staging"])).status_code == 403
    assert client.post(reverse("console:rule-action", args=[rule.pk, "sign_off"])).status_code == 403
    page = client.get(reverse("console:rule", args=[rule.pk]))
    assert page.status_code == 200 and b"Promote to staging</button>" not in page.content


def test_ops_people_see_rules_but_cannot_create_them_or_start_replays(client, ops_person):
    client.force_login(ops_person)
    assert client.get(reverse("console:rules")).status_code == 200
    assert client.get(reverse("console:rule-new")).status_code == 403
    assert client.post(reverse("console:replays"), {"limit": 10}).status_code == 403


def test_people_outside_the_console_groups_get_403_on_rule_screens(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("console:rules")).status_code == 403
    assert client.get(reverse("console:my-rules")).status_code == 403


def test_saving_a_draft_with_bad_json_says_where_and_keeps_production_unchanged(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    client.force_login(rule_owner)
    form = {
        "name": rule.name,
        "owner": rule_owner.pk,
        "priority": 5,
        "queue": rule.queue_id,
        "sla_minutes": 10,
        "condition": '{"field": "country", "op": "bigger", "value": 1}',
        "test_cases": "[]",
    }
    response = client.post(reverse("console:rule-edit", args=[rule.pk]), form)
    assert response.status_code == 400
    assert "when.op: unknown op &#x27;bigger&#x27;" in response.content.decode()
    form["condition"] = '{"field": "country", "op": "eq", "value": "US"}'
    response = client.post(reverse("console:rule-edit", args=[rule.pk]), form, follow=True)
    assert "Production is unchanged until you promote it." in messages_of(response)[0]
    rule.refresh_from_db()
    assert rule.condition["value"] == "US" and rule.production_version.condition["value"] == "mql"


def test_signing_off_from_my_rules_once_per_week(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    review(rule, rule_owner)
    client.force_login(rule_owner)
    url = reverse("console:rule-action", args=[rule.pk, "sign_off"])
    client.post(url, {"comment": "Looked fine", "next": "mine"}, follow=True)
    response = client.post(url, {"comment": "again", "next": "mine"}, follow=True)
    assert "is already signed off for" in messages_of(response)[0]
    assert RuleSignOff.objects.get(rule=rule).comment == "Looked fine"


def test_the_rules_list_costs_the_same_queries_for_3_or_30_rules(client, rule_owner, django_assert_num_queries):
    client.force_login(rule_owner)
    RuleFactory.create_batch(3, owner=rule_owner)
    # With the saved views of the navigation and the changes awaiting review; none signed this week, so no
    # reopened sign-off is looked for.
    with django_assert_num_queries(9) as few:
        client.get(reverse("console:rules"))
    RuleFactory.create_batch(27, owner=rule_owner)
    with django_assert_num_queries(len(few.captured_queries)):
        client.get(reverse("console:rules"))


def test_replay_rules_command_prints_counts_and_moved_leads_and_stores_the_run(rule_owner):
    ae, sdr = QueueFactory(name="AE"), QueueFactory(name="SDR")
    MembershipFactory(queue=ae)
    rule = RuleFactory(owner=rule_owner, queue=ae)
    leads = [LeadFactory(lead_id=f"w-{n}") for n in range(3)]
    for lead in leads:
        lead_route(lead_id=lead.pk)
    rule.queue, rule.test_cases = sdr, [case("MQL", "SDR", lifecycle_stage="mql")]
    rule.save()
    rule_promote(rule=rule, to="staging", by=rule_owner)
    out, err = io.StringIO(), io.StringIO()
    call_command("replay_rules", "--limit", "2", stdout=out, stderr=err)
    run = ReplayRun.objects.get()
    assert out.getvalue().splitlines()[:4] == [
        f"Replay #{run.pk}: 2 leads, 2 would move.",
        "  Queue    before     after",
        "  AE            2         0",
        "  SDR           0         2",
    ]
    assert "lead w-2" in out.getvalue() and "lead w-0" not in out.getvalue()  # the newest two
    assert "[##############################] 2/2" in err.getvalue()
    call_command("replay_rules", "--json", stdout=(as_json := io.StringIO()), stderr=io.StringIO())
    assert json.loads(as_json.getvalue())["moved_count"] == 3


def test_replay_rules_command_refuses_a_bad_date():
    with pytest.raises(CommandError, match="is not a date"):
        call_command("replay_rules", "--since", "last tuesday", stderr=io.StringIO())


def test_the_monday_reminder_is_scheduled_for_monday_morning():
    entry = settings.CELERY_BEAT_SCHEDULE["sign-off-reminders"]
    assert entry["task"] == "routing.governance.tasks.sign_off_reminders_task"
    assert (entry["schedule"].day_of_week, min(entry["schedule"].hour)) == ({1}, 8)


def test_previewing_an_existing_lead_by_id_explains_it_with_its_own_data(client, rule_owner):
    QueueFactory(name="Recent")
    RuleFactory(
        name="This year",
        owner=rule_owner,
        queue=QueueFactory(name="Fresh"),
        condition={"field": "occurred_at", "op": "gte", "value": "2026-01-01"},
        test_cases=[case("new", "Fresh", occurred_at="2026-03-01T00:00:00Z")],
    )
    lead = LeadFactory(occurred_at="2025-06-01T12:00:00Z")
    client.force_login(rule_owner)
    response = client.post(reverse("console:preview"), {"lead_id": lead.pk})
    page = response.content.decode()
    assert response.status_code == 200
    assert "No rule would match" in page
    assert "occurred_at ≥ &#x27;2026-01-01&#x27; — occurred_at was &#x27;2025-06-01T12:00:00+00:00&#x27;" in page
    missing = client.post(reverse("console:preview"), {"lead_id": 999999})
    assert missing.status_code == 400 and "There is no lead #999999." in missing.content.decode()
    # Opened from a lead's page: its id is filled in and the lead box is empty (it said "null").
    opened = client.get(reverse("console:preview"), {"lead": lead.pk}).content.decode()
    assert f'value="{lead.pk}"' in opened and "\nnull</textarea>" not in opened


def test_each_role_sees_its_own_work_first_and_nothing_that_would_refuse_it(client, ops_person, rule_owner):
    def nav(user):
        client.force_login(user)
        page = client.get(reverse("console:replays")).content.decode()
        links = page[page.index('<nav aria-label="Console">') : page.index("</nav>")]
        return [line.split(">")[1].split("<")[0] for line in links.split("<a ")[1:]], page

    ops_links, ops_page = nav(ops_person)
    assert ops_links[:4] == ["Queues", "Items", "Incidents", "Notifications"] and "My rules" not in ops_links
    assert "Start replay" not in ops_page and "Rule owners and admins start replays" in ops_page
    owner_links, owner_page = nav(rule_owner)
    assert owner_links[:2] == ["My rules", "Rules"]
    assert "Start replay" in owner_page
