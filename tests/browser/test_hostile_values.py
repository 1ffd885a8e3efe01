"""Hostile values in every console screen, in Chromium (issue 7): markup, quotes, `</textarea>`, template
syntax and `javascript:` URLs stored in every human-visible field render as literal text and never run.

Every string a person or a capture source can set carries a payload: lead fields and attributes (keys and
values), source, queue, rule and delivery-target names, rule contracts and test-case names, promotion and
sign-off comments, override reasons, exception details and notes, incident notes, attribution file names and
CRM cells, people's names. The world is built once for the module (through the services, as the product
builds it) and served by a live server of this module's own, so each screen is its own test without paying
for the build and a database flush every time; the module flushes the database when it is done, as a
transactional test would.

On each screen: an init script traps writes to `window.__pwned` before any page script runs, a dialog
handler catches `alert()`, and after the page has loaded (an `<img onerror>` has fired by then) the test
asserts nothing was written, no dialog opened, no element our data could have injected exists (an image
from `src=x`, an `on…` handler or executable script mentioning the payload, a `javascript:` link), and the
hostile strings are there as visible text (or as the exact value of the form field that holds them)."""

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from audit.models import Override
from exceptions.models import ExceptionReason, Notification, NotificationKind, Resolution
from exceptions.services import exception_mark_waiting, exception_open, exception_resolve
from exceptions.triage import lead_assign_manually
from routing import engine
from routing.dashboard.rollups import dashboard_rollup_days
from routing.governance.replay import replay_execute, replay_request
from routing.governance.services import rule_draft_save, rule_force_production, rule_promote
from routing.integrations.models import DeliveryAttempt, OutboxEvent, OutboxStatus
from routing.models import LeadStatus, RuleStage
from routing.reports.anomalies import anomaly_report_build
from routing.reports.attribution import attribution_reconcile
from routing.reports.incidents import incident_resolve
from routing.reports.models import Incident
from routing.reports.parity import parity_reconcile
from routing.services import lead_route
from tests.browser.helpers import log_in
from tests.conftest import broker
from tests.factories import (
    DeliveryTargetFactory,
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    SourceFactory,
    UserFactory,
    case,
)
from tests.governance.helpers import reviewed_sign_off

# The tests only read (through the browser); the marker has pytest-django create the test database. The data
# lives in the module-scoped `world`, committed outside the tests' transactions.
pytestmark = pytest.mark.django_db

# The payloads. Each would set window.__pwned or open a dialog if it reached the page as markup.
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '"><img src=x onerror="window.__pwned=1">'
PAYLOAD = f"{SCRIPT}{IMG}'"  # 75 characters: fits every 100-character name
TEXTAREA = "</textarea><svg onload=alert(1)>"
LONG = f"{PAYLOAD} {TEXTAREA} {{{{ 7*7 }}}} javascript:window.__pwned=1"
SHORT = "<img src=x onerror=alert(1)>'\""  # lifecycle_stage holds 64 characters
SEEN = "<svg onload=alert(2)>"  # a value a rule's condition sees, shown in "why"
# Attribute keys and values, shown one per line (a key, then its value).
ATTRIBUTES = {
    "<img src=x onerror=window.__pwned=1>": SCRIPT,
    "website": "javascript:window.__pwned=1",
    "note": "{{ 7*7 }}",
}
ATTRIBUTES_SHOWN = "<img src=x onerror=window.__pwned=1>\n<script>window.__pwned=1</script>"


def hostile(tag: str) -> str:
    """A payload tagged with what it is, so a test can tell which stored value it sees."""
    return f"{tag} {PAYLOAD}"


# The world ------------------------------------------------------------------------------------------------


def build_world() -> SimpleNamespace:
    now = timezone.now()
    today = now.date()
    yesterday = today - dt.timedelta(days=1)
    noon_yesterday = dt.datetime.combine(yesterday, dt.time(12), tzinfo=dt.UTC)
    w = SimpleNamespace(now=now)

    ops, owners = (Group.objects.get_or_create(name=name)[0] for name in ("ops", "rule_owners"))
    w.admin = UserFactory(
        username="hostile-admin",
        first_name=hostile("First"),
        last_name=LONG[:150],
        is_staff=True,
        is_superuser=True,
    )
    w.admin.groups.add(ops, owners)
    w.seller = UserFactory(username="sam", first_name=hostile("Sam"), last_name=SHORT)
    w.seller.groups.add(ops)
    w.other_owner = UserFactory(username="ruth", first_name=hostile("Ruth"), last_name='O\'Neil "R"')
    w.other_owner.groups.add(owners)

    w.source = SourceFactory(name=hostile("Src"))
    w.sales = QueueFactory(name=hostile("Q"))
    w.review = QueueFactory(name=hostile("R"))
    MembershipFactory(queue=w.sales, user=w.seller)
    w.company = LONG

    # Rule A: draft → staging → replay → production, each step with a hostile comment.
    w.rule_a = RuleFactory(
        name=hostile("A"),
        stage=RuleStage.DRAFT,
        owner=w.admin,
        priority=20,
        queue=w.sales,
        condition={"field": "lifecycle_stage", "op": "eq", "value": SHORT},
        description=LONG,
        inputs=LONG,
        outputs=LONG,
        rollback_plan=LONG,
        test_cases=[case(hostile("case A"), w.sales.name, lifecycle_stage=SHORT)],
    )
    rule_promote(rule=w.rule_a, to=RuleStage.STAGING, by=w.admin, comment=hostile("to staging"))
    replay_execute(run_id=replay_request(by=w.admin).pk)
    rule_promote(rule=w.rule_a, to=RuleStage.PRODUCTION, by=w.admin, comment=hostile("to production"))

    # Rule B, in staging (shadow): it would take the hostile company's leads to the other queue.
    w.rule_b = RuleFactory(
        name=hostile("B"),
        stage=RuleStage.DRAFT,
        owner=w.admin,
        priority=10,
        queue=w.review,
        condition={"field": "company", "op": "eq", "value": w.company},
        description=LONG,
        test_cases=[case(hostile("case B"), w.review.name, company=w.company)],
    )
    rule_promote(rule=w.rule_b, to=RuleStage.STAGING, by=w.admin, comment=hostile("B to staging"))

    # Rule C, a draft whose hostile test case fails.
    w.rule_c = RuleFactory(
        name=hostile("C"),
        stage=RuleStage.DRAFT,
        owner=w.admin,
        priority=30,
        queue=w.sales,
        condition={"field": "lifecycle_stage", "op": "eq", "value": SHORT},
        description=LONG,
        test_cases=[case(hostile("case C"), w.review.name, lifecycle_stage=SHORT)],
    )

    # L1: routed by A to Sam (B in shadow would move it), then assigned by hand with a hostile reason.
    lead_fields = dict(
        origin=w.source,
        email='"><img src=x onerror=alert(1)>@example.com',
        first_name=hostile("Ada"),
        last_name=SHORT,
        company=w.company,
        attributes=ATTRIBUTES,
    )
    w.lead = LeadFactory(lead_id=hostile("L1"), lifecycle_stage=SHORT, **lead_fields)
    lead_route(lead_id=w.lead.pk)
    w.replay = replay_execute(run_id=replay_request(by=w.admin).pk)
    lead_assign_manually(lead=w.lead, queue=w.review, assignee=w.admin, reason=hostile("override"), by=w.admin)

    # A: signed off with a comment, then a draft edit forced into production (unsigned again).
    reviewed_sign_off(rule=w.rule_a, by=w.admin, comment=hostile("sign-off"))
    w.rule_a.description = LONG + " (edited)"
    rule_draft_save(rule=w.rule_a, by=w.admin)
    rule_force_production(rule=w.rule_a, by=w.admin, reason=hostile("forced"))

    # Exceptions: L2 matched no rule (the condition saw a hostile value) and waits with a hostile note;
    # L3's item is open in the hostile queue with a hostile detail; L4's is resolved with a hostile note.
    w.lead2 = LeadFactory(lead_id=hostile("L2"), lifecycle_stage=SEEN, **{**lead_fields, "company": "Acme"})
    lead_route(lead_id=w.lead2.pk)
    w.item_waiting = w.lead2.exceptions.get()
    exception_mark_waiting(item=w.item_waiting, by=w.admin, note=hostile("waiting"))
    w.lead3 = LeadFactory(lead_id=hostile("L3"), status=LeadStatus.EXCEPTION, **lead_fields)
    w.item_open = exception_open(
        lead=w.lead3, reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE, detail=hostile("detail"), queue=w.review
    )
    w.lead4 = LeadFactory(lead_id=hostile("L4"), status=LeadStatus.EXCEPTION, **lead_fields)
    w.item_resolved = exception_open(
        lead=w.lead4, reason=ExceptionReason.MISSING_CONTACT, detail=hostile("detail 4"), queue=w.review
    )
    exception_resolve(item=w.item_resolved, by=w.admin, resolution=Resolution.SPAM, note=hostile("resolve note"))
    Notification.objects.create(
        item=w.item_open,
        queue=w.review,
        item_ids=[w.item_open.pk],
        key="reminder:ack",
        kind=NotificationKind.REMINDER,
        recipient=w.admin,
        created_at=now,
        deliver_after=now,
    )

    # Last week: leads A assigned later than its SLA (the Monday checklist names it).
    monday = (now - dt.timedelta(days=now.weekday() + 7)).replace(hour=10, minute=0, second=0, microsecond=0)
    for day in range(3):
        at = monday + dt.timedelta(days=day)
        LeadFactory(
            lead_id=hostile(f"W{day}"),
            status=LeadStatus.ASSIGNED,
            rule=w.rule_a,
            rule_version=1,
            queue=w.sales,
            assignee=w.seller,
            routed_at=at,
            assigned_at=at,
            received_at=at,
            occurred_at=at - dt.timedelta(minutes=40),
            **lead_fields,
        )

    # Yesterday: three overrides of A (the anomaly report names it) and leads for the daily parity.
    for n in range(3):
        Override.objects.create(
            lead=w.lead,
            rule=w.rule_a,
            rule_version=1,
            from_queue=w.sales,
            to_queue=w.review,
            by=w.admin,
            at=noon_yesterday + dt.timedelta(minutes=n),
            reason=hostile(f"yesterday {n}"),
        )
    w.target = DeliveryTargetFactory(name=hostile("T"))
    for n, status in enumerate([LeadStatus.RECEIVED, LeadStatus.ASSIGNED]):
        LeadFactory(
            lead_id=hostile(f"Y{n}"),
            status=status,
            queue=w.sales if status == LeadStatus.ASSIGNED else None,
            received_at=noon_yesterday,
            occurred_at=noon_yesterday,
            **lead_fields,
        )
    LeadFactory(
        lead_id=hostile("Z"),
        received_at=noon_yesterday - dt.timedelta(days=1),
        occurred_at=noon_yesterday - dt.timedelta(days=1),
        **lead_fields,
    )
    w.parity = parity_reconcile(day=yesterday, by=w.admin)
    earlier = parity_reconcile(day=yesterday - dt.timedelta(days=1), by=w.admin)
    incident_resolve(incident=Incident.objects.get(report=earlier), by=w.admin, note=hostile("incident note"))
    anomaly_report_build(day=yesterday)

    # Dead letters: one dead, one replayed whose last attempt failed with a hostile error.
    OutboxEvent.objects.create(
        target=w.target,
        event_type="lead.assigned",
        lead=w.lead,
        payload={},
        created_at=now - dt.timedelta(hours=3),
        next_attempt_at=now,
        status=OutboxStatus.DEAD,
        attempts=8,
        dead_at=now - dt.timedelta(hours=2),
        last_error=f"HTTP 422: {PAYLOAD}",
    )
    replayed = OutboxEvent.objects.create(
        target=w.target,
        event_type="lead.assigned",
        lead=w.lead,
        payload={},
        created_at=now - dt.timedelta(hours=3),
        next_attempt_at=now,
        status=OutboxStatus.DEAD,
        attempts=9,
        dead_at=now - dt.timedelta(minutes=5),
        last_error=hostile("connection"),
        replays=1,
    )
    DeliveryAttempt.objects.create(
        event=replayed, number=9, at=now, latency_ms=12, error=hostile("attempt error"), replay=True
    )

    # Attribution: the CRM export gives L1 a hostile owner and stage, and has a row for a lead we never saw.
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["lead_id", "origin", "owner", "stage", "amount"])
    writer.writerow([w.lead.lead_id, w.source.name, hostile("crm owner"), SHORT, "-5"])
    writer.writerow([hostile("U1"), hostile("crm origin"), hostile("crm owner 2"), hostile("stage"), "10"])
    w.attribution = attribution_reconcile(
        file=io.BytesIO(out.getvalue().encode()), name=hostile("crm") + ".csv", by=w.admin
    )

    dashboard_rollup_days(days=[today - dt.timedelta(days=n) for n in range(8)])
    for obj in (w.rule_a, w.rule_b, w.rule_c, w.lead, w.lead2):
        obj.refresh_from_db()
    return w


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """The hostile world, committed, for every screen in this module; the database is flushed afterwards."""
    with django_db_blocker.unblock(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "_cached", None)  # no rule set cached by an earlier module
        try:
            yield build_world()
        finally:
            call_command("flush", interactive=False, verbosity=0)
            broker().flushdb()  # the tasks the services published; no worker runs in this module


@pytest.fixture(scope="module")
def server(world, django_db_blocker):
    """A live server for this module only: pytest-django's `live_server` would make every test here
    transactional, flushing the world after the first one. The database stays unblocked while it serves."""
    with django_db_blocker.unblock():
        live = LiveServer("localhost")
        live._live_server_modified_settings.enable()
        yield live
        live._live_server_modified_settings.disable()
        live.stop()


def signed_in(browser, server, user):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, user)
    expect(page).to_have_url(re.compile(r"/console/$"))
    page.close()
    return context


@pytest.fixture(scope="module")
def sessions(browser, server, world):
    """A browser profile per persona, signed in once: the admin who owns the rules, a rule owner who does
    not (for the 403 page), and nobody (for the login page)."""
    contexts = {
        "admin": signed_in(browser, server, world.admin),
        "other owner": signed_in(browser, server, world.other_owner),
        "anonymous": browser.new_context(base_url=server.url),
    }
    yield contexts
    for context in contexts.values():
        context.close()


TRAP = """
(() => {
  // Record every write to window.__pwned (the payloads' effect) while still reading back what was written.
  const writes = [];
  let value;
  Object.defineProperty(window, "__pwnedWrites", { value: writes });
  Object.defineProperty(window, "__pwned", {
    get() { return value; },
    set(v) { writes.push(String(v)); value = v; },
  });
})();
"""

# Anything of ours that could only be there because a payload became markup. Script elements holding
# JSON (json_script) are data, not code, and hold the payload escaped: they are left out.
INJECTED = """
() => {
  const found = [];
  document.querySelectorAll("img").forEach((img) => {
    if (img.getAttribute("src") === "x") found.push("img src=x");
  });
  document.querySelectorAll("svg").forEach((svg) => {
    if (svg.hasAttribute("onload")) found.push("svg onload");
  });
  document.querySelectorAll("*").forEach((el) => {
    for (const attr of el.attributes) {
      if (attr.name.startsWith("on") && /pwned|alert/.test(attr.value)) found.push(`${el.tagName} ${attr.name}`);
    }
  });
  document.querySelectorAll("script").forEach((s) => {
    const data = ["application/json", "application/ld+json"].includes(s.type);
    if (!data && /pwned|alert/.test(s.textContent)) found.push("script " + s.textContent.slice(0, 40));
  });
  document.querySelectorAll("[href], [src], [action], [formaction]").forEach((el) => {
    for (const name of ["href", "src", "action", "formaction"]) {
      const url = (el.getAttribute(name) || "").replace(/[\\s\\0-\\x1f]/g, "").toLowerCase();
      if (url.startsWith("javascript:")) found.push(`${el.tagName} ${name}=javascript:`);
    }
  });
  return found;
}
"""


@pytest.fixture
def visit(sessions):
    """Opens a tab for a persona with the `window.__pwned` trap, a dialog catcher and a JavaScript error log in
    place (see assert_nothing_ran); closes it after the test."""
    opened = []

    def open_tab(persona: str) -> Page:
        page = sessions[persona].new_page()
        page.add_init_script(TRAP)
        page.dialogs, page.errors = [], []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        opened.append(page)
        return page

    yield open_tab
    for page in opened:
        page.close()


def assert_nothing_ran(page: Page) -> None:
    assert page.evaluate("window.__pwnedWrites") == [], "a payload wrote window.__pwned"
    assert page.evaluate("window.__pwned") is None, "window.__pwned is defined"
    assert page.dialogs == [], f"a payload opened a dialog: {page.dialogs}"
    assert page.evaluate(INJECTED) == [], "a payload became markup"
    assert page.errors == [], f"JavaScript errors on the page: {page.errors}"


# The screens ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Screen:
    """A console screen: where it is, who looks, the hostile text it must show as text, the form fields that
    must hold a hostile value exactly (or attributes, where the browser would drop it as a value), an optional
    step before the checks (a form to submit) and optional checks of its own."""

    path: Callable[[SimpleNamespace], str]
    shows: Callable[[SimpleNamespace], list[str]]
    fields: Callable[[SimpleNamespace], dict[str, str]] = lambda w: {}
    attributes: Callable[[SimpleNamespace], dict[str, tuple[str, str]]] = lambda w: {}
    persona: str = "admin"
    step: Callable[[Page, SimpleNamespace], None] | None = None
    then: Callable[[Page, SimpleNamespace], None] | None = None  # more checks on the screen


def submit_preview(page: Page, w) -> None:
    sample = {"email": "a@example.com", "lifecycle_stage": SHORT, "company": TEXTAREA}
    page.locator("#id_lead").fill(_json(sample))
    page.locator("#preview-form").get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-result")).to_be_visible()


def run_rule_c_tests(page: Page, w) -> None:
    page.get_by_role("button", name="Run test cases").click()
    expect(page.locator(".messages li.error")).to_contain_text("1 of 1 test cases failed")


def fail_login(page: Page, w) -> None:
    page.get_by_label("Username").fill(hostile("user"))
    page.get_by_label("Password").fill("wrong")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    expect(page.locator("p.error")).to_contain_text("did not match")


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _day(w, days_ago: int = 0) -> str:
    return (w.now.date() - dt.timedelta(days=days_ago)).isoformat()


SCREENS = {
    "login": Screen(
        path=lambda w: "/accounts/login/?next=" + "%22%3E%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3E",
        persona="anonymous",
        step=fail_login,
        shows=lambda w: [],
        fields=lambda w: {"#id_username": hostile("user"), "input[name=next]": '"><script>window.__pwned=1</script>'},
    ),
    "queue overview": Screen(
        path=lambda w: "/console/",
        shows=lambda w: [w.sales.name, w.review.name, f"{w.admin.first_name} {w.admin.last_name}"],
    ),
    "item list": Screen(
        path=lambda w: "/console/items/",
        shows=lambda w: [w.review.name, w.lead3.lead_id, w.lead2.lead_id, w.lead3.email, w.source.name],
    ),
    "item list, hostile filter": Screen(
        path=lambda w: "/console/items/?reason=%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3E&received_after=%22%3E",
        shows=lambda w: [SCRIPT],
    ),
    "item detail, waiting": Screen(
        path=lambda w: f"/console/items/{w.item_waiting.pk}/",
        shows=lambda w: [
            w.lead2.lead_id,
            w.source.name,
            f"waiting {SCRIPT}",  # in the history's data, shown as its Python repr
            SEEN,
            w.rule_a.name,
            ATTRIBUTES_SHOWN,
        ],
        fields=lambda w: {
            "#reroute input[name=first_name]": w.lead2.first_name,
            "#reroute input[name=last_name]": SHORT,
            "#reroute input[name=email]": w.lead2.email,
            "#reroute input[name=lifecycle_stage]": SEEN,
        },
    ),
    "item detail, open": Screen(
        path=lambda w: f"/console/items/{w.item_open.pk}/",
        shows=lambda w: [hostile("detail"), w.review.name, w.lead3.lead_id],
        fields=lambda w: {"#reroute input[name=company]": LONG, "#reroute input[name=last_name]": SHORT},
    ),
    "item detail, resolved": Screen(
        path=lambda w: f"/console/items/{w.item_resolved.pk}/",
        shows=lambda w: [hostile("detail 4"), hostile("resolve note"), LONG, w.lead4.lead_id],
    ),
    "notifications": Screen(path=lambda w: "/console/notifications/", shows=lambda w: [w.review.name]),
    "dashboard": Screen(
        path=lambda w: "/console/dashboard/",
        shows=lambda w: [w.rule_a.name],
    ),
    "dashboard, hostile range": Screen(
        path=lambda w: "/console/dashboard/?range=custom&start=%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3E&end=x",
        shows=lambda w: [],
        attributes=lambda w: {"#range input[name=start]": ("value", SCRIPT)},  # a date input drops it as a value
    ),
    "dashboard leads": Screen(
        path=lambda w: f"/console/dashboard/leads/?start={_day(w, 7)}&end={_day(w)}",
        shows=lambda w: [w.lead.lead_id, w.source.name, w.rule_a.name, w.review.name],
    ),
    "rules": Screen(
        path=lambda w: "/console/rules/",
        shows=lambda w: [w.rule_a.name, w.rule_b.name, w.rule_c.name],
    ),
    "rule detail, production": Screen(
        path=lambda w: f"/console/rules/{w.rule_a.pk}/?a=1&b=draft",
        shows=lambda w: [
            w.rule_a.name,
            w.sales.name,
            LONG,
            hostile("case A"),
            hostile("to production"),
            hostile("forced"),
            "lifecycle_stage = '<img src=x onerror=alert(1)>",  # the condition, with the value's repr
        ],
    ),
    "rule detail, staging": Screen(
        path=lambda w: f"/console/rules/{w.rule_b.pk}/",
        shows=lambda w: [w.rule_b.name, w.review.name, hostile("case B"), hostile("B to staging"), w.lead.lead_id],
    ),
    "rule detail, failing test run": Screen(
        path=lambda w: f"/console/rules/{w.rule_c.pk}/",
        step=run_rule_c_tests,
        shows=lambda w: [w.rule_c.name, hostile("case C"), w.review.name],
    ),
    "rule editor": Screen(
        path=lambda w: f"/console/rules/{w.rule_a.pk}/edit/",
        shows=lambda w: [w.rule_a.name],
        fields=lambda w: {
            "#id_name": w.rule_a.name,
            "#id_description": w.rule_a.description,
            "#id_inputs": LONG,
            "#id_outputs": LONG,
            "#id_rollback_plan": LONG,
        },
    ),
    "new rule": Screen(
        path=lambda w: "/console/rules/new/",
        shows=lambda w: [],
        then=lambda page, w: expect(page.locator("#id_queue option", has_text="Q ")).to_have_text(w.sales.name),
    ),
    "my rules": Screen(
        path=lambda w: "/console/rules/mine/",
        shows=lambda w: [
            w.rule_a.name,
            w.rule_b.name,
            w.rule_c.name,
            hostile("sign-off"),
            hostile("forced"),
            hostile("override"),
            hostile("case C"),
            w.lead.lead_id,
        ],
    ),
    "routing preview": Screen(
        path=lambda w: "/console/rules/preview/",
        step=submit_preview,
        shows=lambda w: [w.rule_a.name, w.sales.name, f"{w.seller.username}"],
        fields=lambda w: {"#id_lead": _json({"email": "a@example.com", "lifecycle_stage": SHORT, "company": TEXTAREA})},
    ),
    "replays": Screen(
        path=lambda w: "/console/rules/replay/",
        shows=lambda w: [w.rule_a.name, w.rule_b.name],
    ),
    "replay detail": Screen(
        path=lambda w: f"/console/rules/replay/{w.replay.pk}/",
        shows=lambda w: [w.lead.lead_id, w.sales.name, w.review.name, w.rule_b.name],
    ),
    "lead": Screen(
        path=lambda w: f"/console/leads/{w.lead.pk}/",
        shows=lambda w: [
            w.lead.lead_id,
            w.source.name,
            w.rule_a.name,
            w.rule_b.name,
            w.sales.name,
            w.review.name,
            hostile("override"),
            ATTRIBUTES_SHOWN,
        ],
    ),
    "dead letters": Screen(
        path=lambda w: "/console/dead-letters/",
        shows=lambda w: [w.target.name, w.lead.lead_id, f"HTTP 422: {PAYLOAD}", f"attempt error {SCRIPT}"],
    ),
    "dead letters, hostile filter": Screen(
        path=lambda w: "/console/dead-letters/?error=%22%3E%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3E",
        shows=lambda w: [],
        fields=lambda w: {"form.filters input[name=error]": '"><script>window.__pwned=1</script>'},
    ),
    "reconciliation": Screen(
        path=lambda w: "/console/reconciliation/",
        shows=lambda w: [w.source.name, w.target.name, hostile("incident note")],
    ),
    "parity report": Screen(
        path=lambda w: f"/console/reconciliation/{w.parity.pk}/",
        shows=lambda w: [w.source.name, f"Delivered to {w.target.name}"],
    ),
    "attribution": Screen(
        path=lambda w: "/console/reconciliation/attribution/",
        shows=lambda w: [hostile("crm") + ".csv"],
    ),
    "attribution report": Screen(
        path=lambda w: f"/console/reconciliation/attribution/{w.attribution.pk}/",
        shows=lambda w: [
            hostile("crm") + ".csv",
            w.lead.lead_id,
            w.source.name,
            hostile("crm owner"),
            hostile("crm origin"),
            hostile("U1"),
            hostile("stage"),
            SHORT,
        ],
    ),
    "checklist": Screen(path=lambda w: "/console/checklist/", shows=lambda w: [w.rule_a.name]),
    "anomalies": Screen(path=lambda w: "/console/anomalies/", shows=lambda w: [f"Manual overrides of {w.rule_a.name}"]),
    "admin: leads": Screen(path=lambda w: "/admin/routing/lead/", shows=lambda w: [w.lead.lead_id, w.source.name]),
    "admin: lead": Screen(
        path=lambda w: f"/admin/routing/lead/{w.lead.pk}/change/",
        shows=lambda w: [w.lead.lead_id, w.source.name, LONG, "<img src=x onerror=window.__pwned=1>"],
    ),
    "admin: rule": Screen(
        path=lambda w: f"/admin/routing/rule/{w.rule_a.pk}/change/",
        shows=lambda w: [w.rule_a.name],
        fields=lambda w: {"#id_name": w.rule_a.name, "#id_description": w.rule_a.description, "#id_inputs": LONG},
    ),
    "admin: outbox events": Screen(
        path=lambda w: "/admin/routing/outboxevent/", shows=lambda w: [w.target.name, w.lead.lead_id]
    ),
    "admin: exception item": Screen(
        path=lambda w: f"/admin/exceptions/exceptionitem/{w.item_open.pk}/change/",
        shows=lambda w: [w.review.name],
    ),
    "403 page": Screen(
        path=lambda w: f"/console/rules/{w.rule_a.pk}/edit/",
        persona="other owner",
        shows=lambda w: [SCRIPT],
    ),
}


@pytest.mark.parametrize("name", SCREENS)
def test_hostile_values_show_as_text_and_never_run(name, visit, world):
    screen = SCREENS[name]
    page = visit(screen.persona)
    page.goto(screen.path(world))
    if screen.step:
        screen.step(page, world)
    page.wait_for_load_state("load")

    assert_nothing_ran(page)
    if screen.persona == "admin":  # the header names who is signed in (the admin's CSS upper-cases it)
        assert world.admin.first_name in page.locator("header").first.text_content()
    text = page.locator("body").inner_text()
    for shown in screen.shows(world):
        assert shown in text, f"{shown!r} is not shown as text on {name}"
    for selector, value in screen.fields(world).items():
        expect(page.locator(selector)).to_have_value(value)
    for selector, (attribute, value) in screen.attributes(world).items():
        expect(page.locator(selector)).to_have_attribute(attribute, value)
    if screen.then:
        screen.then(page, world)


def test_the_dashboard_charts_get_hostile_names_as_data(visit, world):
    """json_script carries the names to Chart.js escaped; parsed back, they are the names as stored, and
    Chart.js draws them on canvases (text, never markup)."""
    page = visit("admin")
    page.goto("/console/dashboard/")
    expect(page.locator("body")).to_have_attribute("data-charts-ready", re.compile(r"\d+"))
    labels = page.evaluate("window.dashboardCharts['chart-latency-rule'].data.labels")
    assert world.rule_a.name in labels
    backlog = page.evaluate("window.dashboardCharts['chart-backlog'].data.datasets.map((d) => d.label)")
    assert world.review.name in backlog
    raw = page.locator("#dashboard-data").evaluate("el => el.innerHTML")
    assert "<script>" not in raw and "\\u003Cscript\\u003E" in raw
    assert_nothing_ran(page)


def test_the_keyboard_acknowledge_builds_its_form_from_a_hostile_url_as_values(visit, world):
    """console.js builds the form that `a` posts with innerHTML, putting the page's URL in it: markup in the
    query string stays a value (browsers percent-encode quotes and angle brackets in location)."""
    page = visit("admin")
    page.route("**/acknowledge/", lambda route: route.fulfill(status=204))  # stay on the page; change nothing
    page.goto('/console/items/?q="><img src=x onerror="window.__pwned=1">')
    expect(page.locator("tr[data-item].selected")).to_have_count(1)
    page.keyboard.press("a")
    form = page.locator('form[action$="/acknowledge/"]')
    expect(form).to_have_count(1)
    expect(form.locator("input[name=next]")).to_have_value(page.evaluate("location.pathname + location.search"))
    assert_nothing_ran(page)
