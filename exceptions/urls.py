"""Exception screens, served inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from exceptions import incident_views, playbook_views, root_cause_views, views

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("items/", views.ItemListView.as_view(), name="items"),
    path("items/bulk/", views.BulkActionView.as_view(), name="bulk"),
    path("items/views/", views.SavedViewsView.as_view(), name="saved-views"),
    path("items/<int:pk>/", views.ItemDetailView.as_view(), name="item"),
    path("items/<int:pk>/<slug:action>/", views.ItemActionView.as_view(), name="item-action"),
    path("incidents/", incident_views.IncidentListView.as_view(), name="incidents"),
    path("incidents/<int:pk>/", incident_views.IncidentDetailView.as_view(), name="incident"),
    path("incidents/<int:pk>/<slug:action>/", incident_views.IncidentActionView.as_view(), name="incident-action"),
    path("notifications/", views.NotificationsView.as_view(), name="notifications"),
    path("playbooks/", playbook_views.PlaybookListView.as_view(), name="playbooks"),
    path("playbooks/<slug:reason>/", playbook_views.PlaybookEditView.as_view(), name="playbook"),
    path("root-causes/", root_cause_views.RootCauseReportView.as_view(), name="root-causes"),
]
