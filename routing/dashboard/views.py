"""The dashboard page and the lead list its figures link to. Thin: validate the range, call a selector, render."""

import datetime as dt

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import BooleanField, Count, Exists, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.shortcuts import render
from django.utils import timezone
from django.views import View

from audit.models import AuditEvent, Override
from exceptions.permissions import ConsoleAccessMixin
from routing.accounts.matching import MatchMethod
from routing.accounts.models import AccountMatch, LeadIdentity
from routing.dashboard.rollups import MANUAL_TOUCHES, latency_sql
from routing.dashboard.selectors import Window, dashboard_figures, routing_lanes, window_for
from routing.days import day_out_of_range
from routing.governance.metrics import targets_card
from routing.integrations.enrichment_health import enrichment_figures
from routing.models import Lead

RANGES = [("today", "Today"), ("7d", "7 days"), ("30d", "30 days"), ("custom", "Custom")]
MAX_DAYS = 400
# Ids are PostgreSQL bigints: a longer number would fail in the database, not in the form.
MAX_ID_DIGITS = 18


class DayField(forms.DateField):
    """A date within the days the dashboard can count (routing/days.py)."""

    def validate(self, value):
        super().validate(value)
        problem = day_out_of_range(value)
        if problem:
            raise forms.ValidationError(problem)


class RangeForm(forms.Form):
    range = forms.ChoiceField(choices=RANGES, required=False)
    start = DayField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = DayField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("range") == "custom":
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                raise forms.ValidationError("A custom range needs a start and an end date.")
            if abs((end - start).days) >= MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        return data

    def window(self, today: dt.date) -> Window:
        data = self.cleaned_data if self.is_valid() else {}
        return window_for(data.get("range") or "7d", today=today, start=data.get("start"), end=data.get("end"))


class DashboardView(ConsoleAccessMixin, View):
    def get(self, request):
        now = timezone.now()
        form = RangeForm(request.GET or {"range": "7d"})
        window = form.window(now.astimezone(dt.UTC).date())
        figures = dashboard_figures(window=window, now=now)
        current = form.cleaned_data.get("range") if form.is_valid() else "7d"
        return render(
            request,
            "console/dashboard.html",
            {
                "form": form,
                "ranges": RANGES,
                "current": current or "7d",
                "now": now,
                "charts": chart_data(figures),
                "lanes": routing_lanes(),
                "bulk_limit": settings.HANDOFF["BULK_BACKLOG_LIMIT"],
                "targets": targets_card(now=now),
                "enrichment_providers": enrichment_figures(now=now),
                "enrichment_target": settings.HANDOFF["ENRICHMENT_SUCCESS_TARGET"],
                **figures,
            },
            status=200 if form.is_valid() else 400,  # the page still shows 7 days, with what to fix
        )


def _plot(value):
    """Chart values: minutes or percentages; the open latency bucket ('inf') is left off the chart."""
    return None if value == "inf" else value


def chart_data(f: dict) -> dict:
    """What dashboard.js draws: labels, values and, per bar or point, the URL of the list it counts."""
    s, q, d, o = f["series"], f["queues"], f["delivery"], f["overrides"]
    return {
        "latencyDay": {
            "labels": s["days"],
            "median": [_plot(v) for v in s["median"]],
            "p95": [_plot(v) for v in s["p95"]],
            "slaPct": s["sla_pct"],
            "links": s["day_links"],
        },
        "latencyRule": {
            "labels": [r["name"] for r in f["rules"]],
            "median": [_plot(r["median"]) for r in f["rules"]],
            "p95": [_plot(r["p95"]) for r in f["rules"]],
            "sla": [r["sla"] for r in f["rules"]],
            "links": [r["link"] for r in f["rules"]],
        },
        "latencyOrigin": {
            "labels": [r["name"] for r in f["origins"]],
            "median": [_plot(r["median"]) for r in f["origins"]],
            "p95": [_plot(r["p95"]) for r in f["origins"]],
            "links": [r["link"] for r in f["origins"]],
        },
        "exceptionsDay": {
            "labels": s["days"],
            "items": s["exceptions"],
            "rate": s["exception_rate"],
            "links": s["day_item_links"],
        },
        "backlog": {
            "labels": s["days"],
            "queues": [{"name": b["name"], "values": b["values"], "link": b["link"]} for b in q["backlog"]],
        },
        "oldest": {
            "labels": [r["name"] for r in q["oldest"]],
            "hours": [r["age_hours"] for r in q["oldest"]],
            "links": [r["link"] for r in q["oldest"]],
        },
        "slaQueue": {
            "labels": [r["name"] for r in q["per_queue"]],
            "ack": [r["ack_pct"] for r in q["per_queue"]],
            "resolve": [r["resolve_pct"] for r in q["per_queue"]],
            "breached": [r["breached"] for r in q["per_queue"]],
            "links": [r["breached_link"] for r in q["per_queue"]],
        },
        "touchesDay": {"labels": s["days"], "perLead": s["touches_per_lead"], "links": s["day_touch_links"]},
        "overrides": {
            "labels": o["weeks"],
            "rules": [{"name": r["name"], "counts": r["counts"], "link": r["link"]} for r in o["rules"]],
        },
        "delivery": {
            "labels": s["days"],
            "dead": d["series"]["dead_lettered"],
            "replayed": d["series"]["replayed"],
            "delivered": d["series"]["replay_delivered"],
            "link": d["link"],
        },
        "enrichDay": {"labels": s["days"], "pct": s["enrich_pct"], "links": s["day_enrich_links"]},
    }


class LeadDrillForm(forms.Form):
    start = DayField()
    end = DayField()
    origin = forms.IntegerField(required=False, min_value=1, max_value=10**MAX_ID_DIGITS - 1)
    rule = forms.CharField(required=False, max_length=MAX_ID_DIGITS)
    assigned = forms.BooleanField(required=False)
    over_sla = forms.BooleanField(required=False)
    touched = forms.BooleanField(required=False)
    overridden = forms.BooleanField(required=False)
    enrichment = forms.ChoiceField(
        choices=[("", "")] + [(c, c) for c in ("tried", "enriched", "failed")], required=False
    )
    # The accounts table's figures: matched before routing, to an account, to two equally; a known person.
    account = forms.ChoiceField(
        choices=[("", "")] + [(c, c) for c in ("checked", "matched", "ambiguous")], required=False
    )
    known_person = forms.BooleanField(required=False)

    def clean_rule(self):
        rule = self.cleaned_data["rule"]
        # isascii: str.isdigit() also accepts "²", which int() refuses (a 500 before).
        if rule and rule != "none" and not (rule.isascii() and rule.isdigit()):
            raise forms.ValidationError("A rule id (digits 0-9), or 'none'.")
        return rule

    def leads(self):
        """The leads a dashboard figure counts. The dates select the cohort received in them, or, with
        `overridden`, the overrides made in them (and `rule` is then the overridden rule)."""
        data = self.cleaned_data
        window = Window(min(data["start"], data["end"]), max(data["start"], data["end"]))
        leads = Lead.objects.all()
        if data["overridden"]:
            overrides = Override.objects.filter(lead=OuterRef("pk"), at__gte=window.since, at__lt=window.until)
            if data["rule"]:
                overrides = overrides.filter(rule=None if data["rule"] == "none" else int(data["rule"]))
            leads = leads.filter(Exists(overrides))
        else:
            leads = leads.filter(received_at__gte=window.since, received_at__lt=window.until)
            if data["rule"]:
                leads = leads.filter(rule=None if data["rule"] == "none" else int(data["rule"]))
        if data["origin"]:
            leads = leads.filter(origin=data["origin"])
        if data["assigned"]:
            leads = leads.filter(assigned_at__isnull=False)
        if data["over_sla"]:
            leads = leads.filter(_over_sla())
        if data["touched"]:
            human = AuditEvent.objects.filter(lead=OuterRef("pk"), actor__isnull=False, action__in=MANUAL_TOUCHES)
            leads = leads.filter(Exists(human))
        if data["enrichment"] == "tried":
            leads = leads.filter(enrichment_status__isnull=False)
        elif data["enrichment"]:
            leads = leads.filter(enrichment_status=data["enrichment"])
        if data["account"]:
            matches = AccountMatch.objects.filter(lead=OuterRef("pk"))
            if data["account"] == "matched":
                matches = matches.exclude(method__in=[MatchMethod.NONE, MatchMethod.AMBIGUOUS])
            elif data["account"] == "ambiguous":
                matches = matches.filter(method=MatchMethod.AMBIGUOUS)
            leads = leads.filter(Exists(matches))
        if data["known_person"]:
            leads = leads.filter(Exists(LeadIdentity.objects.filter(lead=OuterRef("pk"), known_person=True)))
        return leads


def _over_sla():
    """Assigned later than the SLA of the rule version that decided the lead (as the rollup counts it)."""
    seconds, _ = latency_sql("routing_lead")
    return RawSQL(
        f"""routing_lead.assigned_at IS NOT NULL AND EXISTS (SELECT 1 FROM routing_ruleversion v
            WHERE v.rule_id = routing_lead.rule_id AND v.number = routing_lead.rule_version
            AND v.sla_minutes IS NOT NULL AND {seconds} > v.sla_minutes * 60)""",
        [],
        output_field=BooleanField(),
    )


class DashboardLeadListView(ConsoleAccessMixin, View):
    def get(self, request):
        form = LeadDrillForm(request.GET)
        ids = (
            form.leads().order_by("-received_at", "-id").values_list("pk", flat=True)
            if form.is_valid()
            else Lead.objects.none()
        )
        page = Paginator(ids, 50).get_page(request.GET.get("page"))
        rows = (
            Lead.objects.select_related("origin", "rule", "queue")
            .annotate(touches=Count("audit_events", filter=Q(audit_events__actor__isnull=False)))
            .in_bulk(list(page.object_list))
        )
        page.object_list = [rows[pk] for pk in page.object_list if pk in rows]
        query = request.GET.copy()
        query.pop("page", None)
        return render(
            request,
            "console/dashboard_leads.html",
            {
                "form": form,
                "page": page,
                "query": query.urlencode(),
                "filters": form.cleaned_data if form.is_valid() else {},
            },
            status=200 if form.is_valid() else 400,
        )
