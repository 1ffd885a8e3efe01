"""Reading experiments: the list (by rule and status) and one with what its page and the API show."""

from django.db.models import QuerySet

from routing.experiments.models import Experiment


def experiment_list(*, rule_id: int | None = None, statuses: list[str] | None = None) -> QuerySet:
    """Newest first, with what a row shows (rule, versions, who started and decided) in the same query."""
    experiments = Experiment.objects.select_related(
        "rule", "rule__owner", "candidate", "baseline", "started_by", "ended_by", "decided_by"
    )
    if rule_id is not None:
        experiments = experiments.filter(rule_id=rule_id)
    if statuses:
        experiments = experiments.filter(status__in=statuses)
    return experiments.order_by("-started_at", "-id")
