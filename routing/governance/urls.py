"""Rule screens, served inside the console's URL namespace (config/urls.py assembles the console)."""

from django.urls import path

from routing.governance import builder_views, remediate_views, views

urlpatterns = [
    path("rules/", views.RuleListView.as_view(), name="rules"),
    path("rules/new/", views.RuleEditView.as_view(), name="rule-new"),
    path("rules/mine/", views.MyRulesView.as_view(), name="my-rules"),
    path("rules/condition/check/", builder_views.ConditionCheckView.as_view(), name="rule-condition-check"),
    path("rules/mine/notices/read/", views.NoticesReadView.as_view(), name="rule-notices-read"),
    path("rules/preview/", views.PreviewView.as_view(), name="preview"),
    path("rules/replay/", views.ReplayView.as_view(), name="replays"),
    path("rules/replay/<int:pk>/", views.ReplayDetailView.as_view(), name="replay"),
    path("rules/<int:pk>/", views.RuleDetailView.as_view(), name="rule"),
    path("rules/<int:pk>/edit/", views.RuleEditView.as_view(), name="rule-edit"),
    path("rules/<int:pk>/v<int:number>/", remediate_views.RuleVersionView.as_view(), name="rule-version"),
    path("rules/<int:pk>/v<int:number>/reroute/", remediate_views.RerouteView.as_view(), name="rule-version-reroute"),
    path("rules/<int:pk>/changes/<slug:key>/", views.ChangeDiffView.as_view(), name="rule-change"),
    path("rules/<int:pk>/<slug:action>/", views.RuleActionView.as_view(), name="rule-action"),
    path("leads/<int:pk>/", views.LeadView.as_view(), name="lead"),
    path("leads/<int:pk>/test-case/", views.LeadTestCaseView.as_view(), name="lead-test-case"),
]
