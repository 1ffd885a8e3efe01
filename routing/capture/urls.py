"""Capture-edge screens, inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from routing.capture.views import RejectedDetailView, RejectedListView

console_urlpatterns = [
    path("intake/rejected/", RejectedListView.as_view(), name="rejected-posts"),
    path("intake/rejected/<int:pk>/", RejectedDetailView.as_view(), name="rejected-post"),
]
