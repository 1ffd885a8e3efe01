"""Change history and restore of targets, providers, sources and queues, and queue routing settings: screens
inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from routing.changes import views

urlpatterns = [
    path("changes/", views.ChangeListView.as_view(), name="changes"),
    path("changes/staged/<int:event_id>/", views.StagedChangeView.as_view(), name="staged-change"),
    path("changes/<str:kind>/<int:pk>/", views.ObjectHistoryView.as_view(), name="object-changes"),
    path(
        "changes/<str:kind>/<int:pk>/restore/<str:history_kind>/<int:history_id>/",
        views.RestoreView.as_view(),
        name="restore-version",
    ),
    path("queues/<int:pk>/settings/", views.QueueSettingsView.as_view(), name="queue-settings"),
]
