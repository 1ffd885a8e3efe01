from django.urls import path

from routing.api import views

urlpatterns = [
    path("leads/", views.LeadIntakeView.as_view(), name="lead-intake"),
    path("leads/batch/", views.LeadBatchIntakeView.as_view(), name="lead-batch-intake"),
    path("leads/<int:pk>/", views.LeadDetailView.as_view(), name="lead-detail"),
]
