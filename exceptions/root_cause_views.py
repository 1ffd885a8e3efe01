"""The monthly root-cause report in the console (exceptions.root_cause builds it)."""

import datetime as dt

from django.shortcuts import render
from django.utils import timezone
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from exceptions.root_cause import month_start, next_month, previous_month, root_cause_report

MONTHS_LISTED = 12


FIRST_MONTH = dt.date(2000, 1, 1)


class RootCauseReportView(ConsoleAccessMixin, View):
    """GET /console/root-causes/?month=YYYY-MM (default: last month)."""

    def get(self, request):
        this_month = month_start(timezone.now().date())
        asked, problem = request.GET.get("month", ""), ""
        try:
            month = dt.date.fromisoformat(f"{asked}-01") if asked else previous_month(this_month)
        except ValueError:
            month, problem = previous_month(this_month), f"No month {asked!r}: use YYYY-MM, e.g. 2026-03."
        if not problem and not FIRST_MONTH <= month <= this_month:  # year 1 or 9999 overflowed the month's bounds
            month, problem = previous_month(this_month), f"{asked}: choose a month from 2000-01 to this one."
        months, cursor = [], this_month
        for _ in range(MONTHS_LISTED):
            months.append(cursor)
            cursor = previous_month(cursor)
        return render(
            request,
            "console/root_causes.html",
            {
                "report": root_cause_report(month=month),
                "months": months,
                "previous": previous_month(month),
                "next": next_month(month) if next_month(month) <= this_month else None,
                "problem": problem,
            },
            status=400 if problem else 200,
        )
