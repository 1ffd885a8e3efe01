"""Replay (routing/governance/replay.py): the candidate set over real routed leads, compared with what
production decided for them, on a sample whose every outcome is known."""

import datetime as dt

import pytest
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from routing.governance.models import ReplayRun, ReplayStatus
from routing.governance.replay import MAX_LIMIT, ReplayError, replay_execute, replay_moves, replay_request
from routing.models import LeadStatus
from tests.factories import LeadFactory, RuleFactory, case, promote_live
from tests.governance.helpers import replay, routed, stage

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def received(hours: int) -> dict:
    at = START + dt.timedelta(hours=hours)
    return {"received_at": at, "occurred_at": at}


@pytest.fixture
def sample(sales, uk, rule_owner):
    """Six leads routed by production (sales rule v1: MQLs to Sales; UK rule v1: GB to UK), one an hour,
    then a staging v2 of the sales rule that takes SQLs too and leaves GB to UK."""
    sales_rule = RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales, priority=10)
    uk_rule = RuleFactory(
        name="GB to UK",
        owner=rule_owner,
        queue=uk,
        priority=20,
        condition={"field": "country", "op": "eq", "value": "GB"},
        test_cases=[case("a GB lead", "UK", country="GB")],
    )
    leads = {
        "mql_us": routed(LeadFactory(lifecycle_stage="mql", country="US", **received(0))),  # Sales → Sales
        "mql_gb": routed(LeadFactory(lifecycle_stage="mql", country="GB", **received(1))),  # Sales → UK
        "sql_gb": routed(LeadFactory(lifecycle_stage="sql", country="GB", **received(2))),  # UK → UK
        "sql_us": routed(LeadFactory(lifecycle_stage="sql", country="US", **received(3))),  # no match → Sales
        "no_contact": routed(LeadFactory(email=None, phone=None, **received(4))),  # missing contact both ways
        "mql_de": routed(LeadFactory(lifecycle_stage="mql", country="DE", **received(5))),  # Sales → Sales
    }
    LeadFactory(lifecycle_stage="mql", country="GB", **received(6))  # received, not routed yet: not replayed
    assert [lead.status for lead in leads.values()] == [
        LeadStatus.ASSIGNED,
        LeadStatus.ASSIGNED,
        LeadStatus.ASSIGNED,
        LeadStatus.EXCEPTION,
        LeadStatus.EXCEPTION,
        LeadStatus.ASSIGNED,
    ]
    stage(
        sales_rule,
        condition={
            "all": [
                {"field": "lifecycle_stage", "op": "in", "value": ["mql", "sql"]},
                {"field": "country", "op": "ne", "value": "GB"},
            ]
        },
        test_cases=[case("a US SQL", "Sales", lifecycle_stage="sql", country="US")],
    )
    return {"sales_rule": sales_rule, "uk_rule": uk_rule, **leads}


def moved(lead, frm, to) -> dict:
    return {"id": lead.pk, "lead_id": lead.lead_id, "from": frm, "to": to}


def where(entries: list[dict]) -> list[dict]:
    """Moved leads as `moved` builds them: which lead, from and to (the rules that decided are tested apart)."""
    return [{key: entry[key] for key in ("id", "lead_id", "from", "to")} for entry in entries]


def ref(rule, version: int) -> dict:
    return {"id": rule.pk, "name": rule.name, "version": version}


def test_replay_gives_exact_counts_per_queue_and_the_leads_that_would_move(sample, rule_owner):
    run = replay(by=rule_owner)

    assert run.candidate == {str(sample["sales_rule"].pk): 2, str(sample["uk_rule"].pk): 1}
    assert (run.status, run.total, run.done, run.progress_percent) == (ReplayStatus.DONE, 6, 6, 100)
    assert run.result["before"] == {"(missing contact)": 1, "(no match)": 1, "Sales": 3, "UK": 1}
    assert run.result["after"] == {"(missing contact)": 1, "Sales": 3, "UK": 2}
    assert run.result["moved_count"] == 2
    assert where(run.result["moved"]) == [
        moved(sample["sql_us"], "(no match)", "Sales"),
        moved(sample["mql_gb"], "Sales", "UK"),
    ]
    assert run.result["moved_truncated"] is False
    event = AuditEvent.objects.get(action=AuditAction.RULES_REPLAYED)
    assert (event.actor, event.data["replay_id"], event.data["leads"], event.data["moved"]) == (
        rule_owner,
        run.pk,
        6,
        2,
    )


def test_replay_limit_takes_the_newest_leads(sample, rule_owner):
    run = replay(by=rule_owner, limit=3)  # mql_de, no_contact, sql_us

    assert run.total == 3
    assert run.result["before"] == {"(missing contact)": 1, "(no match)": 1, "Sales": 1}
    assert run.result["after"] == {"(missing contact)": 1, "Sales": 2}
    assert where(run.result["moved"]) == [moved(sample["sql_us"], "(no match)", "Sales")]


def test_replay_date_range_includes_since_and_excludes_until(sample, rule_owner):
    run = replay(by=rule_owner, since=START + dt.timedelta(hours=1), until=START + dt.timedelta(hours=3))

    assert (run.limit, run.total) == (MAX_LIMIT, 2)  # mql_gb, sql_gb; sql_us at `until` is outside; a range is capped
    assert run.result["before"] == {"Sales": 1, "UK": 1}
    assert run.result["after"] == {"UK": 2}
    assert where(run.result["moved"]) == [moved(sample["mql_gb"], "Sales", "UK")]


def test_replay_since_alone_takes_every_lead_from_then_on(sample, rule_owner):
    run = replay(by=rule_owner, since=START + dt.timedelta(hours=4))

    assert run.total == 2  # no_contact, mql_de


def test_replay_with_nothing_staged_moves_nothing(sales, rule_owner):
    RuleFactory(owner=rule_owner, queue=sales)
    routed(LeadFactory())
    routed(LeadFactory())

    run = replay(by=rule_owner)

    assert run.result["before"] == run.result["after"] == {"Sales": 2}
    assert (run.result["moved_count"], run.result["moved"]) == (0, [])


def test_replay_judges_each_lead_by_the_version_that_decided_it(sales, partners, rule_owner):
    """A lead routed by an older version counts under that version's queue, not the rule's current one."""
    rule = RuleFactory(owner=rule_owner, queue=sales)
    by_v1 = routed(LeadFactory())
    promote_live(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])
    by_v2 = routed(LeadFactory())

    run = replay(by=rule_owner)

    assert run.candidate == {str(rule.pk): 2}
    assert run.result["before"] == {"Partners": 1, "Sales": 1}
    assert run.result["after"] == {"Partners": 2}
    assert where(run.result["moved"]) == [moved(by_v1, "Sales", "Partners")]
    assert by_v2.rule_version == 2


def test_executing_a_finished_replay_again_changes_nothing(sample, rule_owner):
    run = replay(by=rule_owner)
    routed(LeadFactory(lifecycle_stage="mql", country="GB"))

    again = replay_execute(run_id=run.pk)

    assert (again.total, again.result) == (run.total, run.result)
    assert AuditEvent.objects.filter(action=AuditAction.RULES_REPLAYED).count() == 1


def test_replay_reports_progress(sample, rule_owner):
    calls = []

    replay_execute(run_id=replay_request(by=rule_owner).pk, on_progress=lambda done, total: calls.append((done, total)))

    assert calls == [(6, 6)]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, "Choose between 1 and 1,000,000 leads."),
        ({"limit": -5}, "Choose between 1 and 1,000,000 leads."),
        ({"limit": MAX_LIMIT + 1}, "Choose between 1 and 1,000,000 leads."),
        ({"since": START, "until": START}, "The date range is empty: 'since' must be before 'until'."),
        (
            {"since": START + dt.timedelta(days=1), "until": START},
            "The date range is empty: 'since' must be before 'until'.",
        ),
    ],
    ids=["zero", "negative", "too-many", "empty-range", "reversed-range"],
)
def test_invalid_replay_requests_are_refused(rule_owner, filters, message):
    with pytest.raises(ReplayError) as refused:
        replay_request(by=rule_owner, **filters)
    assert str(refused.value) == message


def test_a_replay_request_without_filters_takes_the_default_limit(rule_owner):
    assert replay_request(by=rule_owner).limit == 10_000


def test_each_moved_lead_names_the_rules_that_decided_it_before_and_after(sample, rule_owner):
    run = replay(by=rule_owner)
    sales_rule = sample["sales_rule"]

    by_lead = {entry["id"]: entry for entry in run.result["moved"]}
    taken = by_lead[sample["sql_us"].pk]  # no rule matched it; staging v2 of the sales rule takes it
    assert (taken["from_rule"], taken["to_rule"], taken["cause"]) == (None, ref(sales_rule, 2), ref(sales_rule, 2))
    let_go = by_lead[sample["mql_gb"].pk]  # the sales rule's v1 took it; v2 lets it go to the UK rule
    assert (let_go["from_rule"], let_go["to_rule"], let_go["cause"]) == (
        ref(sales_rule, 1),
        ref(sample["uk_rule"], 1),
        ref(sales_rule, 2),
    )
    assert run.result["by_rule"] == [
        {
            **ref(sales_rule, 2),
            "moved": 2,
            "flows": [{"from": "(no match)", "to": "Sales", "count": 1}, {"from": "Sales", "to": "UK", "count": 1}],
        }
    ]


def test_with_two_rules_in_staging_each_move_is_put_down_to_the_rule_that_caused_it(sample, rule_owner):
    uk_rule, sales_rule = sample["uk_rule"], sample["sales_rule"]
    stage(
        uk_rule,
        priority=5,  # before the sales rule now
        condition={"field": "country", "op": "in", "value": ["GB", "US"]},
        test_cases=[case("a US lead", "UK", country="US")],
    )
    sql_de = routed(LeadFactory(lifecycle_stage="sql", country="DE", **received(7)))  # production: no match

    run = replay(by=rule_owner)

    causes = {entry["id"]: (entry["from"], entry["to"], entry["cause"]) for entry in run.result["moved"]}
    assert causes == {
        sample["mql_us"].pk: ("Sales", "UK", ref(uk_rule, 2)),
        sample["mql_gb"].pk: ("Sales", "UK", ref(uk_rule, 2)),
        sample["sql_us"].pk: ("(no match)", "UK", ref(uk_rule, 2)),
        sql_de.pk: ("(no match)", "Sales", ref(sales_rule, 2)),
    }
    assert [m.sentence for m in replay_moves(run)] == [
        "moves 3 leads to UK: 2 from Sales, 1 from (no match)",
        "moves 1 lead to Sales: 1 from (no match)",
    ]
    assert [(m.name, m.version) for m in replay_moves(run)] == [("GB to UK", 2), ("MQL to sales", 2)]


def test_a_result_stored_before_attribution_has_no_moves_by_rule(sample, rule_owner):
    run = replay(by=rule_owner)
    run.result = {key: value for key, value in run.result.items() if key != "by_rule"}

    assert replay_moves(run) == []


def test_the_replay_page_links_each_moved_lead_and_the_rules_that_moved_it(client, sample, rule_owner):
    run = replay(by=rule_owner)
    client.force_login(rule_owner)

    body = client.get(reverse("console:replay", args=[run.pk])).content.decode()

    sales_url = reverse("console:rule", args=[sample["sales_rule"].pk])
    summary = "moves 2 leads: 1 from (no match) to Sales, 1 from Sales to UK"
    assert f'<a href="{sales_url}">MQL to sales v2</a> {summary}' in body
    assert f'href="{reverse("console:lead", args=[sample["mql_gb"].pk])}"' in body
    assert f'decided by <a href="{reverse("console:rule", args=[sample["uk_rule"].pk])}">GB to UK v1</a>' in body


def test_a_replay_stored_before_attribution_still_shows_its_moves(client, sample, rule_owner):
    run = replay(by=rule_owner)
    old = {key: value for key, value in run.result.items() if key != "by_rule"}
    old["moved"] = [{k: m[k] for k in ("id", "lead_id", "from", "to")} for m in run.result["moved"]]
    ReplayRun.objects.filter(pk=run.pk).update(result=old)
    client.force_login(rule_owner)

    response = client.get(reverse("console:replay", args=[run.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("not recorded (an older replay)") == 2
    assert "Moves by rule" not in body
