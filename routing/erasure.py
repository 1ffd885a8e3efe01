"""Erasure and retention (issue 19): a person's personal values leave every row that keeps them, the audit trail
and the history included, while those rows stay (their foreign keys and the trail's order need them).

The writing is done by the database function `handoff_erase` (audit/migrations/0010_erasure_function.py): the
application may not UPDATE the append-only tables, and that function is the one way through. It replaces each
value with `erased:<hash>`; this module finds the leads, calls it and records the erasure event, which names
the email's hash, never the email.

Retention (HANDOFF["RETENTION_LEAD_DAYS"], ["RETENTION_PAYLOAD_DAYS"]): leads received before the lead cutoff
are erased the same way; delivered events' payloads, delivery attempts' errors, enrichment receipts' answers
and rejected posts older than the payload cutoff are emptied (rejected posts deleted)."""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record
from routing.accounts.models import LeadIdentity
from routing.accounts.normalize import email_key
from routing.capture.models import RejectedPost
from routing.integrations.models import DeliveryAttempt, EnrichmentReceipt, OutboxEvent, OutboxStatus
from routing.models import Lead

ERASED_PREFIX = "erased:"
# Leads per call of the database function during retention: one statement per table for each batch.
RETENTION_BATCH = 500
PERSONAL_FIELDS = ("email", "phone", "first_name", "last_name")


class ErasureError(ValueError):
    pass


@dataclass(frozen=True)
class Erasure:
    lead_ids: list[int]
    rows: dict[str, int]  # table -> rows changed (or that would change, on a dry run)
    dry_run: bool
    event: AuditEvent | None = None

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@dataclass
class Retention:
    leads_erased: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def erasure_salt() -> str:
    """Kept out of the hashes' reach without the secret key: an erased value cannot be found by hashing
    guesses, yet the same value always hashes alike (so a later request for it finds the erased leads)."""
    return hashlib.sha256(b"handoff.erasure:" + settings.SECRET_KEY.encode()).hexdigest()


def erased_token(value: str) -> str:
    """What `handoff_erased` writes in place of `value` (the same hash, computed here)."""
    digest = hashlib.sha256((erasure_salt() + value).encode()).hexdigest()
    return f"{ERASED_PREFIX}{digest[:24]}"


def normalised_email(email: str) -> str:
    """As intake stores it: trimmed and lower-case."""
    email = (email or "").strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise ErasureError(f"{email!r} is not an email address.")
    return email


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone or "" if ch.isdigit())


def person_lead_ids(*, email: str, phone: str | None = None) -> list[int]:
    """The leads of a person: those whose email is (or was, in their history) the address, whose identity key
    is the address's, and, given a phone, whose phone has the same digits; and those an earlier erasure of the
    same values left behind (so a second request finds them, and changes nothing)."""
    email = normalised_email(email)
    key = email_key(email)
    by_email = Q(email__in=[email, erased_token(email)])
    if key:
        by_email |= Q(pk__in=LeadIdentity.objects.filter(email_key__in=[key, erased_token(key)]).values("lead_id"))
    ids = set(Lead.objects.filter(by_email).values_list("pk", flat=True))
    ids |= set(Lead.history.filter(email__in=[email, erased_token(email)]).values_list("id", flat=True))
    digits = _digits(phone)
    if phone and len(digits) < 4:
        raise ErasureError(f"{phone!r} is not a phone number (fewer than 4 digits).")
    if digits:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM routing_lead WHERE phone = %s OR (phone NOT LIKE 'erased:%%' "
                "AND regexp_replace(phone, '[^0-9]', '', 'g') = %s) UNION SELECT id FROM routing_historicallead "
                "WHERE phone NOT LIKE 'erased:%%' AND regexp_replace(phone, '[^0-9]', '', 'g') = %s",
                [erased_token(phone.strip()), digits, digits],
            )
            ids |= {row[0] for row in cursor.fetchall()}
    return sorted(ids)


def leads_erase_rows(*, lead_ids: list[int], dry_run: bool = False) -> dict[str, int]:
    """Run `handoff_erase` on the leads: rows changed (or that would change) per table. Call it inside the
    transaction that records the erasure."""
    if connection.vendor != "postgresql":
        raise ErasureError("Erasure needs PostgreSQL (the database function of audit migration 0010).")
    if not lead_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT handoff_erase(%s::bigint[], %s, %s)", [list(lead_ids), erasure_salt(), dry_run])
        counts = cursor.fetchone()[0]
    return dict(sorted(json.loads(counts).items()))  # Django's connection leaves jsonb as text


def _rejected_posts_naming(email: str, phone: str | None):
    naming = Q(excerpt__icontains=email) | Q(lead_id__iexact=email)
    if phone and phone.strip():
        naming |= Q(excerpt__contains=phone.strip())
    return RejectedPost.objects.filter(naming)


def person_erase(*, email: str, phone: str | None = None, by, dry_run: bool = False) -> Erasure:
    """Erase a person's personal values everywhere, and record one person.erased event (who, when, rows per
    table, the email's hash). A dry run counts and writes nothing. Running it again changes no row (and records
    that the request was honoured again, with zero counts)."""
    email = normalised_email(email)
    with transaction.atomic():
        lead_ids = person_lead_ids(email=email, phone=phone)
        if lead_ids and not dry_run:
            # One erasure of these leads at a time: a second request waits, then finds nothing left to change.
            list(Lead.objects.select_for_update().filter(pk__in=lead_ids).values_list("pk", flat=True))
        rows = leads_erase_rows(lead_ids=lead_ids, dry_run=dry_run)
        # Posts intake refused are kept apart from any lead (a person may only ever have sent refused ones):
        # those that name the person go, whether or not a lead does.
        refused = _rejected_posts_naming(email, phone)
        gone = refused.count() if dry_run else refused.delete()[0]
        if gone:
            rows["routing_rejectedpost (deleted)"] = gone
        if dry_run:
            return Erasure(lead_ids=lead_ids, rows=rows, dry_run=True)
        event = audit_record(
            action=AuditAction.PERSON_ERASED,
            actor=by,
            outcome="erased",
            data={
                "reason": "request",
                "email_hash": erased_token(email),
                "phone_hash": erased_token(phone.strip()) if phone else None,
                "lead_ids": lead_ids,
                "rows": rows,
            },
        )
    return Erasure(lead_ids=lead_ids, rows=rows, dry_run=False, event=event)


def _not_erased(name: str) -> Q:
    return Q(**{f"{name}__gt": ""}) & ~Q(**{f"{name}__startswith": ERASED_PREFIX})


def leads_past_retention(*, cutoff: dt.datetime):
    """Leads received before the cutoff that still hold a personal value."""
    holding = Q()
    for name in PERSONAL_FIELDS:
        holding |= _not_erased(name)
    return Lead.objects.filter(holding, received_at__lt=cutoff).order_by("pk")


def payloads_purge(*, cutoff: dt.datetime) -> dict[str, int]:
    """Empty what deliveries, enrichment and intake kept of leads' data before the cutoff. Delivered events
    only: a pending or dead-lettered one still needs its payload to be sent or replayed."""
    return {
        "routing_outboxevent": OutboxEvent.objects.filter(status=OutboxStatus.DELIVERED, delivered_at__lt=cutoff)
        .filter(~Q(payload={}) | ~Q(confirmation={}) | ~Q(last_error=""))
        .update(payload={}, confirmation={}, last_error=""),
        "routing_deliveryattempt": DeliveryAttempt.objects.filter(at__lt=cutoff).exclude(error="").update(error=""),
        "routing_enrichmentreceipt": EnrichmentReceipt.objects.filter(at__lt=cutoff)
        .filter(~Q(invalid={}) | ~Q(error=""))
        .update(invalid={}, error=""),
        "routing_rejectedpost": RejectedPost.objects.filter(received_at__lt=cutoff).delete()[0],
    }


def retention_apply(*, now: dt.datetime | None = None) -> Retention:
    """The daily retention run: payloads past HANDOFF["RETENTION_PAYLOAD_DAYS"] emptied, leads past
    HANDOFF["RETENTION_LEAD_DAYS"] erased (0 keeps them), one person.erased event (by the engine) per batch."""
    now = now or timezone.now()
    payload_days, lead_days = settings.HANDOFF["RETENTION_PAYLOAD_DAYS"], settings.HANDOFF["RETENTION_LEAD_DAYS"]
    result = Retention()
    if payload_days > 0:
        with transaction.atomic():
            result.rows.update(payloads_purge(cutoff=now - dt.timedelta(days=payload_days)))
    if lead_days <= 0:
        return result
    cutoff = now - dt.timedelta(days=lead_days)
    after = 0  # by id, so a lead the function could not change is not picked again
    while batch := list(
        leads_past_retention(cutoff=cutoff).filter(pk__gt=after).values_list("pk", flat=True)[:RETENTION_BATCH]
    ):
        after = batch[-1]
        with transaction.atomic():
            rows = leads_erase_rows(lead_ids=batch)
            audit_record(
                action=AuditAction.PERSON_ERASED,
                outcome="retention",
                data={"reason": "retention", "received_before": cutoff, "lead_ids": batch, "rows": rows},
                at=now,
            )
        result.leads_erased += len(batch)
        for table, count in rows.items():
            result.rows[table] = result.rows.get(table, 0) + count
    return result
