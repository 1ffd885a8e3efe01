"""Which leads the running experiment takes, and which arm routes each (README: Experiments).

A lead is enrolled when the experiment's rule decides it on either side: production's decision or the
candidate's. Leads no side of it touches are not the experiment's business, and counting them would drown the
difference in leads both arms route alike. The arm comes from a hash of the experiment's seed and the lead's
origin and capture id, so a lead posted again, or routed again after a requeue, lands in the same arm.

Enrolment is counted exactly: the experiment's row is locked while a routing batch claims its places, and the
batch that fills the last place ends the experiment, in the same transaction as the leads it routed."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import timezone

from routing.bulk import bulk_insert
from routing.experiments.models import Arm, Experiment, ExperimentEnd, ExperimentLead, ExperimentStatus


def arm_for(*, seed: str, origin_id: int, lead_id: str, percent: int) -> str:
    """The arm of a lead: the candidate for `percent` of the 10,000 buckets a hash of the lead falls in."""
    digest = hashlib.sha256(f"{seed}:{origin_id}:{lead_id}".encode()).digest()
    return Arm.CANDIDATE if int.from_bytes(digest[:8], "big") % 10_000 < percent * 100 else Arm.PRODUCTION


@dataclass(frozen=True)
class Evaluated:
    """A lead both rule sets were evaluated on: production's match and the candidate's (engine.Match)."""

    lead: object  # routing.models.Lead
    production: object
    candidate: object


@dataclass(frozen=True)
class Split:
    """An enrolled lead's arm, and the match that routes it."""

    arm: str
    match: object  # engine.Match


def leads_split(*, experiment, evaluated: Sequence[Evaluated], at=None) -> dict[int, Split]:
    """Enrol the leads among `evaluated` the experiment's rule concerns, as far as it has places left, and say
    which match routes each (by lead pk). A lead enrolled before keeps its arm and takes no new place; a lead
    another experiment enrolled routes by production. Call inside the routing transaction."""
    concerned = [entry for entry in evaluated if _concerns(experiment.rule_id, entry)]
    if not concerned:
        return {}
    at = at or timezone.now()
    earlier = dict(
        ExperimentLead.objects.filter(lead_id__in=[entry.lead.pk for entry in concerned]).values_list(
            "lead_id", "experiment_id"
        )
    )
    again = [entry for entry in concerned if earlier.get(entry.lead.pk) == experiment.id]
    new = [entry for entry in concerned if entry.lead.pk not in earlier]
    new = new[: _places_claim(experiment.id, len(new), at=at)] if new else []
    arms = {
        entry.lead.pk: arm_for(
            seed=experiment.seed, origin_id=entry.lead.origin_id, lead_id=entry.lead.lead_id, percent=experiment.percent
        )
        for entry in [*again, *new]
    }
    bulk_insert(
        [ExperimentLead(experiment_id=experiment.id, lead=entry.lead, arm=arms[entry.lead.pk], at=at) for entry in new]
    )
    return {
        entry.lead.pk: Split(
            arm=arms[entry.lead.pk], match=entry.candidate if arms[entry.lead.pk] == Arm.CANDIDATE else entry.production
        )
        for entry in [*again, *new]
    }


def _concerns(rule_id: int, entry: Evaluated) -> bool:
    return any(match.rule is not None and match.rule.id == rule_id for match in (entry.production, entry.candidate))


def _places_claim(experiment_id: int, wanted: int, *, at) -> int:
    """Take up to `wanted` places of a running experiment, under its row lock (held to the end of the routing
    transaction, so concurrent batches count one after the other); the claim that fills it ends it."""
    experiment = (
        Experiment.objects.select_for_update(no_key=True)
        .filter(pk=experiment_id, status=ExperimentStatus.RUNNING)
        .only("enrolled", "max_leads")
        .first()
    )
    if experiment is None:  # stopped, ended or superseded since the rule sets were read
        return 0
    room = wanted if experiment.max_leads is None else max(0, min(wanted, experiment.max_leads - experiment.enrolled))
    changes = {"enrolled": experiment.enrolled + room}
    if experiment.max_leads is not None and changes["enrolled"] >= experiment.max_leads:
        changes.update(status=ExperimentStatus.ENDED, end_reason=ExperimentEnd.MAX_LEADS, ended_at=at)
    Experiment.objects.filter(pk=experiment_id).update(**changes)
    return room
