"""What routing asks of accounts for one lead: match it (and record the match), show the account to the rules,
and pick the account's owner when a rule says `"assignee": "account_owner"`."""

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from routing.accounts.matching import MatchResult
from routing.accounts.models import Account, AccountMatch
from routing.accounts.selectors import account_match_for, account_matches_for, facts_account, facts_view
from routing.assignment import until_words
from routing.availability.schedule import Schedule, Why
from routing.availability.selectors import schedules_for
from routing.bulk import bulk_upsert
from routing.models import AssignTo, Lead, QueueMembership


@dataclass(frozen=True)
class LeadAccount:
    """A lead's match as routing uses it: the account row (None when nothing matched), what rules read as
    `account.*`, and what the decision's audit inputs record."""

    account: Account | None
    view: dict | None
    method: str
    confidence: float
    why: str
    candidates: list

    @property
    def audit(self) -> dict:
        return {
            "account_id": self.account.account_id if self.account else None,
            "name": self.account.name if self.account else None,
            "method": self.method,
            "confidence": self.confidence,
            "why": self.why,
            "candidates": [c["account_id"] for c in self.candidates if c.get("eligible")],
        }

    def as_body(self) -> dict:
        """The match API's answer (routing/accounts/api.py MatchSerializer)."""
        account = None
        if self.account is not None:
            owner = self.account.owner
            account = {
                "account_id": self.account.account_id,
                "name": self.account.name,
                "owner": owner.get_username() if owner is not None else None,
                "territory": self.account.territory,
            }
        return {
            "account": account,
            "method": self.method,
            "confidence": self.confidence,
            "candidates": self.candidates,
            "why": self.why,
        }


def lead_account(result: MatchResult) -> LeadAccount:
    """A match as routing uses it, built from the candidate row (no further query)."""
    facts = result.account
    return LeadAccount(
        account=facts_account(facts) if facts is not None else None,
        view=facts_view(facts) if facts is not None else None,
        method=result.method,
        confidence=result.confidence,
        why=result.why,
        candidates=[c.as_dict() for c in result.candidates],
    )


def sample_account(fields: dict) -> LeadAccount:
    return lead_account(
        account_match_for(
            email=fields.get("email"),
            company=fields.get("company"),
            phone=fields.get("phone"),
            country=fields.get("country"),
        )
    )


def lead_match_account(*, lead: Lead, at) -> LeadAccount:
    """Match the lead before routing and record it (one row per lead, replaced when it is routed again)."""
    return leads_match_accounts(leads=[lead], at=at)[lead.pk]


def leads_match_accounts(*, leads: list[Lead], at) -> dict[int, LeadAccount]:
    """Match each lead of a routing batch, and record the matches in one write; by lead id."""
    fields = [{name: getattr(lead, name) for name in ("email", "company", "phone", "country")} for lead in leads]
    matches = {lead.pk: lead_account(result) for lead, result in zip(leads, account_matches_for(fields), strict=True)}
    rows = [
        AccountMatch(
            lead=lead,
            account_id=matched.account.pk if matched.account else None,
            method=matched.method,
            confidence=matched.confidence,
            why=matched.why,
            candidates=matched.candidates,
            account_view=matched.view,
            matched_at=at,
        )
        for lead in leads
        for matched in (matches[lead.pk],)
    ]
    # One statement, insert or replace (a lead routed again after a correction is matched again).
    bulk_upsert(rows, unique_fields=["lead"], update_fields=MATCH_FIELDS)
    return matches


MATCH_FIELDS = ["account", "method", "confidence", "why", "candidates", "account_view", "matched_at"]


def recorded_account_view(lead: Lead) -> dict | None:
    """`account.*` as routing saw it for this lead (None when nothing matched, or before accounts existed)."""
    return AccountMatch.objects.filter(lead=lead).values_list("account_view", flat=True).first()


@dataclass(frozen=True)
class Choice:
    """Who gets the lead before the queue's own strategy is asked: `user` None means the strategy picks."""

    user: object | None
    how: str  # "account_owner", "sticky" or "queue"
    note: str  # why, in words, including why a rule's choice fell back to the queue


class Availability:
    """Why people cannot take a lead in a queue at one instant (`at`, the batch's now), from their memberships
    and schedules read once for everyone asked about (a routing batch asks about the same owners again and
    again)."""

    def __init__(self, users=(), *, at: dt.datetime | None = None):
        self.at = at or timezone.now()
        self._memberships: dict[int, list[tuple[int, bool]]] = {}
        self._schedules: dict[int, Schedule | None] = {}
        self.load(users)

    def load(self, users) -> None:
        """Read the memberships and schedules of those of `users` not read yet, in one batch (three queries)."""
        missing = {user.pk for user in users if user is not None} - self._memberships.keys()
        if not missing:
            return
        for user_id in missing:
            self._memberships[user_id] = []
        rows = QueueMembership.objects.filter(user_id__in=missing).values_list("user_id", "queue_id", "is_available")
        for user_id, queue_id, available in rows:
            self._memberships[user_id].append((queue_id, available))
        self._schedules.update(schedules_for(missing, at=self.at))

    def unavailable_because(self, user, queue_id: int) -> str:
        """Why this person cannot take a lead in the queue now, or "" when they can: inactive, or marked
        unavailable in this queue, or (not a member of it) unavailable in every queue they belong to, or away
        (time off), or out of their working hours."""
        if not user.is_active:
            return f"{user.get_username()} is inactive"
        self.load([user])
        memberships = self._memberships[user.pk]
        here = [available for queue, available in memberships if queue == queue_id]
        if here and not here[0]:
            return f"{user.get_username()} is marked unavailable in the queue"
        if not here and memberships and not any(available for _, available in memberships):
            return f"{user.get_username()} is marked unavailable in every queue"
        schedule = self._schedules.get(user.pk)
        why = schedule.why_not_in(self.at) if schedule is not None else ""
        if why == Why.AWAY:
            return f"{user.get_username()} is away (time off) {until_words(schedule, self.at, why)}"
        if why == Why.OUT_OF_HOURS:
            return f"{user.get_username()} is out of working hours {until_words(schedule, self.at, why)}"
        return ""


def account_owner_choice(*, account: Account | None, queue_id: int, availability: Availability) -> Choice:
    if account is None:
        return Choice(None, "queue", "no account matched, so the queue's strategy picked")
    owner = account.owner
    if owner is None:
        return Choice(None, "queue", f"{account.name} has no owner, so the queue's strategy picked")
    reason = availability.unavailable_because(owner, queue_id)
    if reason:
        return Choice(None, "queue", f"the owner of {account.name}: {reason}, so the queue's strategy picked")
    return Choice(
        owner, "account_owner", f"{owner.get_username()} owns {account.name.rstrip('.')}"
    )  # "Hooli Inc." ends the note once


def assignee_choice(
    *,
    assign_to: str,
    queue_id: int,
    account: Account | None,
    sticky: "Choice | None" = None,
    availability: Availability | None = None,
) -> Choice:
    """The rule's `then.assignee`: the account's owner, the person's sticky owner (default), or the queue."""
    if assign_to == AssignTo.ACCOUNT_OWNER:
        return account_owner_choice(account=account, queue_id=queue_id, availability=availability or Availability())
    if assign_to == AssignTo.QUEUE:
        return Choice(None, "queue", "the rule hands its leads to the queue's strategy")
    if sticky is not None:
        return sticky
    return Choice(None, "queue", "no open lead of the same person to follow, so the queue's strategy picked")
