from django.urls import path

from exceptions import views
from routing.accounts.urls import console_urlpatterns as account_screens
from routing.dashboard.urls import urlpatterns as dashboard_screens
from routing.governance.urls import urlpatterns as rule_screens
from routing.integrations.attribution_views import AttributionReportView, AttributionView
from routing.integrations.reconciliation_views import IncidentActionView, ParityReportView, ReconciliationView
from routing.integrations.views import DeadLetterView
from routing.operations.views import AnomalyView, ChecklistView

app_name = "console"
urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("items/", views.ItemListView.as_view(), name="items"),
    path("items/bulk/", views.BulkActionView.as_view(), name="bulk"),
    path("items/<int:pk>/", views.ItemDetailView.as_view(), name="item"),
    path("items/<int:pk>/<slug:action>/", views.ItemActionView.as_view(), name="item-action"),
    path("notifications/", views.NotificationsView.as_view(), name="notifications"),
    path("dead-letters/", DeadLetterView.as_view(), name="dead-letters"),
    path("checklist/", ChecklistView.as_view(), name="checklist"),
    path("anomalies/", AnomalyView.as_view(), name="anomalies"),
    path("reconciliation/", ReconciliationView.as_view(), name="reconciliation"),
    path("reconciliation/<int:pk>/", ParityReportView.as_view(), name="parity-report"),
    path("incidents/<int:pk>/<slug:action>/", IncidentActionView.as_view(), name="incident-action"),
    *rule_screens,
    *dashboard_screens,
    *account_screens,
    path("reconciliation/attribution/", AttributionView.as_view(), name="attribution"),
    path("reconciliation/attribution/<int:pk>/", AttributionReportView.as_view(), name="attribution-report"),
]
