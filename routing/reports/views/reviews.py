"""The Monday checklist and the daily anomaly reports, in the console."""

import datetime as dt

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.permissions import ConsoleAccessMixin
from routing.days import yesterday
from routing.reports.anomalies import anomaly_report_build
from routing.reports.checklist import monday_checklist
from routing.reports.models import AnomalyReport


class ChecklistView(ConsoleAccessMixin, View):
    def get(self, request):
        return render(request, "console/checklist.html", {"checklist": monday_checklist()})


class AnomalyView(ConsoleAccessMixin, View):
    def get(self, request):
        reports = AnomalyReport.objects.all()
        chosen = None
        try:
            day = dt.date.fromisoformat(request.GET.get("day", ""))
        except ValueError:
            day = None
        chosen = reports.filter(day=day).first() if day else reports.first()
        return render(
            request,
            "console/anomalies.html",
            {"report": chosen, "reports": reports.only("day", "flagged")[:30], "asked": day},
        )

    def post(self, request):
        """Run now: yesterday's report built again from what is stored (replacing the morning's; no email)."""
        day = yesterday()
        report = anomaly_report_build(day=day)
        audit_record(
            action=AuditAction.REPORT_RUN,
            actor=request.user,
            outcome="anomalies",
            data={"report": "anomalies", "day": day.isoformat(), "flagged": report.flagged},
        )
        messages.success(request, f"Anomaly report for {day:%Y-%m-%d} run now: {report.flagged} flagged.")
        return HttpResponseRedirect(reverse("console:anomalies") + f"?day={day.isoformat()}")
