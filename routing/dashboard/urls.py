"""Dashboard screens, served inside the console's URL namespace (exceptions/urls.py includes them)."""

from django.urls import path

from routing.dashboard import views

urlpatterns = [
    path("dashboard/", views.DashboardView.as_view(), name="dashboard"),
    path("dashboard/leads/", views.DashboardLeadListView.as_view(), name="dashboard-leads"),
]
