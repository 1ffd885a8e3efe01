"""Reconciliation screens: stored reports (daily parity; attribution has its own upload screen), a parity
report's detail, and incidents: acknowledge, resolve, an owner, and the postmortem a large one needs."""

import datetime as dt

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.forms import PostmortemForm
from exceptions.permissions import ConsoleAccessMixin
from exceptions.postmortems import PostmortemRefused, incident_postmortem_write
from exceptions.services import InvalidAction
from routing.days import day_out_of_range, yesterday
from routing.reports.incidents import (
    incident_acknowledge,
    incident_owner_assign,
    incident_owner_candidates,
    incident_resolve,
)
from routing.reports.models import Incident, IncidentStatus, ReconciliationReport, ReportKind
from routing.reports.parity import parity_reconcile

POSTMORTEMS_DUE_SHOWN = 20


class OwnerForm(forms.Form):
    owner = forms.ModelChoiceField(
        queryset=incident_owner_candidates(), error_messages={"required": "Choose who owns the incident."}
    )


class ReconciliationView(ConsoleAccessMixin, View):
    def get(self, request):
        return render(
            request,
            "console/reconciliation.html",
            {
                "reports": ReconciliationReport.objects.select_related("created_by").defer("data")[:60],
                "incidents": Incident.objects.exclude(status=IncidentStatus.RESOLVED)
                .select_related("report", "acknowledged_by", "owner")
                .defer("report__crm_export"),  # select_related reads every column, a kept CRM export's too
                "resolved": Incident.objects.filter(status=IncidentStatus.RESOLVED).select_related("resolved_by")[:10],
                # Resolved, large enough to need one, none written yet: chased here until written.
                "postmortems_due": Incident.objects.filter(postmortem_required=True, postmortem_written_at__isnull=True)
                .select_related("owner")
                .order_by("postmortem_due_at", "id")[:POSTMORTEMS_DUE_SHOWN],
                "now": timezone.now(),
            },
        )


class ParityRunView(ConsoleAccessMixin, View):
    def post(self, request):
        """Run the daily parity now, for yesterday or a given day (after a fix): a new report, kept beside the
        earlier ones; a day's open incident is not opened twice."""
        try:
            day = dt.date.fromisoformat(request.POST.get("day") or "")
        except ValueError:
            day = yesterday()
        if problem := day_out_of_range(day):
            messages.error(request, f"Not run: {problem}")
            return HttpResponseRedirect(reverse("console:reconciliation"))
        report = parity_reconcile(day=day, by=request.user)
        audit_record(
            action=AuditAction.REPORT_RUN,
            actor=request.user,
            outcome="parity",
            data={"report": "parity", "day": day.isoformat(), "flagged": report.flagged},
        )
        found = f"{len(report.data['gaps'])} gap(s)" if report.flagged else "no gap"
        messages.success(request, f"Parity for {day:%Y-%m-%d} run now: {found}.")
        return HttpResponseRedirect(reverse("console:parity-report", args=[report.pk]))


class ParityReportView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        report = get_object_or_404(ReconciliationReport, pk=pk, kind=ReportKind.PARITY)
        targets = sorted({name for row in report.data.get("origins", []) for name in row["deliveries"]})
        return render(
            request,
            "console/parity_report.html",
            {"report": report, "targets": targets, "incidents": report.incidents.select_related("owner")},
        )


class IncidentView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        return incident_page(request, pk)


def incident_page(request, pk, *, postmortem_form: PostmortemForm | None = None, status: int = 200):
    """A reconciliation incident: its owner, its state, its postmortem; with the person's refused postmortem form
    (what they wrote kept) and a 400."""
    incident = get_object_or_404(
        Incident.objects.select_related(
            "report", "owner", "acknowledged_by", "resolved_by", "postmortem_written_by"
        ).defer("report__crm_export", "report__data"),
        pk=pk,
    )
    return render(
        request,
        "console/parity_incident.html",
        {
            "incident": incident,
            "owner_form": OwnerForm(initial={"owner": incident.owner_id}),
            "postmortem_form": postmortem_form or PostmortemForm(initial={"postmortem": incident.postmortem}),
            "postmortem_threshold": settings.HANDOFF["POSTMORTEM_THRESHOLD"],
            "now": timezone.now(),
        },
        status=status,
    )


class IncidentActionView(ConsoleAccessMixin, View):
    """POST .../incidents/<pk>/<action>/: acknowledge or resolve (back to the reconciliation page); assign its
    owner or write its postmortem (back to the incident's page)."""

    def post(self, request, pk, action):
        incident = get_object_or_404(Incident, pk=pk)
        if action == "postmortem":
            return self.postmortem(request, incident)
        back = reverse("console:reconciliation")
        try:
            if action == "acknowledge":
                incident_acknowledge(incident=incident, by=request.user)
                messages.success(request, f"Incident #{pk} acknowledged.")
            elif action == "resolve":
                incident_resolve(incident=incident, by=request.user, note=request.POST.get("note", ""))
                messages.success(request, f"Incident #{pk} resolved.")
            elif action == "assign":
                back = reverse("console:parity-incident", args=[pk])
                form = OwnerForm(request.POST)
                if not form.is_valid():
                    raise InvalidAction(" ".join(m for errors in form.errors.values() for m in errors))
                owner = incident_owner_assign(incident=incident, to=form.cleaned_data["owner"], by=request.user).owner
                messages.success(request, f"Incident #{pk} is owned by {owner.get_username()}.")
            else:
                messages.error(request, f"Unknown action {action!r}: acknowledge, resolve, assign or postmortem.")
        except InvalidAction as refused:
            messages.error(request, f"Nothing was changed: {refused}")
        return HttpResponseRedirect(back)

    def postmortem(self, request, incident):
        form = PostmortemForm(request.POST)
        try:
            if not form.is_valid():
                raise PostmortemRefused(" ".join(m for errors in form.errors.values() for m in errors))
            incident_postmortem_write(incident=incident, text=form.cleaned_data["postmortem"], by=request.user)
        except PostmortemRefused as refused:
            messages.error(request, f"The postmortem was not saved: {refused}")
            return incident_page(request, incident.pk, postmortem_form=form, status=400)
        messages.success(request, f"Postmortem of incident #{incident.pk} saved.")
        return HttpResponseRedirect(reverse("console:parity-incident", args=[incident.pk]))
