"""Inbound dead letters: every post intake refuses (400, 413, 415) from a known source is kept, so a capture
system that starts sending something new loses nothing unseen (README: Rejected posts).

Kept per rejection: what was wrong, the payload's SHA-256 and size, and its first HANDOFF_REJECTED_EXCERPT_BYTES
with secret-looking values redacted; counted per source, day and reason (`RejectionDay`, what /metrics and the
anomaly report read). Rows are trimmed by beat to HANDOFF_REJECTED_POSTS_PER_SOURCE per source and
HANDOFF_REJECTED_POSTS_DAYS; the counts stay. Ops fix and replay a rejected lead from the console.
"""

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.capture.models import RejectedPost, RejectedPostStatus, RejectionReason
from routing.dispatch import Lane, routing_enqueue_on_commit
from routing.intake import IntakeStatus, leads_intake
from routing.jsonbounds import JSONInputError, loads_bounded
from routing.models import Lead, Source

REDACTED = "[redacted]"
# Words of a key whose value is a credential, never personal data a person needs to fix the lead. A key is
# split into its words (snake, kebab, camel case), so `userPassword`, `x-api-key` and `client_secret` match and
# `author`, `passport_country` and `compass` do not.
_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "token", "auth", "authorization", "credential", "credentials"}
    | {"apikey", "card", "cvv", "cvc", "ssn", "iban", "signature", "cookie", "session"}
)
_KEY_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_SECRET_ANYWHERE = re.compile(
    r"pass(?:word|wd)?|pwd|secret|token|auth|api[_-]?key|credential|card|cvv|cvc|ssn|iban|signature|cookie|session",
    re.IGNORECASE,
)
UNREDACTABLE = "(not kept: the body could not be read as JSON and names a credential-like field)"


def secret_key(key: str) -> bool:
    words = [word.lower() for word in _KEY_WORDS.findall(key)]
    return any(word in _SECRET_WORDS for word in words) or any(
        a == "api" and b == "key" for a, b in zip(words, words[1:], strict=False)
    )


@dataclasses.dataclass
class Rejection:
    """One refused post (or batch item), as the intake views saw it."""

    reason: str
    status_code: int
    errors: dict
    body: bytes | None = None  # the raw body, when it could be read
    item: Any = None  # a batch item, already parsed
    size: int | None = None
    batch: bool = False
    batch_index: int | None = None
    lead_id: str = ""
    schema_version: str = ""


def _redacted(value: Any) -> Any:
    # Bounded by intake's nesting limit (routing/jsonbounds.py), so the recursion is too.
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and secret_key(key) else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _readable(body: bytes) -> tuple[bool, Any]:
    """The body as data: JSON, or a form (415s are often one); (False, None) when it is neither."""
    try:
        return True, loads_bounded(body)
    except (JSONInputError, ValueError):
        pass
    text = body.decode("utf-8", "replace")
    if "=" in text and not text.lstrip().startswith(("{", "[")):
        try:
            return True, dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=1000))
        except ValueError:
            pass
    return False, None


def excerpt_of(body: bytes | None, item: Any) -> tuple[str, str, int, bool]:
    """(excerpt, sha256, size, truncated) of what was posted, credential-looking values redacted. A body that
    is neither JSON nor a form is kept as text only when no credential-like word appears in it anywhere (its
    values cannot be told apart from its keys), else not at all."""
    limit = settings.HANDOFF["REJECTED_EXCERPT_BYTES"]
    if body is None:
        body = json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        readable, parsed = True, item
    else:
        readable, parsed = _readable(body)
    digest, size = hashlib.sha256(body).hexdigest(), len(body)
    if readable:
        # Compact, as it most likely came: a post under the limit stays whole, so it can be fixed in place.
        text = json.dumps(_redacted(parsed), ensure_ascii=False, separators=(", ", ": "), default=str)
    else:
        text = body.decode("utf-8", "replace")
        decoded = text.encode("utf-8", "replace").decode("unicode_escape", "replace")
        if _SECRET_ANYWHERE.search(text) or _SECRET_ANYWHERE.search(decoded):
            return UNREDACTABLE, digest, size, False
    encoded = text.encode()
    truncated = len(encoded) > limit
    if truncated:
        text = encoded[:limit].decode("utf-8", "ignore")
    return _storable(text), digest, size, truncated


def _storable(value: Any) -> Any:
    """Text PostgreSQL can store (it refuses NUL in text and jsonb), errors as plain JSON."""
    if isinstance(value, str):
        return str(value).replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {_storable(str(key)): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


def reason_of(errors: dict) -> str:
    """Which kind of refusal a lead's field errors are."""
    if "schema_version" in errors:
        return RejectionReason.SCHEMA_VERSION
    if "non_field_errors" in errors and len(errors) == 1:
        return RejectionReason.NOT_AN_OBJECT
    if all(message.startswith("Unknown field") for messages in errors.values() for message in messages):
        return RejectionReason.UNKNOWN_FIELDS
    return RejectionReason.INVALID_FIELDS


def rejections_record(source: Source, rejections: list[Rejection], *, at: dt.datetime | None = None) -> None:
    """Keep these refusals and count them, in one transaction of their own (the request's answer is an error
    either way: nothing of the lead was stored)."""
    if not rejections:
        return
    at = at or timezone.now()
    rows = []
    for rejection in rejections:
        if rejection.body is None and rejection.item is None:  # a body too large is never read
            excerpt, digest, size, truncated = "", "", 0, False
        else:
            excerpt, digest, size, truncated = excerpt_of(rejection.body, rejection.item)
        rows.append(
            RejectedPost(
                source=source,
                received_at=at,
                batch=rejection.batch,
                batch_index=rejection.batch_index,
                status_code=rejection.status_code,
                reason=rejection.reason,
                errors=_storable(rejection.errors),
                lead_id=_storable(rejection.lead_id)[:128],
                schema_version=_storable(rejection.schema_version)[:32],
                payload_sha256=digest,
                size_bytes=rejection.size if rejection.size is not None else size,
                excerpt=excerpt,
                truncated=truncated,
            )
        )
    counts = Counter(row.reason for row in rows)
    with transaction.atomic():
        RejectedPost.objects.bulk_create(rows)
        _count(source.pk, at.astimezone(dt.UTC).date(), counts)


def _count(source_id: int, day: dt.date, counts: Counter) -> None:
    values = ", ".join(["(%s, %s, %s, %s)"] * len(counts))
    params = [value for reason, n in sorted(counts.items()) for value in (source_id, day, reason, n)]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO routing_rejectionday (source_id, day, reason, count) VALUES "
            + values
            + " ON CONFLICT (source_id, day, reason) DO UPDATE SET count = routing_rejectionday.count + EXCLUDED.count",
            params,
        )


def rejected_posts_trim(*, now: dt.datetime | None = None) -> int:
    """Drop rows beyond each source's newest HANDOFF_REJECTED_POSTS_PER_SOURCE and older than
    HANDOFF_REJECTED_POSTS_DAYS (the daily counts stay). Returns how many went."""
    now = now or timezone.now()
    keep = settings.HANDOFF["REJECTED_POSTS_PER_SOURCE"]
    oldest = now - dt.timedelta(days=settings.HANDOFF["REJECTED_POSTS_DAYS"])
    with connection.cursor() as cursor:
        cursor.execute(
            """
            DELETE FROM routing_rejectedpost r
            USING (
                SELECT id, row_number() OVER (PARTITION BY source_id ORDER BY received_at DESC, id DESC) AS n
                FROM routing_rejectedpost
            ) ranked
            WHERE r.id = ranked.id AND (ranked.n > %s OR r.received_at < %s)
            """,
            [keep, oldest],
        )
        return cursor.rowcount


class ReplayRefused(ValueError):
    """The corrected payload cannot be taken; `errors` says what to fix, field by field."""

    def __init__(self, errors: dict):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))


def _settle(post: RejectedPost, *, status: str, by, lead=None) -> None:
    post.status, post.settled_at, post.settled_by, post.replayed_lead = status, timezone.now(), by, lead
    post.save(update_fields=["status", "settled_at", "settled_by", "replayed_lead"])


def rejected_post_replay(*, post_id: int, payload_text: str, by) -> tuple[RejectedPost, int, bool]:
    """Take a corrected payload for a rejected post as its source would have sent it: validated under the
    source's capture schema, stored, routed on the live lane. Returns the post, the lead's id and whether the
    lead was new (False: the source had sent it again meanwhile). Raises ReplayRefused with what to fix."""
    try:
        payload = loads_bounded(payload_text.encode())
    except (JSONInputError, ValueError) as exc:
        raise ReplayRefused({"payload": [f"Not readable JSON: {exc}"]}) from None
    if REDACTED in json.dumps(payload, ensure_ascii=False):
        raise ReplayRefused({"payload": [f"Fill in or remove the {REDACTED} values first: they were never kept."]})
    with transaction.atomic():
        post = RejectedPost.objects.select_for_update().select_related("source").get(pk=post_id)
        if post.status != RejectedPostStatus.OPEN:
            raise ReplayRefused({"payload": [f"Already {post.get_status_display().lower()}; nothing was replayed."]})
        (result,), created = leads_intake(source=post.source, payloads=[payload])
        if result.status == IntakeStatus.INVALID:
            raise ReplayRefused(result.errors)
        if result.status == IntakeStatus.DUPLICATE and result.lead_id != post.lead_id:
            raise ReplayRefused(
                {
                    "lead_id": [
                        f"{result.lead_id!r} is another lead this source sent (#{result.id}); keep this post's "
                        f"lead_id{f' {post.lead_id!r}' if post.lead_id else ''} or give a new one."
                    ]
                }
            )
        lead = Lead.objects.get(pk=result.id)
        _settle(post, status=RejectedPostStatus.REPLAYED, by=by, lead=lead)
        audit_record(
            action=AuditAction.INTAKE_REPLAYED,
            actor=by,
            lead=lead,
            outcome=result.status,
            data={"rejected_post": post.pk, "source": post.source.name, "reason": post.reason},
        )
        routing_enqueue_on_commit(created, lane=Lane.LIVE)
    return post, result.id, result.status == IntakeStatus.ACCEPTED


def rejected_post_dismiss(*, post_id: int, by, note: str = "") -> RejectedPost:
    """Set a rejected post aside (spam, a test, sent again by its source already), saying why."""
    with transaction.atomic():
        post = RejectedPost.objects.select_for_update().select_related("source").get(pk=post_id)
        if post.status != RejectedPostStatus.OPEN:
            raise ReplayRefused({"note": [f"Already {post.get_status_display().lower()}."]})
        _settle(post, status=RejectedPostStatus.DISMISSED, by=by)
        audit_record(
            action=AuditAction.INTAKE_DISMISSED,
            actor=by,
            outcome="dismissed",
            data={"rejected_post": post.pk, "source": post.source.name, "reason": post.reason, "note": note[:500]},
        )
    return post
