"""Integration screens, served inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from routing.integrations import change_views
from routing.integrations.views import DeadLetterView

urlpatterns = [
    path("dead-letters/", DeadLetterView.as_view(), name="dead-letters"),
    # Change history and restore of targets, providers, sources and queues; queue routing settings.
    path("changes/", change_views.ChangeListView.as_view(), name="changes"),
    path("changes/staged/<int:event_id>/", change_views.StagedChangeView.as_view(), name="staged-change"),
    path("changes/<str:kind>/<int:pk>/", change_views.ObjectHistoryView.as_view(), name="object-changes"),
    path(
        "changes/<str:kind>/<int:pk>/restore/<str:history_kind>/<int:history_id>/",
        change_views.RestoreView.as_view(),
        name="restore-version",
    ),
    path("queues/<int:pk>/settings/", change_views.QueueSettingsView.as_view(), name="queue-settings"),
]
