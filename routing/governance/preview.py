"""Routing preview: what the rules would do with a lead, and who would get it, without writing anything."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from routing.accounts.identity import routing_choice, sample_identity
from routing.accounts.leads import LeadAccount, recorded_account_view, sample_account
from routing.assignment import pick_assignee
from routing.engine import candidate_versions, production_versions
from routing.experiments.models import Arm, ExperimentLead
from routing.governance.explain import Explanation, explain
from routing.governance.models import PRODUCTION_KINDS, RulePromotion, RuleVersion
from routing.intake import sample_fields
from routing.models import Lead


@dataclass(frozen=True)
class Preview:
    explanation: Explanation
    queue: str | None  # where the lead would land (the rule's queue, or its overflow)
    assignee: str | None  # who would get it next, or None when nobody is eligible
    account: LeadAccount | None = None  # the account it matches as the accounts stand
    assigned_by: str = "queue"  # "account_owner", "sticky" or "queue"
    assignee_note: str = ""


def routing_preview(*, sample: dict, candidate: bool = False) -> Preview:
    """`sample` is validated like intake (SampleLeadError names the bad fields). With `candidate`, the
    staging versions stand in for production, as in shadow evaluation and replay."""
    fields = sample_fields(sample)
    account = sample_account(fields)
    view = Lead.view_from(fields)
    view["account"] = account.view
    versions = (candidate_versions() if candidate else production_versions()).select_related("queue", "owner")
    explanation = explain(list(versions), view)
    decided = explanation.decided
    if decided is None:
        return Preview(explanation=explanation, queue=None, assignee=None, account=account)
    version = decided.version
    choice = routing_choice(
        assign_to=version.assign_to,
        queue_id=version.queue_id,
        account=account.account,
        identity=sample_identity(fields),
        now=timezone.now(),
    )
    if choice.user is not None:
        return Preview(
            explanation=explanation,
            queue=version.queue.name,
            assignee=choice.user.get_username(),
            account=account,
            assigned_by=choice.how,
            assignee_note=choice.note,
        )
    # The real picker, rolled back: the answer matches what routing would do, and nothing is kept.
    with transaction.atomic():
        pick = pick_assignee(queue_id=version.queue_id)
        transaction.set_rollback(True)
    assignee = pick.assignee.get_username() if pick.assignee else None
    return Preview(
        explanation=explanation,
        queue=pick.queue.name,
        assignee=assignee,
        account=account,
        assigned_by=choice.how,
        assignee_note=choice.note,
    )


def lead_explanation(lead: Lead) -> Explanation | None:
    """Why the lead was decided as it was: the production versions live when it was routed (with the experiment's
    candidate in its rule's place, for a lead the candidate arm routed), over its data and the account it was
    matched to then."""
    if lead.routed_at is None:
        return None
    view = lead.routing_view()
    view["account"] = recorded_account_view(lead)
    versions = versions_live_at(lead.routed_at)
    trial = (
        ExperimentLead.objects.filter(lead=lead, arm=Arm.CANDIDATE)
        .select_related("experiment__candidate__queue")
        .first()
    )
    if trial is not None:
        candidate = trial.experiment.candidate
        versions = [version for version in versions if version.rule_id != candidate.rule_id] + [candidate]
    return explain(versions, view)


def versions_live_at(moment) -> list[RuleVersion]:
    """The production versions as they stood at `moment`: what decided a lead routed then."""
    latest: dict[int, int] = {}
    promotions = RulePromotion.objects.filter(kind__in=PRODUCTION_KINDS, at__lte=moment).order_by("at", "id")
    for rule_id, version_id in promotions.values_list("rule_id", "version_id"):
        latest[rule_id] = version_id
    return list(RuleVersion.objects.filter(pk__in=latest.values()).select_related("queue"))
