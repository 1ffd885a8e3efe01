"""Routing preview: what the rules would do with a lead, and who would get it, without writing anything."""

from dataclasses import dataclass

from django.db import transaction

from routing.assignment import pick_assignee
from routing.engine import candidate_versions, production_versions
from routing.governance.explain import Explanation, explain, sample_view
from routing.governance.models import PRODUCTION_KINDS, RulePromotion, RuleVersion
from routing.models import Lead


@dataclass(frozen=True)
class Preview:
    explanation: Explanation
    queue: str | None  # where the lead would land (the rule's queue, or its overflow)
    assignee: str | None  # who would get it next, or None when nobody is eligible


def routing_preview(*, sample: dict, candidate: bool = False) -> Preview:
    """`sample` is validated like intake (SampleLeadError names the bad fields). With `candidate`, the
    staging versions stand in for production, as in shadow evaluation and replay."""
    view = sample_view(sample)
    versions = (candidate_versions() if candidate else production_versions()).select_related("queue", "owner")
    explanation = explain(list(versions), view)
    decided = explanation.decided
    if decided is None:
        return Preview(explanation=explanation, queue=None, assignee=None)
    # The real picker, rolled back: the answer matches what routing would do, and nothing is kept.
    with transaction.atomic():
        pick = pick_assignee(queue_id=decided.version.queue_id)
        transaction.set_rollback(True)
    assignee = pick.assignee.get_username() if pick.assignee else None
    return Preview(explanation=explanation, queue=pick.queue.name, assignee=assignee)


def lead_explanation(lead: Lead) -> Explanation | None:
    """Why the lead was decided as it was: the production versions live when it was routed, over its data."""
    if lead.routed_at is None:
        return None
    return explain(versions_live_at(lead.routed_at), lead.routing_view())


def versions_live_at(moment) -> list[RuleVersion]:
    """The production versions as they stood at `moment`: what decided a lead routed then."""
    latest: dict[int, int] = {}
    promotions = RulePromotion.objects.filter(kind__in=PRODUCTION_KINDS, at__lte=moment).order_by("at", "id")
    for rule_id, version_id in promotions.values_list("rule_id", "version_id"):
        latest[rule_id] = version_id
    return list(RuleVersion.objects.filter(pk__in=latest.values()).select_related("queue"))
