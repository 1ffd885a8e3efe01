"""The Monday checklist and the daily anomaly reports, in the console."""

import datetime as dt

from django.shortcuts import render
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
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
