"""Experiment screens inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from routing.experiments import views

urlpatterns = [
    path("experiments/", views.ExperimentListView.as_view(), name="experiments"),
    path("experiments/<int:pk>/", views.ExperimentDetailView.as_view(), name="experiment"),
    path("experiments/<int:pk>/figures/", views.ExperimentFiguresView.as_view(), name="experiment-figures"),
    path("experiments/<int:pk>/<str:action>/", views.ExperimentActionView.as_view(), name="experiment-action"),
    path("rules/<int:pk>/experiments/start/", views.ExperimentStartView.as_view(), name="experiment-start"),
]
