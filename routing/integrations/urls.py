"""Integration screens, served inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from routing.integrations.views import DeadLetterView

urlpatterns = [
    path("dead-letters/", DeadLetterView.as_view(), name="dead-letters"),
]
