"""Rule screens, served inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from routing.governance import views

urlpatterns = [
    path("rules/", views.RuleListView.as_view(), name="rules"),
    path("rules/new/", views.RuleEditView.as_view(), name="rule-new"),
    path("rules/mine/", views.MyRulesView.as_view(), name="my-rules"),
    path("rules/preview/", views.PreviewView.as_view(), name="preview"),
    path("rules/replay/", views.ReplayView.as_view(), name="replays"),
    path("rules/replay/<int:pk>/", views.ReplayDetailView.as_view(), name="replay"),
    path("rules/<int:pk>/", views.RuleDetailView.as_view(), name="rule"),
    path("rules/<int:pk>/edit/", views.RuleEditView.as_view(), name="rule-edit"),
    path("rules/<int:pk>/<slug:action>/", views.RuleActionView.as_view(), name="rule-action"),
    path("leads/<int:pk>/", views.LeadView.as_view(), name="lead"),
]
