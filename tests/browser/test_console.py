"""The exception console in a real browser: each test drives the screens and checks the database too."""

import datetime as dt
import re
import unicodedata

from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.utils import timezone
from playwright.sync_api import Page, expect

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem, ExceptionReason, ExceptionStatus, Resolution
from exceptions.services import (
    exception_acknowledge,
    exception_assign,
    exception_mark_waiting,
    exception_open,
    exception_resolve,
)
from exceptions.sweep import sla_sweep
from routing.models import LeadStatus
from routing.services import lead_route
from tests.browser.helpers import log_in
from tests.factories import (
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    SourceFactory,
    UserFactory,
    open_exception,
)

SELECTED = re.compile(r"(^|\s)selected(\s|$)")
HOSTILE = '<script>window.__xss=1</script>"quotes"'


def detail_url(item) -> str:
    return f"/console/items/{item.pk}/"


def status_badge(page: Page):
    return page.locator(".detail-head h1 .status")


def success(page: Page):
    return page.locator(".messages li.success")


def error(page: Page):
    return page.locator(".messages li.error")


def list_row(page: Page, item):
    return page.locator(f'tr[data-item="{item.pk}"]')


def ops_colleague(username="pat", first_name="Pat", last_name="Ops"):
    person = UserFactory(username=username, first_name=first_name, last_name=last_name)
    person.groups.add(Group.objects.get_or_create(name="ops")[0])
    return person


# 1. Live overview


def test_logging_in_shows_the_queue_overview_and_a_new_exception_appears_without_a_reload(page, ops_person):
    triage = QueueFactory(name="Triage")
    QueueFactory(name="Sales EMEA")
    open_exception(queue=triage)

    log_in(page, ops_person)

    expect(page).to_have_url(re.compile(r"/console/$"))
    expect(page.get_by_role("heading", name="Exception queues")).to_be_visible()
    triage_open = page.locator('tr[data-queue="Triage"] td[data-count=open]')
    expect(triage_open).to_have_text("1")
    expect(page.locator('tr[data-queue="Sales EMEA"] td[data-count=open]')).to_have_text("0")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    open_exception(queue=triage, reason=ExceptionReason.MISSING_CONTACT)  # meanwhile, routing opens another

    expect(triage_open).to_have_text("2", timeout=15_000)  # the 5 s htmx poll brings it in
    expect(page.locator('tr[data-queue="Triage"] td[data-count=unacknowledged]')).to_have_text("2")
    assert page.evaluate("window.__sameDocument") is True, "the overview reloaded instead of updating in place"
    assert ExceptionItem.objects.filter(queue=triage, status=ExceptionStatus.OPEN).count() == 2


# 2. Acknowledge


def test_acknowledging_from_the_detail_page_records_who_did_it_and_lists_it_in_the_history(ops_page, ops_person):
    item = open_exception(queue=QueueFactory(name="Triage"))
    ops_page.goto(detail_url(item))
    expect(status_badge(ops_page)).to_have_text("Open")

    ops_page.locator("#acknowledge button").click()

    expect(success(ops_page)).to_have_text(f"Acknowledged item #{item.pk}.")
    expect(status_badge(ops_page)).to_have_text("Acknowledged")
    expect(ops_page.locator(".detail-head .clocks")).to_contain_text("done")
    expect(ops_page.locator("#history li", has_text="Exception acknowledged")).to_contain_text("olga")
    expect(ops_page.locator("#acknowledge")).to_have_count(0)  # nothing left to acknowledge
    item.refresh_from_db()
    assert item.status == ExceptionStatus.ACKNOWLEDGED
    assert (item.acknowledged_by, item.assignee) == (ops_person, ops_person)
    assert AuditEvent.objects.filter(
        exception=item, action=AuditAction.EXCEPTION_ACKNOWLEDGED, actor=ops_person
    ).exists()


# 3. Fix the data and re-route


def test_fixing_the_lifecycle_stage_and_rerouting_assigns_the_lead_and_resolves_the_item(ops_page, ops_person):
    emea = QueueFactory(name="Sales EMEA")
    seller = UserFactory(username="sam", first_name="Sam", last_name="Seller")
    MembershipFactory(queue=emea, user=seller)
    RuleFactory(
        name="MQLs to EMEA sales", queue=emea, condition={"field": "lifecycle_stage", "op": "eq", "value": "mql"}
    )
    item = open_exception(queue=QueueFactory(name="Triage"), lifecycle_stage="customer")
    ops_page.goto(detail_url(item))
    form = ops_page.locator("#reroute")
    stage = form.get_by_label("Lifecycle stage")
    expect(stage).to_have_value("customer")

    stage.fill("mql")
    form.get_by_role("button", name="Save and re-route").click()

    expect(success(ops_page)).to_have_text(f"Re-routed: assigned to sam in Sales EMEA. Item #{item.pk} resolved.")
    expect(ops_page).to_have_url(re.compile(r"/console/items/$"))  # resolved: it moves on (the queue is empty)
    ops_page.goto(detail_url(item))
    expect(status_badge(ops_page)).to_have_text("Resolved")
    expect(ops_page.locator(".detail-head .clocks")).to_contain_text("resolved as Re-routed by olga")
    expect(ops_page.locator("#trail")).to_contain_text("Lead data edited")
    lead = item.lead
    lead.refresh_from_db()
    assert (lead.status, lead.queue, lead.assignee, lead.lifecycle_stage) == (LeadStatus.ASSIGNED, emea, seller, "mql")
    item.refresh_from_db()
    assert (item.status, item.resolution, item.resolved_by) == (
        ExceptionStatus.RESOLVED,
        Resolution.REROUTED,
        ops_person,
    )


# 4. Resolve


def test_resolving_with_a_resolution_code_and_note_from_the_detail_page(ops_page, ops_person):
    item = open_exception(queue=QueueFactory(name="Triage"))
    ops_page.goto(detail_url(item))
    form = ops_page.locator("#resolve")

    form.get_by_label("Resolution").select_option(label="Duplicate")
    form.get_by_label("Note").fill("Same person as lead-42, sent the form twice.")
    form.get_by_role("button", name=re.compile(r"^Resolve")).click()

    expect(success(ops_page)).to_have_text(f"Resolved item #{item.pk} as Duplicate.")
    # No other item in the queue: back on the list, with an Undo offered for a few seconds.
    expect(ops_page).to_have_url(re.compile(r"/console/items/$"))
    expect(ops_page.get_by_role("button", name=f"Undo: reopen item #{item.pk}")).to_be_visible()
    ops_page.goto(detail_url(item))
    expect(status_badge(ops_page)).to_have_text("Resolved")
    expect(ops_page.locator(".detail-head .clocks")).to_contain_text(
        "resolved as Duplicate by olga: Same person as lead-42, sent the form twice."
    )
    expect(ops_page.locator("#history li", has_text="Exception resolved")).to_contain_text("olga")
    expect(ops_page.get_by_role("button", name="Reopen")).to_be_visible()
    item.refresh_from_db()
    assert (item.status, item.resolution, item.resolved_by) == (
        ExceptionStatus.RESOLVED,
        Resolution.DUPLICATE,
        ops_person,
    )
    assert item.resolution_note == "Same person as lead-42, sent the form twice."


# 5. Bulk acknowledge


def test_bulk_acknowledge_from_the_list_acknowledges_the_ticked_items_and_says_how_many(ops_page, ops_person):
    triage = QueueFactory(name="Triage")
    items = [open_exception(queue=triage) for _ in range(4)]
    ticked, left = items[:3], items[3]
    ops_page.goto("/console/items/")
    bulk = ops_page.locator("#bulk")

    for item in ticked:
        bulk.get_by_label(f"Select item {item.pk}", exact=True).check()
    bulk.get_by_label("Bulk action").select_option("acknowledge")
    bulk.get_by_role("button", name="Apply to selected").click()

    expect(success(ops_page)).to_have_text("Acknowledged 3 item(s).")
    expect(ops_page).to_have_url(re.compile(r"/console/items/$"))
    for item in ticked:
        expect(list_row(ops_page, item).locator(".status")).to_have_text("Acknowledged")
    expect(list_row(ops_page, left).locator(".status")).to_have_text("Open")
    for item in ticked:
        item.refresh_from_db()
        assert (item.status, item.acknowledged_by) == (ExceptionStatus.ACKNOWLEDGED, ops_person)
    left.refresh_from_db()
    assert (left.status, left.acknowledged_by) == (ExceptionStatus.OPEN, None)


# 6. Keyboard triage


def test_keyboard_on_the_list_j_k_move_the_selection_a_acknowledges_and_question_mark_toggles_help(
    ops_page, ops_person
):
    triage = QueueFactory(name="Triage")
    items = [open_exception(queue=triage) for _ in range(3)]
    ops_page.goto("/console/items/")
    rows = ops_page.locator("table.items tbody tr[data-item]")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_class(SELECTED)

    ops_page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(SELECTED)
    expect(rows.nth(0)).not_to_have_class(SELECTED)
    ops_page.keyboard.press("j")
    expect(rows.nth(2)).to_have_class(SELECTED)
    ops_page.keyboard.press("k")
    expect(rows.nth(1)).to_have_class(SELECTED)
    expect(ops_page.locator("tr[data-item].selected")).to_have_count(1)
    target = ExceptionItem.objects.get(pk=int(rows.nth(1).get_attribute("data-item")))
    after_it = ExceptionItem.objects.get(pk=int(rows.nth(2).get_attribute("data-item")))

    ops_page.keyboard.press("a")

    expect(success(ops_page)).to_have_text(f"Acknowledged item #{target.pk}.")
    expect(ops_page).to_have_url(re.compile(r"/console/items/$"))
    expect(list_row(ops_page, target).locator(".status")).to_have_text("Acknowledged")
    # The selection moves on to the row that came after it (a, j, a, j walks the queue, however it re-sorts).
    expect(list_row(ops_page, after_it)).to_have_class(SELECTED)
    expect(ops_page.locator("tr[data-item].selected")).to_have_count(1)
    expect(list_row(ops_page, target)).not_to_have_class(SELECTED)
    target.refresh_from_db()
    assert (target.status, target.acknowledged_by) == (ExceptionStatus.ACKNOWLEDGED, ops_person)
    others = ExceptionItem.objects.filter(pk__in=[i.pk for i in items]).exclude(pk=target.pk)
    assert set(others.values_list("status", flat=True)) == {ExceptionStatus.OPEN}

    help_panel = ops_page.locator("#help")
    expect(help_panel).to_be_hidden()
    ops_page.keyboard.press("?")
    expect(help_panel).to_be_visible()
    expect(help_panel).to_contain_text("next / previous item")
    ops_page.keyboard.press("?")
    expect(help_panel).to_be_hidden()
    ops_page.keyboard.press("?")
    ops_page.keyboard.press("Escape")  # Esc closes it too
    expect(help_panel).to_be_hidden()


def test_selection_moves_focus_and_enter_on_a_button_does_that_buttons_action(ops_page):
    triage = QueueFactory(name="Triage")
    for _ in range(3):
        open_exception(queue=triage)
    ops_page.goto("/console/items/")
    rows = ops_page.locator("tr[data-item]")
    expect(rows.nth(0)).to_have_attribute("aria-selected", "true")  # selected on arrival, not focused
    ops_page.keyboard.press("j")
    expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
    expect(rows.nth(0)).to_have_attribute("aria-selected", "false")
    expect(rows.nth(1)).to_be_focused()

    # Enter on the focused Filter button filters; it does not open the selected row.
    ops_page.locator("form.filters select[name=breached]").select_option(label="Yes")
    ops_page.locator("form.filters").get_by_role("button", name="Filter").focus()
    ops_page.keyboard.press("Enter")
    expect(ops_page).to_have_url(re.compile(r"/console/items/\?.*breached=true"))
    expect(ops_page.locator("h1")).to_contain_text("Exception items")


def test_the_first_tab_stop_skips_the_header_and_the_breached_filter_says_any(ops_page):
    open_exception(queue=QueueFactory(name="Triage"))
    ops_page.goto("/console/items/")
    ops_page.keyboard.press("Tab")
    skip = ops_page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    ops_page.keyboard.press("Enter")
    expect(ops_page.locator("main")).to_be_focused()
    breached = ops_page.locator("form.filters select[name=breached]")
    expect(breached.locator("option:checked")).to_have_text("Any")
    icon = ops_page.locator("link[rel=icon]").get_attribute("href")
    assert ops_page.request.get(icon).status == 200


def test_r_then_a_code_then_enter_resolves_from_the_detail_page(ops_page):
    item = open_exception(queue=QueueFactory(name="Triage"))
    ops_page.goto(detail_url(item))
    resolution = ops_page.locator("#resolve select[name=resolution]")
    expect(resolution).not_to_be_focused()

    ops_page.keyboard.press("r")

    expect(resolution).to_be_focused()
    item.refresh_from_db()
    assert item.status == ExceptionStatus.OPEN  # focusing changes nothing by itself
    resolution.select_option("fixed_data")
    ops_page.keyboard.press("Enter")
    expect(ops_page.locator(".messages li.success")).to_contain_text(f"Resolved item #{item.pk} as Fixed data.")
    item.refresh_from_db()
    assert (item.status, item.resolution) == (ExceptionStatus.RESOLVED, "fixed_data")


# 7. Access


def test_a_logged_in_person_outside_the_ops_and_rule_owner_groups_gets_403_on_the_console(page, outsider):
    item = open_exception(queue=QueueFactory(name="Triage"))

    log_in(page, outsider)  # lands on the console, which refuses the account

    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    response = page.goto("/console/")
    assert response.status == 403
    expect(page.locator("body")).to_contain_text("not in the ops or rule_owners group")
    assert page.goto(detail_url(item)).status == 403
    assert page.goto("/console/items/").status == 403
    # Signed in (so this is authorisation, not a login bounce), just not in a console group.
    sessions = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert str(outsider.pk) in sessions
    assert not outsider.groups.exists() and not outsider.is_superuser
    item.refresh_from_db()
    assert item.status == ExceptionStatus.OPEN


# 8. Two tabs


def test_acknowledging_on_a_stale_page_after_someone_else_did_says_who_acknowledged_it(ops_page, ops_person):
    item = open_exception(queue=QueueFactory(name="Triage"))
    pat = ops_colleague()
    ops_page.goto(detail_url(item))
    expect(status_badge(ops_page)).to_have_text("Open")

    exception_acknowledge(item=item, by=pat)  # Pat, in another tab, after this page loaded
    ops_page.locator("#acknowledge button").click()

    expect(error(ops_page)).to_contain_text(
        f"Cannot acknowledge item #{item.pk}: it is already acknowledged by Pat Ops at"
    )
    expect(success(ops_page)).to_have_count(0)
    expect(status_badge(ops_page)).to_have_text("Acknowledged")
    item.refresh_from_db()
    assert (item.status, item.acknowledged_by, item.assignee) == (ExceptionStatus.ACKNOWLEDGED, pat, pat)
    acks = AuditEvent.objects.filter(exception=item, action=AuditAction.EXCEPTION_ACKNOWLEDGED)
    assert list(acks.values_list("actor", flat=True)) == [pat.pk]


# 9. Escaping


def test_hostile_lead_values_render_as_text_and_never_run(ops_page):
    source = SourceFactory(name='<script>window.__xss=2</script>"src"')
    queue = QueueFactory(name='<script>window.__xss=3</script>"queue"')
    item = open_exception(
        queue=queue,
        origin=source,
        lead_id=HOSTILE,
        first_name=HOSTILE,
        company=HOSTILE,
        attributes={"note": '<img src=x onerror="window.__xss=4">'},
    )
    no_script_ran = "typeof window.__xss === 'undefined'"
    injected = (
        "Array.from(document.querySelectorAll('script')).filter(s => s.textContent.includes('__xss')).length"
        " + document.querySelectorAll('img[onerror]').length"
    )

    ops_page.goto(detail_url(item))
    expect(ops_page.get_by_role("heading", name=f"Lead {HOSTILE}")).to_be_visible()
    expect(ops_page.locator("#reroute").get_by_label("First name", exact=True)).to_have_value(HOSTILE)
    expect(ops_page.locator("#reroute").get_by_label("Company", exact=True)).to_have_value(HOSTILE)
    expect(ops_page.locator(".columns")).to_contain_text('From <script>window.__xss=2</script>"src"')
    expect(ops_page.locator(".detail-head")).to_contain_text('Queue <script>window.__xss=3</script>"queue"')
    expect(ops_page.locator("dl.attributes").first).to_contain_text('<img src=x onerror="window.__xss=4">')
    assert ops_page.evaluate(no_script_ran)
    assert ops_page.evaluate(injected) == 0

    ops_page.goto("/console/items/")
    row = list_row(ops_page, item)
    expect(row).to_contain_text(HOSTILE)
    expect(row).to_contain_text('<script>window.__xss=3</script>"queue"')
    assert ops_page.evaluate(no_script_ran)
    assert ops_page.evaluate(injected) == 0

    ops_page.goto("/console/")
    expect(ops_page.locator("#queues tbody tr").first).to_contain_text('<script>window.__xss=3</script>"queue"')
    assert ops_page.evaluate(no_script_ran)
    assert ops_page.evaluate(injected) == 0
    lead = item.lead
    lead.refresh_from_db()
    assert (lead.first_name, lead.company) == (HOSTILE, HOSTILE)  # stored as given; only the output escapes it


# Screenshots for the docs


def ascii_email(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().replace(" ", "").lower()


def realistic_console_data(ops_person):
    """A few queues, rules and sources, and a dozen items of every reason and status, some breached.

    Built the way production builds it: leads routed by the engine, exceptions opened and acted on through
    the services, breaches stamped by the SLA sweep."""
    now = timezone.now()
    pat = ops_colleague()
    sam = UserFactory(username="sam", first_name="Sam", last_name="Seller")
    triage = QueueFactory(name="Triage", ack_sla_minutes=30, resolve_sla_minutes=240)
    emea = QueueFactory(name="Sales EMEA", ack_sla_minutes=15, resolve_sla_minutes=120, owner=pat)
    na = QueueFactory(name="Sales North America", ack_sla_minutes=15, resolve_sla_minutes=120)
    enterprise = QueueFactory(name="Enterprise", ack_sla_minutes=60, resolve_sla_minutes=480, owner=pat)
    partners = QueueFactory(name="Partner referrals", ack_sla_minutes=30, resolve_sla_minutes=240)
    MembershipFactory(queue=emea, user=sam)
    RuleFactory(
        name="Enterprise accounts",
        owner=pat,
        priority=10,
        queue=enterprise,
        condition={"field": "company_size", "op": "gte", "value": 1000},
    )
    RuleFactory(
        name="EMEA MQLs",
        owner=pat,
        priority=20,
        queue=emea,
        condition={
            "all": [
                {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
                {"field": "country", "op": "in", "value": ["GB", "DE", "FR", "NL"]},
            ]
        },
    )
    RuleFactory(
        name="North America MQLs",
        owner=pat,
        priority=30,
        queue=na,
        condition={
            "all": [
                {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
                {"field": "country", "op": "in", "value": ["US", "CA"]},
            ]
        },
    )
    web, chat, crm = (SourceFactory(name=name) for name in ("web-form", "chat-widget", "hubspot-sync"))

    def lead(lead_id, first, last, company, size, country, stage="mql", origin=web, **extra):
        return LeadFactory(
            origin=origin,
            lead_id=lead_id,
            email=extra.pop("email", ascii_email(f"{first}.{last}@{company.split()[0]}.example")),
            first_name=first,
            last_name=last,
            company=company,
            company_size=size,
            country=country,
            lifecycle_stage=stage,
            attributes=extra.pop("attributes", {"form": "demo-request", "utm_source": "newsletter"}),
            **extra,
        )

    def opened(minutes_ago, queue, reason, the_lead, detail):
        the_lead.status = LeadStatus.EXCEPTION
        the_lead.save(update_fields=["status"])
        return exception_open(
            lead=the_lead, reason=reason, queue=queue, detail=detail, at=now - dt.timedelta(minutes=minutes_ago)
        )

    # Routed by the engine just now: no rule matches a customer, nobody is in Enterprise, no contact at all.
    featured = lead("wf-20418", "Maren", "Okafor", "Lindqvist Freight", 240, "SE", stage="customer")
    lead_route(lead_id=featured.pk)
    lead_route(lead_id=lead("hs-88120", "Jonas", "Brandt", "Keller Maschinenbau AG", 4200, "DE", origin=crm).pk)
    lead_route(lead_id=lead("ch-3391", "Priya", "Raman", "Anchor Dental", 12, "GB", origin=chat, email=None).pk)
    featured_item = ExceptionItem.objects.get(lead=featured)

    items = {
        "ack_breached": opened(
            185,
            triage,
            ExceptionReason.NO_MATCHING_RULE,
            lead("wf-20377", "Tomás", "Ferreira", "Porto Analytics", 60, "PT"),
            "None of the 3 production rules matched.",
        ),
        "acknowledged": opened(
            50,
            triage,
            ExceptionReason.MISSING_CONTACT,
            lead("ch-3385", "Lena", "Vogel", "Vogel & Söhne", 35, "AT", origin=chat, email=None),
            "The lead has neither an email address nor a phone number.",
        ),
        "escalated": opened(
            130,
            emea,
            ExceptionReason.DELIVERY_FAILED,
            lead("wf-20350", "Chloé", "Marchand", "Atelier Lumen", 80, "FR"),
            "CRM rejected the lead: owner sam has no Salesforce seat.",
        ),
        "fresh": opened(
            4,
            emea,
            ExceptionReason.ENRICHMENT_FAILED,
            lead("hs-88117", "Daan", "de Vries", "Noordzee Energie", 900, "NL", origin=crm),
            "Enrichment provider timed out twice.",
        ),
        "waiting": opened(
            22,
            na,
            ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
            lead("wf-20399", "Ethan", "Clarke", "Maple Robotics", 150, "CA"),
            "No available member under the cap in Sales North America.",
        ),
        "resolved": opened(
            1500,
            na,
            ExceptionReason.ROUTING_FAILED,
            lead("wf-20101", "Test", "Test", "asdf", 1, "US"),
            "Routing failed: condition on attributes.region raised TypeError.",
        ),
        "resolve_breached": opened(
            540,
            enterprise,
            ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
            lead("hs-88002", "Akira", "Tanaka", "Hoshino Logistics", 12000, "JP", origin=crm),
            "No available member under the cap in Enterprise.",
        ),
        "enterprise_open": opened(
            9,
            enterprise,
            ExceptionReason.DELIVERY_FAILED,
            lead("hs-88119", "Grace", "Okoye", "Lagos Fintech Group", 2300, "NG", origin=crm),
            "CRM webhook returned 502.",
        ),
        "partner_breached": opened(
            41,
            partners,
            ExceptionReason.ENRICHMENT_FAILED,
            lead("pr-0071", "Sofia", "Rossi", "Rossi Consulting", 8, "IT"),
            "Partner id not found in the partner directory.",
        ),
        "partner_assigned": opened(
            12,
            partners,
            ExceptionReason.NO_MATCHING_RULE,
            lead("pr-0074", "Ben", "Adler", "Adler Partners", 40, "US", stage="partner"),
            "None of the 3 production rules matched.",
        ),
    }
    exception_acknowledge(item=items["acknowledged"], by=pat)
    exception_acknowledge(item=items["resolve_breached"], by=ops_person)
    exception_mark_waiting(item=items["waiting"], by=pat, note="Asked the AE team who covers Canada.")
    exception_resolve(item=items["resolved"], by=ops_person, resolution=Resolution.NOT_A_LEAD, note="Test submission.")
    exception_assign(item=items["partner_assigned"], to=sam, by=pat)
    featured_item = exception_acknowledge(item=featured_item, by=ops_person)
    sla_sweep()
    return featured_item, items


def test_the_main_screens_show_a_realistic_days_queues(ops_page, ops_person, tmp_path):
    featured, items = realistic_console_data(ops_person)
    unresolved = ExceptionItem.objects.exclude(status=ExceptionStatus.RESOLVED)
    breached_queues = {"Triage", "Sales EMEA", "Enterprise", "Partner referrals"}
    breached = unresolved.exclude(ack_breached_at=None, resolve_breached_at=None)
    assert set(breached.values_list("queue__name", flat=True)) == breached_queues

    ops_page.goto("/console/")
    for name in ("Triage", "Sales EMEA", "Sales North America", "Enterprise", "Partner referrals"):
        expect(ops_page.locator(f'tr[data-queue="{name}"] td[data-count=open]')).to_have_text(
            str(unresolved.filter(queue__name=name).count())
        )
    expect(ops_page.locator("td.breached[data-count=breached]")).to_have_count(len(breached_queues))
    ops_page.screenshot(path=tmp_path / "overview.png", full_page=True)

    ops_page.goto("/console/items/")
    expect(ops_page.locator("h1 .count")).to_have_text(str(unresolved.count()))
    expect(ops_page.locator("table.items tbody tr[data-item]")).to_have_count(unresolved.count())
    expect(list_row(ops_page, items["ack_breached"]).locator("time.due")).to_have_class(re.compile(r"\bpast\b"))
    expect(list_row(ops_page, items["waiting"])).to_contain_text("paused")
    ops_page.screenshot(path=tmp_path / "item-list.png", full_page=True)

    ops_page.goto(detail_url(featured))
    expect(ops_page.get_by_role("heading", name=f"#{featured.pk} No matching rule")).to_be_visible()
    expect(status_badge(ops_page)).to_have_text("Acknowledged")
    expect(ops_page.locator("table.grid").first).to_contain_text("no_matching_rule")
    expect(ops_page.locator("#history li")).not_to_have_count(0)
    ops_page.screenshot(path=tmp_path / "item-detail.png", full_page=True)

    for name in ("overview.png", "item-list.png", "item-detail.png"):
        assert (tmp_path / name).stat().st_size > 10_000, f"{name} looks empty"


def test_the_list_refreshes_by_itself_keeping_ticks_and_selection(ops_page, settings):
    settings.HANDOFF = {**settings.HANDOFF, "LIST_REFRESH_SECONDS": 1}
    triage = QueueFactory(name="Triage")
    first, second = open_exception(queue=triage), open_exception(queue=triage)
    ops_page.goto("/console/items/")
    ops_page.keyboard.press("j")
    ops_page.keyboard.press("k")  # back on the first row, focused
    expect(list_row(ops_page, first)).to_be_focused()
    ops_page.keyboard.press("x")  # ticked for a bulk action
    expect(ops_page.locator("#bulk").get_by_label(f"Select item {first.pk}", exact=True)).to_be_checked()

    arrived = open_exception(queue=triage)  # routing opens a new item meanwhile
    exception_resolve(item=second, by=UserFactory(username="rita"), resolution=Resolution.FIXED_DATA)

    expect(list_row(ops_page, arrived)).to_be_visible(timeout=5_000)
    expect(ops_page.locator("tr[data-item]")).to_have_count(2)  # the resolved one left the list
    expect(ops_page.locator("#bulk").get_by_label(f"Select item {first.pk}", exact=True)).to_be_checked()
    expect(list_row(ops_page, first)).to_have_class(SELECTED)
    expect(list_row(ops_page, first)).to_be_focused()
    expect(ops_page.locator("tr[data-item].selected")).to_have_count(1)


def test_e_assigns_to_me_w_marks_waiting_and_g_i_goes_to_the_items(ops_page, ops_person):
    triage = QueueFactory(name="Triage")
    item, following = open_exception(queue=triage), open_exception(queue=triage)
    ops_page.goto(detail_url(item))

    ops_page.keyboard.press("e")
    expect(success(ops_page)).to_contain_text(f"Item #{item.pk} is yours")  # assigned to me: I stay on it
    expect(ops_page).to_have_url(re.compile(rf"/console/items/{item.pk}/$"))
    item.refresh_from_db()
    assert item.assignee == ops_person

    ops_page.keyboard.press("w")
    ops_page.keyboard.type("the customer's reply")
    ops_page.keyboard.press("Enter")
    expect(ops_page).to_have_url(re.compile(rf"/console/items/{following.pk}/$"))  # waiting: the next item opens
    expect(success(ops_page)).to_contain_text(f"Item #{item.pk} is waiting")
    item.refresh_from_db()
    assert item.status == ExceptionStatus.WAITING
    ops_page.wait_for_load_state("load")

    ops_page.keyboard.press("g")
    ops_page.keyboard.press("i")
    expect(ops_page).to_have_url(re.compile(r"/console/items/$"))
    ops_page.wait_for_load_state("load")  # the keys are read once the page's script runs
    ops_page.keyboard.press("g")
    ops_page.keyboard.press("q")
    expect(ops_page).to_have_url(re.compile(r"/console/$"))


def test_every_screen_fits_a_phone_and_the_items_actions_are_reachable(ops_page):
    item = open_exception(queue=QueueFactory(name="Triage"), company="Vereinigte Industrieanlagenbau GmbH")
    ops_page.set_viewport_size({"width": 390, "height": 844})
    for path in (
        "/console/",
        "/console/items/",
        detail_url(item),
        "/console/notifications/",
        "/console/dashboard/",
        "/console/rules/",
        "/console/accounts/",
        "/console/checklist/",
        "/console/dead-letters/",
        "/console/reconciliation/",
        "/console/reconciliation/attribution/",
        "/console/anomalies/",
        "/console/rules/mine/",
        "/console/rules/preview/",
        "/console/rules/replay/",
        "/console/api-tokens/",
    ):
        assert ops_page.goto(path).ok, path
        width = ops_page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"{path} is {width[0]} px wide on a 390 px screen"
    ops_page.goto(detail_url(item))
    resolve = ops_page.locator("#resolve").get_by_role("button", name=re.compile(r"^Resolve"))
    resolve.scroll_into_view_if_needed()
    box = resolve.bounding_box()
    assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= 390


def test_twenty_items_triaged_by_keyboard_alone_take_three_keys_each(ops_page, ops_person):
    triage = QueueFactory(name="Triage")
    items = [open_exception(queue=triage) for _ in range(20)]
    ops_page.goto("/console/items/")
    ops_page.wait_for_load_state("load")
    keys = 0

    def press(key):
        nonlocal keys
        ops_page.keyboard.press(key)
        keys += 1

    press("o")  # open the first (selected) item
    for item in items:
        expect(ops_page).to_have_url(re.compile(rf"/console/items/{item.pk}/$"))
        ops_page.wait_for_load_state("load")
        press("r")  # focus the resolution code
        press("f")  # "Fixed data"
        press("Enter")  # resolve (which acknowledges too); the next item opens
    expect(ops_page).to_have_url(re.compile(r"/console/items/$"))  # the queue is empty: back to the list
    assert set(ExceptionItem.objects.values_list("status", "resolution", "acknowledged_by")) == {
        (ExceptionStatus.RESOLVED, Resolution.FIXED_DATA, ops_person.pk)
    }
    per_item = (keys - 1) / len(items)
    assert per_item <= 3, f"{keys} keystrokes for {len(items)} items"
    print(f"\nkeyboard triage: {keys} keystrokes for {len(items)} items ({per_item:.2f} per item)")


def test_undo_reopens_the_item_just_resolved(ops_page):
    triage = QueueFactory(name="Triage")
    first, second = open_exception(queue=triage), open_exception(queue=triage)
    ops_page.goto(detail_url(first))
    form = ops_page.locator("#resolve")
    form.get_by_label("Resolution").select_option(label="Fixed data")
    form.get_by_role("button", name=re.compile(r"^Resolve")).click()
    expect(ops_page).to_have_url(re.compile(rf"/console/items/{second.pk}/$"))  # the next item opens
    ops_page.wait_for_load_state("load")
    ops_page.keyboard.press("z")
    expect(success(ops_page)).to_contain_text(f"Reopened item #{first.pk}")
    first.refresh_from_db()
    assert first.status == ExceptionStatus.OPEN


def test_r_on_the_list_opens_the_item_with_its_code_picker_taking_the_next_key(ops_page):
    triage = QueueFactory(name="Triage")
    first, _ = open_exception(queue=triage), open_exception(queue=triage)
    ops_page.goto("/console/items/")
    ops_page.wait_for_load_state("load")

    ops_page.keyboard.press("r")
    expect(ops_page).to_have_url(re.compile(rf"/console/items/{first.pk}/#resolve$"))
    expect(ops_page.locator("#resolve select[name=resolution]")).to_be_focused()
    ops_page.keyboard.press("f")  # Fixed data
    ops_page.keyboard.press("Enter")

    expect(success(ops_page)).to_contain_text(f"Resolved item #{first.pk} as Fixed data.")
    first.refresh_from_db()
    assert first.status == ExceptionStatus.RESOLVED


def test_the_live_refresh_updates_the_count_and_the_apply_to_all_button_with_the_rows(ops_page, settings):
    settings.HANDOFF = {**settings.HANDOFF, "LIST_REFRESH_SECONDS": 1}
    triage = QueueFactory(name="Triage")
    ops_page.goto("/console/items/")
    expect(ops_page.locator("#list-count")).to_have_text("0")
    expect(ops_page.get_by_role("button", name=re.compile("^Apply to all"))).to_have_count(0)

    arrived = [open_exception(queue=triage) for _ in range(3)]

    expect(list_row(ops_page, arrived[-1])).to_be_visible(timeout=5_000)
    expect(ops_page.locator("#list-count")).to_have_text("3")
    expect(ops_page.get_by_role("button", name="Apply to all 3 matching this filter")).to_be_visible()


def test_apply_to_all_matching_asks_first_and_a_no_changes_nothing(ops_page):
    triage = QueueFactory(name="Triage")
    items = [open_exception(queue=triage) for _ in range(3)]
    ops_page.goto("/console/items/")
    bulk = ops_page.locator("#bulk")
    bulk.get_by_label("Bulk action").select_option("acknowledge")
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    ops_page.once("dialog", lambda dialog: answer(dialog, accept=False))
    bulk.get_by_role("button", name="Apply to all 3 matching this filter").click()
    expect(ops_page.locator("#list-count")).to_have_text("3")
    assert asked == ["Acknowledge: all 3 items matching this filter?"]
    assert {i.status for i in ExceptionItem.objects.filter(pk__in=[i.pk for i in items])} == {"open"}

    ops_page.once("dialog", lambda dialog: answer(dialog, accept=True))
    bulk.get_by_role("button", name="Apply to all 3 matching this filter").click()
    expect(success(ops_page)).to_have_text("Acknowledged 3 item(s).")


def test_esc_leaves_the_search_box_so_the_keys_work_again(ops_page):
    triage = QueueFactory(name="Triage")
    _, second = open_exception(queue=triage), open_exception(queue=triage)
    ops_page.goto("/console/items/")
    ops_page.wait_for_load_state("load")
    ops_page.keyboard.press("/")
    expect(ops_page.get_by_label("Search")).to_be_focused()
    ops_page.keyboard.press("Escape")
    ops_page.keyboard.press("j")
    expect(list_row(ops_page, second)).to_have_class(SELECTED)


def test_a_code_that_needs_a_note_makes_the_browser_ask_for_it_before_sending(ops_page):
    item = open_exception(queue=QueueFactory(name="Triage"))
    ops_page.goto(detail_url(item))
    ops_page.wait_for_load_state("load")
    ops_page.keyboard.press("r")
    ops_page.keyboard.press("s")  # Spam
    ops_page.keyboard.press("Enter")
    note = ops_page.locator("#resolve [name=note]")
    expect(note).to_have_attribute("required", "")
    assert note.evaluate("el => el.matches(':invalid')")
    item.refresh_from_db()
    assert item.status == ExceptionStatus.OPEN
