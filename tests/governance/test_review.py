"""Review that means something: a sign-off covers the rule's change set (every version, draft edit and
production change since the last sign-off) and needs each change's diff opened by its signer first; the rules
with changes awaiting review come first; exceptions count against a rule only for what a rule causes; a gate
with nothing to judge is neutral; and, when switched on, production needs a second person's approval."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionReason
from routing.governance.gates import Gate, GateState
from routing.governance.metrics import rule_exceptions, success_metrics
from routing.governance.models import PromotionKind, RuleApproval, RuleChangeView, RuleSignOff
from routing.governance.selectors import my_rules
from routing.governance.services import (
    GovernanceError,
    PromotionBlocked,
    promotion_gates,
    rule_approve,
    rule_force_production,
    rule_promote,
    rule_sign_off,
)
from routing.governance.sign_offs import ChangeKind, change_set, change_sets, change_view_record
from routing.models import Rule, RuleStage
from tests.factories import ExceptionItemFactory, LeadFactory, RuleFactory, UserFactory, case, personal_token
from tests.governance.helpers import edit, replay, review, reviewed_sign_off, stage

pytestmark = pytest.mark.django_db

MONDAY = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)  # ISO week 2026-W47
TUESDAY = MONDAY + dt.timedelta(days=1)
WEDNESDAY = MONDAY + dt.timedelta(days=2)
NEXT_MONDAY = MONDAY + dt.timedelta(days=7)


@pytest.fixture
def rule(sales, rule_owner):
    """In production as v1 since a month ago."""
    with time_machine.travel(MONDAY - dt.timedelta(days=30), tick=False):
        return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)


@pytest.fixture
def signed(rule, rule_owner):
    """Signed off on Monday, every change of its first change set viewed."""
    with time_machine.travel(MONDAY, tick=False):
        reviewed_sign_off(rule=rule, by=rule_owner, comment="Looked fine")
    return rule


@pytest.fixture
def backup(db, rule):
    person = UserFactory(username="bea", first_name="Bea", last_name="Backup")
    Rule.objects.filter(pk=rule.pk).update(backup_owner=person)  # a live setting, in no version
    rule.refresh_from_db()
    return person


def to_partners(partners):
    return {"queue": partners, "test_cases": [case("an MQL", "Partners", lifecycle_stage="mql")]}


def keys(found) -> list[str]:
    return [change.key for change in found.changes]


def change_url(rule, key) -> str:
    return reverse("console:rule-change", args=[rule.pk, key])


# The change set


def test_the_change_set_holds_every_version_draft_edit_and_production_change_since_the_last_sign_off(
    signed, rule_owner, partners
):
    with time_machine.travel(TUESDAY, tick=False):
        edit(signed, description="Partners take MQLs now.")
        stage(signed, **to_partners(partners))  # a draft edit, then v2 frozen in staging
        replay(by=rule_owner)
        rule_promote(rule=signed, to=RuleStage.PRODUCTION, by=rule_owner)

    found = change_set(rule=signed)

    v2 = signed.versions.get(number=2)
    production = signed.promotions.get(kind=PromotionKind.PRODUCTION, version=v2)
    assert [(c.kind, c.label) for c in found.changes] == [
        (ChangeKind.EDIT, "Draft edited (description)"),
        (ChangeKind.EDIT, "Draft edited (queue, test_cases)"),
        (ChangeKind.VERSION, "New version v2"),
        (ChangeKind.PROMOTION, "Promoted to production (v2)"),
    ]
    edits = signed.history.filter(history_date__gt=MONDAY, history_type="~").values_list("history_id", flat=True)
    assert {c.ref for c in found.changes[:2]} <= set(edits)
    assert keys(found)[2:] == [f"version-{v2.pk}", f"promotion-{production.pk}"]


def test_a_forced_change_is_one_change_of_the_set_and_its_diff_is_against_the_production_it_replaced(
    signed, rule_owner, admin, partners, client
):
    with time_machine.travel(TUESDAY, tick=False):
        edit(signed, queue=partners)
        forced = rule_force_production(rule=signed, by=admin, reason="Sales is closed today")

    found = change_set(rule=signed)

    assert [c.label for c in found.changes] == ["Draft edited (queue)", "Forced into production by an admin (v2)"]
    assert found.changes[1].key == f"promotion-{forced.pk}"
    client.force_login(rule_owner)
    page = client.post(change_url(signed, f"promotion-{forced.pk}")).content.decode()
    assert 'data-field="queue"' in page and "Partners" in page and "Sales" in page


def test_a_rule_never_signed_off_reviews_everything_since_it_was_made(rule):
    assert [c.label for c in change_set(rule=rule).changes] == ["New version v1", "Promoted to production (v1)"]


def test_change_sets_take_one_query_for_any_number_of_rules_and_two_with_the_viewer(
    sales, rule_owner, django_assert_num_queries
):
    rules = RuleFactory.create_batch(12, owner=rule_owner, queue=sales)
    with django_assert_num_queries(1):
        found = change_sets(rule_ids=[r.pk for r in rules])
    with django_assert_num_queries(2):
        change_sets(rule_ids=[r.pk for r in rules], viewer=rule_owner)
    assert {len(found[r.pk]) for r in rules} == {2}


# Viewing a change: recorded by the server that sent its diff


def test_opening_a_change_records_that_its_reader_viewed_it_and_answers_the_diff(signed, rule_owner, client):
    with time_machine.travel(TUESDAY, tick=False):
        edit(signed, description="Only MQLs from the web form.")
    [change] = change_set(rule=signed).changes
    client.force_login(rule_owner)

    with time_machine.travel(WEDNESDAY, tick=False):
        fragment = client.post(change_url(signed, change.key), headers={"HX-Request": "true"})

    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert 'data-field="description"' in body and "Only MQLs from the web form." in body
    assert f'id="viewed-{change.key}"' in body and 'hx-swap-oob="true"' in body and "✓ viewed" in body
    assert "<html" not in body  # a fragment for the change's <details>
    view = RuleChangeView.objects.get(change=change.key)
    assert (view.rule, view.change, view.viewer, view.at) == (signed, change.key, rule_owner, WEDNESDAY)
    assert change_set(rule=signed, viewer=rule_owner).viewed == {change.key: WEDNESDAY}


def test_without_javascript_the_diff_opens_on_a_page_of_its_own(signed, rule_owner, client):
    edit(signed, description="Changed.")
    [change] = change_set(rule=signed).changes
    client.force_login(rule_owner)

    page = client.post(change_url(signed, change.key)).content.decode()

    assert "<html" in page and "Back to My rules" in page and "Changed." in page
    assert RuleChangeView.objects.filter(viewer=rule_owner, change=change.key).exists()


def test_only_the_first_view_counts_and_each_person_has_their_own(signed, rule_owner, backup, client):
    edit(signed, description="Changed.")
    [change] = change_set(rule=signed).changes
    with time_machine.travel(TUESDAY, tick=False):
        change_view_record(rule=signed, key=change.key, viewer=rule_owner)
    with time_machine.travel(WEDNESDAY, tick=False):
        change_view_record(rule=signed, key=change.key, viewer=rule_owner)

    assert change_set(rule=signed, viewer=rule_owner).viewed == {change.key: TUESDAY}
    assert change_set(rule=signed, viewer=backup).unviewed == [change]


def test_looking_at_a_diff_is_never_a_get_so_no_link_or_image_can_record_a_view(signed, rule_owner, client):
    edit(signed, description="Changed.")
    [change] = change_set(rule=signed).changes
    client.force_login(rule_owner)

    assert client.get(change_url(signed, change.key)).status_code == 405
    assert not RuleChangeView.objects.filter(change=change.key).exists()


def test_a_change_of_another_rule_or_a_made_up_key_is_not_found(signed, sales, rule_owner, client):
    other = RuleFactory(owner=rule_owner, queue=sales)
    [theirs, _] = change_set(rule=other).changes
    client.force_login(rule_owner)

    assert client.post(change_url(signed, theirs.key)).status_code == 404
    assert client.post(change_url(signed, "version-99999999")).status_code == 404
    assert client.post(change_url(signed, "draft-1")).status_code == 404
    assert not RuleChangeView.objects.filter(rule=other).exists()
    assert not RuleChangeView.objects.filter(change__in=[theirs.key, "version-99999999", "draft-1"]).exists()


def test_opening_a_change_needs_a_console_login(signed, client):
    edit(signed, description="Changed.")
    [change] = change_set(rule=signed).changes

    response = client.post(change_url(signed, change.key))

    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not RuleChangeView.objects.filter(change=change.key).exists()


# Signing off: every change viewed, and the sign-off records what it covered


def test_signing_off_before_viewing_every_change_is_refused_naming_those_not_viewed(signed, rule_owner, partners):
    with time_machine.travel(TUESDAY, tick=False):
        edit(signed, description="Partners take MQLs now.")
        stage(signed, **to_partners(partners))
    first, *rest = change_set(rule=signed).changes
    change_view_record(rule=signed, key=first.key, viewer=rule_owner)

    with pytest.raises(GovernanceError) as refused:
        rule_sign_off(rule=signed, by=rule_owner, at=WEDNESDAY)

    assert str(refused.value) == (
        "Open the diff of every change before signing 'MQL to sales' off; not viewed by you yet: "
        "Draft edited (queue, test_cases) 2026-11-17 09:00; New version v2 2026-11-17 09:00."
    )
    assert RuleSignOff.objects.get(rule=signed).at == MONDAY  # Monday's sign-off stands
    assert len(rest) == 2


def test_the_backup_owners_views_do_not_count_for_the_owner(signed, rule_owner, backup):
    edit(signed, description="Changed.")
    review(signed, backup)

    with pytest.raises(GovernanceError, match=r"not viewed by you yet: Draft edited \(description\)"):
        rule_sign_off(rule=signed, by=rule_owner, at=WEDNESDAY)
    assert rule_sign_off(rule=signed, by=backup, at=WEDNESDAY).by == backup


def test_a_change_made_after_the_reviewer_opened_the_others_must_be_viewed_too(signed, rule_owner):
    with time_machine.travel(TUESDAY, tick=False):
        edit(signed, description="First change.")
    review(signed, rule_owner)
    with time_machine.travel(TUESDAY + dt.timedelta(hours=1), tick=False):
        edit(signed, inputs="lifecycle_stage, country")  # while the reviewer was reading

    with pytest.raises(GovernanceError, match=r"not viewed by you yet: Draft edited \(inputs\) 2026-11-17 10:00\.$"):
        rule_sign_off(rule=signed, by=rule_owner, at=WEDNESDAY)


def test_the_sign_off_stores_the_change_set_it_covers_and_who_viewed_what_when(
    signed, rule_owner, partners, admin, client
):
    with time_machine.travel(TUESDAY, tick=False):
        edit(signed, description="Partners take MQLs now.")
        stage(signed, **to_partners(partners))
        edit(signed, rollback_plan="Roll back to v1.")
        forced = rule_force_production(rule=signed, by=admin, reason="Urgent")
    changes = change_set(rule=signed).changes
    client.force_login(rule_owner)
    with time_machine.travel(WEDNESDAY, tick=False):
        for change in changes:
            assert client.post(change_url(signed, change.key), headers={"HX-Request": "true"}).status_code == 200

    sign_off = rule_sign_off(rule=signed, by=rule_owner, at=WEDNESDAY + dt.timedelta(hours=1), comment="Seen all")

    edits = [c.ref for c in changes if c.kind == ChangeKind.EDIT]
    assert len(edits) == 3
    assert sign_off.covers == {
        "versions": [2],
        "draft_edits": edits,
        "promotions": [{"id": forced.pk, "kind": "forced", "version": 3}],
        "viewed": [{"change": c.key, "label": c.label, "by": "rowan", "at": WEDNESDAY.isoformat()} for c in changes],
    }
    event = AuditEvent.objects.filter(action=AuditAction.RULE_SIGNED_OFF).latest("occurred_at")
    assert event.data["covers"] == sign_off.covers and event.outcome == "signed off again"
    assert change_set(rule=signed).changes == []  # nothing awaits review after it


def test_a_rule_with_no_change_since_its_last_sign_off_still_needs_the_weekly_sign_off(signed, rule_owner):
    [view] = my_rules(owner=rule_owner, now=NEXT_MONDAY)
    assert (view.row.signed_this_week, view.awaiting_review) == (False, 0)

    sign_off = rule_sign_off(rule=signed, by=rule_owner, at=NEXT_MONDAY)

    assert (sign_off.iso_week_label, sign_off.covers["versions"], sign_off.covers["viewed"]) == ("2026-W48", [], [])


def test_the_sign_off_form_refuses_with_a_message_naming_the_changes_not_viewed(signed, rule_owner, client):
    edit(signed, description="Changed.")
    client.force_login(rule_owner)

    response = client.post(reverse("console:rule-action", args=[signed.pk, "sign_off"]), {"next": "mine"}, follow=True)

    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Open the diff of every change before signing 'MQL to sales' off; not viewed by you")
    assert "Draft edited (description)" in message


# The weekly view: changes awaiting review first


def test_my_rules_puts_rules_with_changes_awaiting_review_first_with_their_count(signed, sales, rule_owner, client):
    with time_machine.travel(MONDAY - dt.timedelta(days=30), tick=False):
        quiet = RuleFactory(name="Quiet rule", owner=rule_owner, queue=sales, priority=1)
    with time_machine.travel(MONDAY, tick=False):
        reviewed_sign_off(rule=quiet, by=rule_owner)
    with time_machine.travel(NEXT_MONDAY, tick=False):
        edit(signed, description="Changed.")
        edit(signed, inputs="lifecycle_stage, country")
        views = my_rules(owner=rule_owner)
        client.force_login(rule_owner)
        page = client.get(reverse("console:my-rules")).content.decode()
        listing = client.get(reverse("console:rules")).content.decode()

    assert [(v.row.rule.name, v.awaiting_review) for v in views] == [("MQL to sales", 2), ("Quiet rule", 0)]
    assert page.index(f'id="rule-{signed.pk}"') < page.index(f'id="rule-{quiet.pk}"')
    assert "2 changes awaiting review" in page and page.count('class="change"') == 2
    assert (
        page.count("not viewed yet") == 2
        and f'hx-post="{change_url(signed, keys(change_set(rule=signed))[0])}"' in page
    )
    assert listing.index(f'data-rule="{signed.pk}"') < listing.index(f'data-rule="{quiet.pk}"')  # priority 1 after
    assert "2 changes awaiting review" in listing


def test_my_rules_shows_which_changes_the_reader_already_viewed(signed, rule_owner, client):
    with time_machine.travel(TUESDAY, tick=False):
        edit(signed, description="Changed.")
        review(signed, rule_owner)
    client.force_login(rule_owner)

    page = client.get(reverse("console:my-rules")).content.decode()

    assert "✓ viewed 2026-11-17 09:00" in page and "not viewed yet" not in page


# Exceptions: only what a rule causes counts against it


def test_my_rules_counts_only_the_exceptions_a_rule_causes_and_shows_the_rest_apart(signed, rule_owner, client):
    for reason in (
        ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
        ExceptionReason.ROUTING_SLA_BREACHED,
        ExceptionReason.DELIVERY_FAILED,
        ExceptionReason.DELIVERY_FAILED,
        ExceptionReason.HANDOFF_UNCONFIRMED,
        ExceptionReason.ENRICHMENT_INVALID,
    ):
        lead = LeadFactory(rule=signed, rule_version=1, queue=signed.queue)  # one open item per lead and reason
        ExceptionItemFactory(lead=lead, reason=reason, queue=signed.queue)
    client.force_login(rule_owner)

    [view] = my_rules(owner=rule_owner)
    page = client.get(reverse("console:my-rules")).content.decode()

    assert view.exceptions.caused_count == 2
    assert sorted(item.reason for item in view.exceptions.caused) == ["no_eligible_assignee", "routing_sla_breached"]
    expected = "Downstream of this rule, not caused by it: 3 delivery failures, 1 enrichment failure"
    assert view.exceptions.downstream_text == expected
    assert 'exceptions caused this week: <strong class="exceptions-caused">2</strong>' in page
    assert expected in page and "Delivery failed" not in page


def test_a_rule_with_only_downstream_failures_caused_none(signed):
    lead = LeadFactory(rule=signed, rule_version=1, queue=signed.queue)
    ExceptionItemFactory(lead=lead, reason=ExceptionReason.ENRICHMENT_FAILED, queue=signed.queue)
    now = dt.datetime.now(dt.UTC)

    found = rule_exceptions(rule=signed, start=now - dt.timedelta(days=1), end=now + dt.timedelta(days=1))

    assert (found.caused_count, found.caused, found.delivery, found.enrichment) == (0, [], 0, 1)
    assert found.downstream_text == "Downstream of this rule, not caused by it: 1 enrichment failure"


def test_success_metrics_keep_handoff_and_enrichment_answer_failures_out_of_the_exception_rate(signed):
    now = dt.datetime.now(dt.UTC)
    for reason in (ExceptionReason.HANDOFF_UNCONFIRMED, ExceptionReason.ENRICHMENT_INVALID):
        lead = LeadFactory(rule=signed, rule_version=1, queue=signed.queue, received_at=now - dt.timedelta(hours=1))
        ExceptionItemFactory(lead=lead, reason=reason, queue=signed.queue)

    result = success_metrics()[signed.pk]

    assert (result.decided, result.rule_exception_leads) == (2, 0)
    assert (result.delivery_exception_leads, result.enrichment_exception_leads) == (1, 1)
    assert (
        result.downstream_text == "Downstream of this rule, not caused by it: 1 delivery failure, 1 enrichment failure"
    )


# Gates: passed, failed, or nothing to judge


def test_nothing_to_promote_is_a_neutral_gate_not_a_failure_and_still_stops_the_promotion(rule, rule_owner, client):
    [changed] = [g for g in promotion_gates(rule, RuleStage.STAGING) if g.gate == "changed"]
    [staging] = promotion_gates(rule, RuleStage.PRODUCTION)
    client.force_login(rule_owner)

    page = client.get(reverse("console:rule", args=[rule.pk])).content.decode()

    assert (changed.state, staging.state) == (GateState.NOT_APPLICABLE, GateState.NOT_APPLICABLE)
    assert '<li class="not-applicable">– Nothing to promote: the draft is the same as production v1.</li>' in page
    assert '<li class="not-applicable">– Promote to staging first' in page
    assert "✗" not in page
    with pytest.raises(PromotionBlocked, match="Nothing to promote"):
        rule_promote(rule=rule, to=RuleStage.STAGING, by=rule_owner)


def test_a_gate_stores_and_reads_back_as_it_always_did():
    assert Gate("sla", True, "ok").as_dict() == {"gate": "sla", "passed": True, "message": "ok"}
    neutral = Gate("changed", False, "Nothing to promote.", not_applicable=True)
    assert Gate(**neutral.as_dict()) == neutral and neutral.as_dict()["not_applicable"] is True
    assert Gate(**{"gate": "sla", "passed": False, "message": "Set the SLA."}).state == GateState.FAILED


# Second-person approval for production


@pytest.fixture
def approval_on(settings):
    settings.HANDOFF = {**settings.HANDOFF, "PRODUCTION_APPROVAL": True}


@pytest.fixture
def staged(rule, rule_owner, partners):
    """v2 in staging with a replay: every gate but the approval passes."""
    stage(rule, **to_partners(partners))
    replay(by=rule_owner)
    return rule


def test_with_approval_off_production_needs_none_and_approving_is_refused(staged, rule_owner, admin):
    assert all(gate.gate != "approval" for gate in promotion_gates(staged, RuleStage.PRODUCTION, by=rule_owner))
    with pytest.raises(GovernanceError, match="Production approval is off"):
        rule_approve(rule=staged, by=admin)
    assert rule_promote(rule=staged, to=RuleStage.PRODUCTION, by=rule_owner).version.number == 2


def test_with_approval_on_production_waits_for_a_second_persons_approval(approval_on, staged, rule_owner, admin):
    with pytest.raises(PromotionBlocked) as blocked:
        rule_promote(rule=staged, to=RuleStage.PRODUCTION, by=rule_owner)
    assert [(g.gate, g.message) for g in blocked.value.failures] == [
        (
            "approval",
            "Get a second person's approval of staging v2: the owner rowan or an admin, other than whoever"
            " promotes it, approves it on the rule's page (production approval is on).",
        )
    ]

    approval = rule_approve(rule=staged, by=admin, comment="Checked the replay")
    promotion = rule_promote(rule=staged, to=RuleStage.PRODUCTION, by=rule_owner)

    assert (approval.version.number, approval.by, promotion.version.number) == (2, admin, 2)
    [gate] = [g for g in promotion.gate_results if g["gate"] == "approval"]
    assert gate["passed"] is True and "approved for production by ada" in gate["message"]
    event = AuditEvent.objects.get(action=AuditAction.RULE_PROMOTED, outcome="approved for production")
    assert (event.actor, event.rule, event.rule_version, event.data["comment"]) == (
        admin,
        staged,
        2,
        "Checked the replay",
    )


def test_the_promoters_own_approval_never_counts(approval_on, staged, rule_owner, admin):
    rule_approve(rule=staged, by=rule_owner)

    with pytest.raises(PromotionBlocked, match="You approved staging v2 yourself"):
        rule_promote(rule=staged, to=RuleStage.PRODUCTION, by=rule_owner)
    # The owner's approval does count for an admin who promotes it.
    assert rule_promote(rule=staged, to=RuleStage.PRODUCTION, by=admin).by == admin


def test_the_backup_owner_may_approve_the_owners_promotion(approval_on, staged, rule_owner, backup):
    rule_approve(rule=staged, by=backup)

    assert rule_promote(rule=staged, to=RuleStage.PRODUCTION, by=rule_owner).version.number == 2


@pytest.mark.parametrize("persona", ["ops_person", "outsider"])
def test_only_the_owner_backup_owner_or_an_admin_approves(approval_on, staged, persona, request):
    with pytest.raises(PermissionDenied, match=r"Only the rule's owner \(rowan\) or an admin approves"):
        rule_approve(rule=staged, by=request.getfixturevalue(persona))
    assert not RuleApproval.objects.exists()


def test_an_approval_is_of_one_staging_version_and_given_once(approval_on, staged, rule_owner, admin, sales):
    rule_approve(rule=staged, by=admin)
    with pytest.raises(GovernanceError, match="You already approved staging v2"):
        rule_approve(rule=staged, by=admin)

    stage(staged, queue=sales, test_cases=[case("an MQL", "Sales", lifecycle_stage="mql")])  # v3 replaces v2
    replay(by=rule_owner)

    with pytest.raises(PromotionBlocked, match="Get a second person's approval of staging v3"):
        rule_promote(rule=staged, to=RuleStage.PRODUCTION, by=rule_owner)


def test_nothing_staged_has_nothing_to_approve(approval_on, rule, admin):
    with pytest.raises(GovernanceError, match="Nothing to approve: 'MQL to sales' has no staging version."):
        rule_approve(rule=rule, by=admin)


def test_a_forced_promotion_needs_no_approval_and_keeps_its_reason(approval_on, rule, admin, partners):
    edit(rule, queue=partners)

    forced = rule_force_production(rule=rule, by=admin, reason="Sales is closed today")

    assert (forced.kind, forced.comment, RuleApproval.objects.count()) == ("forced", "Sales is closed today", 0)


def test_approving_on_the_rule_page(approval_on, staged, rule_owner, admin, client):
    client.force_login(admin)
    page = client.get(reverse("console:rule", args=[staged.pk])).content.decode()
    assert "Approve staging v2 for production" in page

    response = client.post(
        reverse("console:rule-action", args=[staged.pk, "approve"]), {"comment": "Replay looks right"}, follow=True
    )

    [message] = [str(m) for m in response.context["messages"]]
    assert message == "You approved staging v2 of 'MQL to sales' for production; someone other than you promotes it."
    page = response.content.decode()
    assert "Approved by ada" in page and "Approve staging v2 for production" not in page  # once per person
    client.force_login(rule_owner)
    page = client.get(reverse("console:rule", args=[staged.pk])).content.decode()
    assert '<li class="ok">✓ Staging v2 approved for production by ada' in page


def test_approving_through_the_api(approval_on, staged, rule_owner, admin, ops_person, client):
    url = f"/api/v1/rules/{staged.pk}/approve/"
    auth = {"HTTP_AUTHORIZATION": f"Token {personal_token(admin)}"}

    approved = client.post(url, {"comment": "ok"}, content_type="application/json", **auth)
    again = client.post(url, {}, content_type="application/json", **auth)
    ops = client.post(
        url, {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {personal_token(ops_person)}"
    )

    assert approved.status_code == 200
    assert {k: approved.json()[k] for k in ("rule", "version", "by", "comment")} == {
        "rule": staged.pk,
        "version": 2,
        "by": "ada",
        "comment": "ok",
    }
    assert (again.status_code, again.json()["detail"].startswith("You already approved staging v2")) == (400, True)
    assert ops.status_code == 403
