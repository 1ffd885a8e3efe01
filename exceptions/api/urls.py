from django.urls import path

from exceptions.api import views
from exceptions.api.pagerduty import PagerDutyWebhookView

urlpatterns = [
    path("exceptions/", views.ExceptionListView.as_view(), name="exception-list"),
    path("exceptions/bulk/", views.BulkView.as_view(), name="exception-bulk"),
    path("exceptions/<int:pk>/", views.ExceptionDetailView.as_view(), name="exception-detail"),
    path("exceptions/<int:pk>/acknowledge/", views.AcknowledgeView.as_view(), name="exception-acknowledge"),
    path("exceptions/<int:pk>/resolve/", views.ResolveView.as_view(), name="exception-resolve"),
    path("exceptions/<int:pk>/reroute/", views.RerouteView.as_view(), name="exception-reroute"),
    path("incidents/", views.IncidentListView.as_view(), name="incident-list"),
    path("incidents/<int:pk>/", views.IncidentDetailView.as_view(), name="incident-detail"),
    path("incidents/<int:pk>/acknowledge/", views.IncidentAcknowledgeView.as_view(), name="incident-acknowledge"),
    path("incidents/<int:pk>/assign/", views.IncidentAssignView.as_view(), name="incident-assign"),
    path("incidents/<int:pk>/resolve/", views.IncidentResolveView.as_view(), name="incident-resolve"),
    path("integrations/pagerduty/", PagerDutyWebhookView.as_view(), name="pagerduty-webhook"),
]
