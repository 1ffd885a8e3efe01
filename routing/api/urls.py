from django.urls import path

from routing.accounts.urls import api_urlpatterns as account_api
from routing.api import views
from routing.api.schema_versions import SchemaVersionsView
from routing.availability import api as availability
from routing.availability import report_views
from routing.experiments import api as experiments
from routing.governance import api as rules
from routing.governance import metrics_api as rule_targets
from routing.integrations.ack_api import DeliveryAckView

urlpatterns = [
    path("leads/", views.LeadIntakeView.as_view(), name="lead-intake"),
    path("leads/batch/", views.LeadBatchIntakeView.as_view(), name="lead-batch-intake"),
    path("leads/<int:pk>/", views.LeadDetailView.as_view(), name="lead-detail"),
    path("leads/<int:pk>/assign/", rules.ManualAssignView.as_view(), name="lead-assign"),
    path(
        "people/<str:username>/availability/", availability.PersonAvailabilityView.as_view(), name="person-availability"
    ),
    path("people/<str:username>/availability/ical/", availability.PersonCalendarView.as_view(), name="person-calendar"),
    path("deliveries/<str:pk>/ack/", DeliveryAckView.as_view(), name="delivery-ack"),
    path("queues/<int:pk>/distribution/", report_views.DistributionApiView.as_view(), name="queue-distribution"),
    path("rules/", rules.RuleListView.as_view(), name="rule-list"),
    path("rules/replay/", rules.ReplayView.as_view(), name="rule-replay"),
    path("rules/replay/<int:pk>/", rules.ReplayDetailView.as_view(), name="rule-replay-detail"),
    path("rules/preview/", rules.PreviewView.as_view(), name="rule-preview"),
    path("rules/<int:pk>/", rules.RuleDetailView.as_view(), name="rule-detail"),
    path("rules/<int:pk>/test/", rules.RunTestsView.as_view(), name="rule-test"),
    path("rules/<int:pk>/targets/", rule_targets.RuleTargetsView.as_view(), name="rule-targets"),
    path("rules/<int:pk>/promote/", rules.PromoteView.as_view(), name="rule-promote"),
    path("rules/<int:pk>/rollback/", rules.RollbackView.as_view(), name="rule-rollback"),
    path("rules/<int:pk>/experiments/", experiments.StartView.as_view(), name="rule-experiment-start"),
    path("experiments/", experiments.ExperimentListView.as_view(), name="experiment-list"),
    path("experiments/<int:pk>/", experiments.ExperimentDetailView.as_view(), name="experiment-detail"),
    path("experiments/<int:pk>/stop/", experiments.StopView.as_view(), name="experiment-stop"),
    path("experiments/<int:pk>/decide/", experiments.DecideView.as_view(), name="experiment-decide"),
    path("rules/<int:pk>/approve/", rules.ApproveView.as_view(), name="rule-approve"),
    *account_api,
    path("schema-versions/", SchemaVersionsView.as_view(), name="schema-versions"),
]
