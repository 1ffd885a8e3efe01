"""Reconciliation screens: stored reports (daily parity; attribution has its own upload screen), a parity
report's detail, and incidents with acknowledge and resolve."""

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from exceptions.services import InvalidAction
from routing.reports.incidents import incident_acknowledge, incident_resolve
from routing.reports.models import Incident, IncidentStatus, ReconciliationReport, ReportKind


class ReconciliationView(ConsoleAccessMixin, View):
    def get(self, request):
        return render(
            request,
            "console/reconciliation.html",
            {
                "reports": ReconciliationReport.objects.select_related("created_by").defer("data")[:60],
                "incidents": Incident.objects.exclude(status=IncidentStatus.RESOLVED).select_related(
                    "report", "acknowledged_by"
                ),
                "resolved": Incident.objects.filter(status=IncidentStatus.RESOLVED).select_related("resolved_by")[:10],
            },
        )


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
