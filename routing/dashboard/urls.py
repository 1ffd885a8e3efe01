"""Dashboard screens, served inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from routing.dashboard import views

urlpatterns = [
    path("dashboard/", views.DashboardView.as_view(), name="dashboard"),
    path("dashboard/leads/", views.DashboardLeadListView.as_view(), name="dashboard-leads"),
]
