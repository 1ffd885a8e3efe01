"""Identity: which leads are the same person, and what follows from it.

Two leads are the same person when their normalised emails are equal (case, `+tags` and Gmail's dots do not
count: routing/accounts/normalize.py `email_key`), or when both come from sources that share lead ids
(`Source.shares_lead_ids`) with the same `lead_id`. Keys are recorded when a lead is routed (LeadIdentity), so
a lead is linked to every earlier lead with an equal key, and later leads find it the same way.

- Sticky ownership: when a rule decides without naming an assignee, a person's new lead goes to whoever holds
  their open (assigned) lead, assigned within `HANDOFF["STICKY_OWNERSHIP_DAYS"]` (30), if that person is active
  and available; a rule that says `"assignee": "queue"` or `"account_owner"` decides otherwise.
- One exception per cause: a lead whose person already has an unresolved exception item for the same reason
  joins that item instead of opening a second one.
"""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber

from exceptions.models import UNRESOLVED, ExceptionItem
from routing.accounts.leads import Availability, Choice, assignee_choice
from routing.accounts.models import LeadIdentity
from routing.accounts.normalize import email_key
from routing.bulk import bulk_upsert
from routing.models import AssignTo, Lead, LeadStatus


def identity_keys(lead: Lead) -> tuple[str, str]:
    """(email key, shared lead id) of a lead; either may be ""."""
    shared = lead.lead_id if lead.origin.shares_lead_ids else ""
    return email_key(lead.email)[:254], shared


def same_person(email: str = "", shared_id: str = "") -> Q | None:
    """The filter on leads for one person's keys; None when the lead has no key at all."""
    query = Q()
    if email:
        query |= Q(identity__email_key=email)
    if shared_id:
        query |= Q(identity__shared_id=shared_id)
    return query or None


def person_leads(lead: Lead):
    """The other leads of the lead's person (recorded when each was routed), newest first."""
    query = same_person(*identity_keys(lead))
    if query is None:
        return Lead.objects.none()
    return Lead.objects.filter(query).exclude(pk=lead.pk).distinct().order_by("-received_at", "-id")


@dataclass(frozen=True)
class Identity:
    email_key: str
    shared_id: str
    others: list  # the person's other leads, newest first (at most OTHERS_KEPT)

    @property
    def audit(self) -> dict:
        return {
            "email_key": self.email_key or None,
            "shared_id": self.shared_id or None,
            "same_person": [lead.pk for lead in self.others],
        }


OTHERS_KEPT = 20


@dataclass(frozen=True)
class OtherLead:
    """What identity reads of a person's earlier lead (the audit's id, sticky ownership): a batch may read
    thousands, so plain rows rather than model instances."""

    pk: int
    lead_id: str
    status: str
    assignee_id: int | None
    assigned_at: dt.datetime | None
    received_at: dt.datetime
    assignee: object | None  # the User, shared between the leads of one assignee


def _other_leads(ids) -> dict[int, OtherLead]:
    """The leads by id, with their assignees read once each."""
    columns = ("id", "lead_id", "status", "assignee_id", "assigned_at", "received_at")
    if connection.vendor == "postgresql":  # one array parameter, not thousands of placeholders to quote
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(columns)} FROM routing_lead WHERE id = ANY(%s)", [sorted(ids)])
            rows = cursor.fetchall()
    else:
        rows = list(Lead.objects.filter(pk__in=ids).values_list(*columns))
    users = get_user_model().objects.in_bulk({row[3] for row in rows if row[3]})
    return {row[0]: OtherLead(*row, assignee=users.get(row[3])) for row in rows}


def lead_link_identity(*, lead: Lead, at) -> Identity:
    """Record the lead's identity keys (replacing them when it is routed again) and find its person's other
    leads."""
    return leads_link_identities(leads=[lead], at=at)[lead.pk]


def one_lead_per_person(leads: list[Lead]) -> tuple[list[Lead], list[Lead]]:
    """Split a batch (in order) into the first lead of each person and the rest."""
    seen: set[tuple[str, str]] = set()
    first, rest = [], []
    for lead in leads:
        email, shared = identity_keys(lead)
        keys = {("email", email)} if email else set()
        if shared:
            keys.add(("shared", shared))
        (rest if keys & seen else first).append(lead)
        seen |= keys
    return first, rest


def _newest_leads_of(field: str, values: set[str]) -> list[tuple[str, int]]:
    """(key, lead id) of the OTHERS_KEPT + 1 newest leads recorded under each key: a few index entries per key
    however many leads a person has sent (a window over all of them grew with every lead routed)."""
    if not values:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT key, newest.lead_id FROM unnest(%s::text[]) AS key CROSS JOIN LATERAL ("
                # `<> ''` lets the planner use the partial index (it cannot tell a parameter is never '').
                f"SELECT lead_id FROM routing_leadidentity WHERE {field} = key AND {field} <> '' "
                f"ORDER BY lead_id DESC LIMIT %s"
                f") AS newest",
                [sorted(values), OTHERS_KEPT + 1],
            )
            return cursor.fetchall()
    newest = Window(RowNumber(), partition_by=F(field), order_by=F("lead_id").desc())
    return list(
        LeadIdentity.objects.filter(**{f"{field}__in": values})
        .annotate(rank=newest)
        .filter(rank__lte=OTHERS_KEPT + 1)
        .values_list(field, "lead_id")
    )


def leads_link_identities(*, leads: list[Lead], at) -> dict[int, Identity]:
    """`lead_link_identity` for a routing batch whose people the caller has locked (`people_lock`), by lead id:
    one read of the people's recorded leads (at most OTHERS_KEPT + 1 per key, the latest to arrive) and one write of the
    batch's keys. A lead also sees the leads of its person earlier in the batch (routing.services.leads_route
    routes such a lead in a later batch anyway, so that it also sees their owner)."""
    keys = {lead.pk: identity_keys(lead) for lead in leads}
    by_key: dict[tuple[str, str], list[int]] = {}
    for field, position in (("email_key", 0), ("shared_id", 1)):
        wanted = {key[position] for key in keys.values() if key[position]}
        for value, lead_id in _newest_leads_of(field, wanted):
            by_key.setdefault((field, value), []).append(lead_id)
    wanted_leads = {lead_id for ids in by_key.values() for lead_id in ids}
    # What the identity is read for (the audit's ids, sticky ownership): no more, as a batch may load thousands.
    known = _other_leads(wanted_leads)
    identities = {}
    rows = []
    earlier: dict[tuple[str, str], list[Lead]] = {}  # this batch's leads so far by key, in id order
    for lead in sorted(leads, key=lambda lead: lead.pk):
        email, shared = keys[lead.pk]
        person = [key for key in (("email_key", email), ("shared_id", shared)) if key[1]]
        ids = {i for key in person for i in by_key.get(key, ())} - {lead.pk}
        in_batch = sorted({o.pk: o for key in person for o in earlier.get(key, ())}.values(), key=lambda o: -o.pk)
        recorded = sorted(
            (known[i] for i in ids if i in known and i not in keys), key=lambda o: (o.received_at, o.pk), reverse=True
        )
        others = [*in_batch, *recorded][:OTHERS_KEPT]
        identities[lead.pk] = Identity(email, shared, others)
        for key in person:
            earlier.setdefault(key, []).append(lead)
        # Known: the person sent a lead before this one (a lead routed again later also sees their newer leads).
        known_before = bool(in_batch) or any(i < lead.pk for i in ids)
        rows.append(LeadIdentity(lead=lead, email_key=email, shared_id=shared, known_person=known_before, linked_at=at))
    bulk_upsert(rows, unique_fields=["lead"], update_fields=["email_key", "shared_id", "known_person", "linked_at"])
    return identities


def people_lock(leads: list[Lead], *, wait: bool) -> tuple[list[Lead], list[Lead]]:
    """Routing of one person's leads takes turns until commit (a transaction-scoped advisory lock per key,
    taken in lock-id order so two batches never wait in a circle): the second lead sees the first's identity,
    assignment and exception item, so concurrent workers neither split a person nor open two items.

    Returns (the leads whose people are now locked, the leads left out). With `wait`, every lock is waited
    for and nobody is left out. Without, a lead whose person another transaction is routing is left out, to
    be routed after (a batch would otherwise wait for the whole of another batch that shares one person with
    it). Only PostgreSQL has the locks; elsewhere (the SQLite demo) one worker routes at a time anyway."""
    keyed = {lead.pk: [f"person:{key}" for key in identity_keys(lead) if key] for lead in leads}
    keys = sorted({key for lead_keys in keyed.values() for key in lead_keys})
    if not keys or connection.vendor != "postgresql":
        return leads, []
    # One round trip: the lock ids sorted in a subquery, locked in that order by the outer scan.
    ordered = (
        "FROM (SELECT DISTINCT key, hashtextextended(key, 13) AS lock_id FROM unnest(%s::text[]) AS key "
        "ORDER BY lock_id) AS people"
    )
    with connection.cursor() as cursor:
        if wait:
            cursor.execute(f"SELECT count(pg_advisory_xact_lock(lock_id)) {ordered}", [keys])
            return leads, []
        cursor.execute(f"SELECT key, pg_try_advisory_xact_lock(lock_id) {ordered}", [keys])
        busy = {key for key, locked in cursor.fetchall() if not locked}
    if not busy:
        return leads, []
    return (
        [lead for lead in leads if not busy.intersection(keyed[lead.pk])],
        [lead for lead in leads if busy.intersection(keyed[lead.pk])],
    )


def sticky_choice(*, identity: Identity, queue_id: int, now: dt.datetime, availability: Availability) -> Choice | None:
    """Whoever holds the person's most recently assigned open lead, within the window; None when nobody does
    (or the window is 0). An owner who cannot take it now, or whose lead is older than the window, gives a
    queue choice saying why."""
    days = settings.HANDOFF["STICKY_OWNERSHIP_DAYS"]
    if days <= 0:
        return None
    since = now - dt.timedelta(days=days)
    open_leads = [
        other
        for other in identity.others
        if other.status == LeadStatus.ASSIGNED and other.assignee_id and other.assigned_at
    ]
    if not open_leads:
        return None
    held = max(open_leads, key=lambda other: (other.assigned_at, other.pk))
    if held.assigned_at < since:
        age = (now - held.assigned_at).days
        return Choice(
            None,
            "queue",
            f"not sticky: the person's open lead {held.lead_id} is {held.assignee.get_username()}'s, but it was"
            f" assigned {age} days ago, past the {days}-day window",
        )
    reason = availability.unavailable_because(held.assignee, queue_id)
    name = held.assignee.get_username()
    if reason:
        return Choice(None, "queue", f"the person's open lead {held.lead_id} is {name}'s, but {reason}")
    return Choice(held.assignee, "sticky", f"sticky: the same person's open lead {held.lead_id} is {name}'s")


def people_open_items(wanted: list[tuple[Lead, str]]) -> dict[int, ExceptionItem]:
    """For each (lead, reason) of a batch: the oldest unresolved item for that reason on another lead of the
    same person, by lead id (leads whose person has none are left out). One query per kind of key."""
    keyed = [(lead, reason, *identity_keys(lead)) for lead, reason in wanted]
    reasons = {reason for _, reason, _, _ in keyed}
    found: list[tuple[str, str, ExceptionItem]] = []  # (field, the person's key, item)
    for field, position in (("email_key", 2), ("shared_id", 3)):
        values = {entry[position] for entry in keyed if entry[position]}
        if not values:
            continue
        items = ExceptionItem.objects.filter(UNRESOLVED, reason__in=reasons, **{f"lead__identity__{field}__in": values})
        for item in items.select_related("queue", "lead", "lead__identity"):
            found.append((field, getattr(item.lead.identity, field), item))
    held = {}
    for lead, reason, email, shared in keyed:
        theirs = [
            item
            for field, key, item in found
            if item.reason == reason
            and item.lead_id != lead.pk
            and ((field == "email_key" and key == email) or (field == "shared_id" and key == shared))
        ]
        if theirs:
            held[lead.pk] = min(theirs, key=lambda item: (item.opened_at, item.pk))
    return held


def routing_choice(
    *,
    assign_to: str,
    queue_id: int,
    account,
    identity: Identity,
    now: dt.datetime,
    availability: Availability | None = None,
) -> Choice:
    """Who gets a lead the deciding rule sends to `queue_id`: the account's owner, the sticky owner, or the
    queue's strategy (Choice.user None), with the reason. `availability`: shared by a batch's leads."""
    availability = availability or Availability(at=now)
    sticky = (
        sticky_choice(identity=identity, queue_id=queue_id, now=now, availability=availability)
        if assign_to == AssignTo.DEFAULT
        else None
    )
    return assignee_choice(
        assign_to=assign_to, queue_id=queue_id, account=account, sticky=sticky, availability=availability
    )


def sample_identity(fields: dict) -> Identity:
    """The person of a pasted lead (routing preview): the routed leads with its email."""
    key = email_key(fields.get("email"))[:254]
    others = []
    if key:
        others = list(
            Lead.objects.filter(identity__email_key=key)
            .select_related("assignee", "origin")
            .order_by("-received_at", "-id")[:OTHERS_KEPT]
        )
    return Identity(key, "", others)
