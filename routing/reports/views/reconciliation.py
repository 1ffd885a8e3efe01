"""Reconciliation screens: stored reports (daily parity; attribution has its own upload screen), a parity
report's detail, and incidents with acknowledge and resolve."""

import datetime as dt

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views import View

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.permissions import ConsoleAccessMixin
from exceptions.services import InvalidAction
from routing.days import day_out_of_range, yesterday
from routing.reports.incidents import incident_acknowledge, incident_resolve
from routing.reports.models import Incident, IncidentStatus, ReconciliationReport, ReportKind
from routing.reports.parity import parity_reconcile


class ReconciliationView(ConsoleAccessMixin, View):
    def get(self, request):
        return render(
            request,
            "console/reconciliation.html",
            {
                "reports": ReconciliationReport.objects.select_related("created_by").defer("data")[:60],
                "incidents": Incident.objects.exclude(status=IncidentStatus.RESOLVED)
                .select_related("report", "acknowledged_by")
                .defer("report__crm_export"),  # select_related reads every column, a kept CRM export's too
                "resolved": Incident.objects.filter(status=IncidentStatus.RESOLVED).select_related("resolved_by")[:10],
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
            {"report": report, "targets": targets, "incidents": report.incidents.all()},
        )


class IncidentActionView(ConsoleAccessMixin, View):
    def post(self, request, pk, action):
        incident = get_object_or_404(Incident, pk=pk)
        try:
            if action == "acknowledge":
                incident_acknowledge(incident=incident, by=request.user)
                messages.success(request, f"Incident #{pk} acknowledged.")
            elif action == "resolve":
                incident_resolve(incident=incident, by=request.user, note=request.POST.get("note", ""))
                messages.success(request, f"Incident #{pk} resolved.")
            else:
                messages.error(request, f"Unknown action {action!r}.")
        except InvalidAction as refused:
            messages.error(request, str(refused))
        return HttpResponseRedirect(reverse("console:reconciliation"))
