"""Every product URL, plus the bare baseline view."""

from django.urls import include, path

from bench.baseline.views import insert_one

urlpatterns = [
    path("bench/baseline/insert/", insert_one, name="bench-baseline-insert"),
    path("", include("config.urls")),
]
