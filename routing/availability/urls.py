"""The console's people screens (inside the `console` namespace): who is in, and each person's availability."""

from django.urls import path

from routing.availability import report_views, views

console_urlpatterns = [
    path("queues/<int:pk>/distribution/", report_views.DistributionView.as_view(), name="queue-distribution"),
    path("people/", views.WhoIsInView.as_view(), name="people"),
    path("people/<str:username>/availability/", views.PersonAvailabilityView.as_view(), name="person-availability"),
    path(
        "people/<str:username>/availability/<slug:action>/",
        views.PersonAvailabilityView.as_view(),
        name="person-availability-change",
    ),
]
