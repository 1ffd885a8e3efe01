"""Report screens, served inside the console's URL namespace (config/urls.py assembles the console, and
serves /metrics at the top level)."""

from django.urls import path

from routing.reports.views.attribution import AttributionReportView, AttributionRunView, AttributionView
from routing.reports.views.reconciliation import (
    IncidentActionView,
    IncidentView,
    ParityReportView,
    ParityRunView,
    ReconciliationView,
)
from routing.reports.views.reviews import AnomalyView, ChecklistView

urlpatterns = [
    path("checklist/", ChecklistView.as_view(), name="checklist"),
    path("anomalies/", AnomalyView.as_view(), name="anomalies"),
    path("reconciliation/", ReconciliationView.as_view(), name="reconciliation"),
    path("reconciliation/run/", ParityRunView.as_view(), name="parity-run"),
    path("reconciliation/<int:pk>/", ParityReportView.as_view(), name="parity-report"),
    path("reconciliation/attribution/", AttributionView.as_view(), name="attribution"),
    path("reconciliation/attribution/run/", AttributionRunView.as_view(), name="attribution-run"),
    path("reconciliation/attribution/<int:pk>/", AttributionReportView.as_view(), name="attribution-report"),
    path("reconciliation/incidents/<int:pk>/", IncidentView.as_view(), name="parity-incident"),
    path(
        "reconciliation/incidents/<int:pk>/<slug:action>/", IncidentActionView.as_view(), name="parity-incident-action"
    ),
]
