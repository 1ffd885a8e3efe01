"""Change history of the configuration around routing (delivery targets, enrichment providers, capture
sources, queues and their memberships): who changed which fields when, field by field, and restoring an
object to an earlier version.

The history rows are django-simple-history's. Secrets are excluded from those tables (the models'
`excluded_fields`), so they can be neither shown nor restored: a restore keeps the current secret. Only
fields a person edits are restored, never state the system keeps (a source's token prefix, counters).
A queue's restore goes through routing/changes/queues.py, which brings its memberships back as they were
and stages the change when the queue is governed."""

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import OuterRef, Subquery

from audit.models import AuditAction
from audit.services import audit_record
from routing.models import DeliveryTarget, EnrichmentProvider, Queue, QueueMembership, Source


class ChangeKind(models.TextChoices):
    TARGET = "target", "Delivery target"
    PROVIDER = "provider", "Enrichment provider"
    SOURCE = "source", "Capture source"
    QUEUE = "queue", "Queue"
    MEMBERSHIP = "membership", "Queue membership"


KIND_MODELS: dict[str, type[models.Model]] = {
    ChangeKind.TARGET: DeliveryTarget,
    ChangeKind.PROVIDER: EnrichmentProvider,
    ChangeKind.SOURCE: Source,
    ChangeKind.QUEUE: Queue,
    ChangeKind.MEMBERSHIP: QueueMembership,
}
# What can be restored from the console (a membership comes back with its queue).
RESTORABLE_KINDS = (ChangeKind.TARGET, ChangeKind.PROVIDER, ChangeKind.SOURCE, ChangeKind.QUEUE)
HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}
DEFAULT_LIMIT = 100


class RestoreError(ValueError):
    """A restore that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class FieldChange:
    name: str
    label: str
    old: str
    new: str


@dataclass
class Change:
    kind: str
    object_id: int
    object_label: str
    history_id: int
    at: dt.datetime
    person: str
    change_type: str
    reason: str
    fields: list[FieldChange] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Unique across kinds (each kind's history table numbers its rows from 1)."""
        return f"{self.kind}:{self.history_id}"

    @property
    def kind_label(self) -> str:
        return ChangeKind(self.kind).label


def may_view_changes(user) -> bool:
    """Ops staff, rule owners and admins: everyone with the console (checked by the views' mixin)."""
    return bool(user and user.is_authenticated)


def may_restore(user) -> bool:
    return bool(user and user.is_authenticated and user.is_superuser)


# Switches a restore never turns back: whether a source's token works (a revoked token must stay revoked), a
# target or provider is in use, or a queue is governed are decisions of their own, not settings to undo.
NEVER_RESTORED = frozenset({"is_active", "governed", "token_prefix"})


def restorable_fields(model: type[models.Model]) -> list[models.Field]:
    """Fields a restore writes back: those in the history that a person edits (not secrets, which are not in
    the history, not what the system keeps, such as a membership's pass, and not NEVER_RESTORED)."""
    tracked = {f.name for f in model.history.model.tracked_fields}
    return [
        f
        for f in model._meta.concrete_fields
        if f.name in tracked and f.editable and not f.primary_key and f.name not in NEVER_RESTORED
    ]


def change_list(
    *, kind: str | None = None, object_id: int | None = None, queue_id: int | None = None, limit: int = DEFAULT_LIMIT
) -> list[Change]:
    """The newest changes, newest first, across kinds (or of one kind, one object, or one queue with its
    memberships), each with its fields old → new. Two queries per kind plus one per kind of related label."""
    kinds = [kind] if kind else list(KIND_MODELS)
    if queue_id is not None:
        kinds = [ChangeKind.QUEUE, ChangeKind.MEMBERSHIP]
    labels = ValueLabels()
    changes = []
    for each in kinds:
        history = KIND_MODELS[each].history.all()
        if queue_id is not None:
            history = history.filter(id=queue_id) if each == ChangeKind.QUEUE else history.filter(queue_id=queue_id)
        elif object_id is not None:
            history = history.filter(id=object_id)
        changes.extend(_changes(each, history, limit, labels))
    changes.sort(key=lambda c: (c.at, c.history_id), reverse=True)
    return changes[:limit]


def _changes(kind: str, history, limit: int, labels: "ValueLabels") -> list[Change]:
    model = KIND_MODELS[kind].history.model
    previous = model.objects.filter(id=OuterRef("id"), history_date__lt=OuterRef("history_date")).order_by(
        "-history_date", "-history_id"
    )
    rows = list(
        history.select_related("history_user")
        .annotate(previous_id=Subquery(previous.values("history_id")[:1]))
        .order_by("-history_date", "-history_id")[:limit]
    )
    before = model.objects.in_bulk([row.previous_id for row in rows if row.previous_id])
    fields = [f for f in KIND_MODELS[kind]._meta.concrete_fields if f.name in {t.name for t in model.tracked_fields}]
    result = []
    for row in rows:
        prior = before.get(row.previous_id)
        changed = []
        for f in fields:
            if f.primary_key:
                continue
            old = getattr(prior, f.attname) if prior is not None else None
            new = getattr(row, f.attname)
            if prior is not None and old == new:
                continue
            if prior is None and new in (None, "", [], {}):
                continue  # a new object: show what it was given
            changed.append(FieldChange(f.name, str(f.verbose_name), labels.show(f, old), labels.show(f, new)))
        result.append(
            Change(
                kind=kind,
                object_id=row.id,
                object_label=_object_label(kind, row, labels),
                history_id=row.history_id,
                at=row.history_date,
                person=row.history_user.get_username() if row.history_user_id else "system",
                change_type=HISTORY_TYPES.get(row.history_type, row.history_type),
                reason=row.history_change_reason or "",
                fields=changed,
            )
        )
    return result


def _object_label(kind: str, row, labels: "ValueLabels") -> str:
    if kind == ChangeKind.MEMBERSHIP:
        meta = QueueMembership._meta
        person = labels.show(meta.get_field("user"), row.user_id)
        return f"{person} in {labels.show(meta.get_field('queue'), row.queue_id)}"
    return row.name


def url_shown(url: str) -> str:
    """A URL as the history shows it to everyone with the console: its scheme and host, and a fingerprint of
    the rest. Webhook URLs often are the secret (in the path, the query or a user:password), so the rest is
    never shown; the fingerprint still tells two versions apart. The admin shows admins the whole URL."""
    fingerprint = hashlib.sha256(url.encode()).hexdigest()[:8]
    try:
        parts = urlsplit(url)
        host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    except ValueError:
        host = None
    if not host:
        return f"(a URL, #{fingerprint})"
    return f"{parts.scheme}://{host}/… (#{fingerprint})"


class ValueLabels:
    """Readable values: related objects by name (one query per related object, cached), choices by label."""

    def __init__(self):
        self.cache: dict[tuple[type, object], str] = {}

    def show(self, f: models.Field, value) -> str:
        if value is None or value == "":
            return "—"
        if f.is_relation:
            key = (f.related_model, value)
            if key not in self.cache:
                related = f.related_model.objects.filter(pk=value).first()
                if related is None:
                    label = f"#{value} (deleted)"
                elif isinstance(related, get_user_model()):
                    label = related.get_username()
                else:
                    label = str(related)
                self.cache[key] = label
            return self.cache[key]
        if isinstance(f, models.URLField):
            return url_shown(str(value))
        if f.choices:
            return str(dict(f.flatchoices).get(value, value))
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S %Z")
        return str(value)


def version_get(*, kind: str, history_id: int):
    """One historical row of an object of `kind` (RestoreError if there is none)."""
    if kind not in KIND_MODELS:
        raise RestoreError(f"No kind {kind!r}; use one of {', '.join(KIND_MODELS)}.")
    record = KIND_MODELS[kind].history.filter(history_id=history_id).first()
    if record is None:
        raise RestoreError(f"There is no version #{history_id} of a {ChangeKind(kind).label.lower()}.")
    return record


def config_restore(*, kind: str, history_id: int, by):
    """Put a target, provider or source back as it was in version `history_id` (a queue: use
    changes.queues.queue_restore, which also restores memberships). Secrets stay as they are now. Written with
    its CONFIG_RESTORED audit event in one transaction; the history gets a new row by `by`. Returns the object."""
    if not may_restore(by):
        raise PermissionDenied("Only admins restore an earlier configuration.")
    if kind not in (ChangeKind.TARGET, ChangeKind.PROVIDER, ChangeKind.SOURCE):
        raise RestoreError("Restore a queue with its memberships (queue restore), not on its own.")
    record = version_get(kind=kind, history_id=history_id)
    model = KIND_MODELS[kind]
    with transaction.atomic():
        live = model.objects.select_for_update().filter(pk=record.id).first()
        if live is None:
            raise RestoreError(f"{record.name} has been deleted; there is nothing to restore it onto.")
        changed = restore_fields(live, record)
        if not changed:
            raise RestoreError(f"{live} already has the settings of that version; nothing to restore.")
        validate_restored(live)
        live._history_user = by
        live._change_reason = restore_reason(record)
        try:
            with transaction.atomic():
                live.save()
        except IntegrityError as exc:
            raise RestoreError(f"That version cannot be restored: {exc}") from None
        audit_record(
            action=AuditAction.CONFIG_RESTORED,
            actor=by,
            outcome="restored",
            data=restore_audit_data(kind, live, record, changed),
        )
    return live


def restore_fields(live: models.Model, record) -> list[str]:
    """Copy the version's restorable values onto `live`; the names of the fields that differed. A reference
    to an object deleted since is left as it is now."""
    changed = []
    for f in restorable_fields(type(live)):
        value = getattr(record, f.attname)
        if f.is_relation and value is not None and not f.related_model.objects.filter(pk=value).exists():
            continue
        if getattr(live, f.attname) != value:
            setattr(live, f.attname, value)
            changed.append(f.name)
    return changed


def validate_restored(live: models.Model) -> None:
    try:
        live.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
        raise RestoreError(f"That version cannot be restored as things stand now: {problems}") from None


def restore_reason(record) -> str:
    return f"Restored version #{record.history_id} of {record.history_date:%Y-%m-%d %H:%M:%S} UTC"


def restore_audit_data(kind: str, live, record, changed: list[str], **more) -> dict:
    return {
        "kind": kind,
        "object_id": live.pk,
        "object": str(live),
        "restored_from": record.history_id,
        "restored_from_at": record.history_date,
        "fields": changed,
        **more,
    }
