"""`rules_import` / `rules_export`: owners, queues and rules as one document (README: Rules file)."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from audit.models import AuditAction
from audit.services import audit_record
from routing.availability.services import availability_of_member, availability_sync
from routing.models import DistributionPeriod, EveryoneAway, Queue, QueueMembership, ReturnPolicy, Rule, RuleStage
from routing.rules.changes import RELATED, ActorRequired, RuleChange, actor_problems, rule_changes, rule_changes_apply
from routing.rules.contents import as_file, content_of, difference
from routing.rules.document import RulesFileError, check_document

User = get_user_model()


@dataclass
class RulesImport:
    """What an import did (or, dry run, would do): the entries read, and what changed."""

    owners: int
    queues: int
    rules: int
    owners_changed: list[str] = field(default_factory=list)
    queues_changed: list[str] = field(default_factory=list)
    rule_changes: list[RuleChange] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # promotions, drafts saved, backup owners changed
    # Dry run: the import would be refused for want of a person to act as, or because of who it is.
    needs_actor: bool = False
    refused: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def rules_changed(self) -> list[RuleChange]:
        return [change for change in self.rule_changes if change.changed]

    @property
    def changed(self) -> bool:
        return bool(self.owners_changed or self.queues_changed or self.rules_changed)


def rules_import(*, document: Any, by=None, dry_run: bool = False) -> RulesImport:
    """Make the live state what the document says, all or nothing; what already is as it says is not
    written again. Promotions (and backup owner changes) are made as `by`, through the same gates and
    permissions as the console; with `by` None a document that needs any raises ActorRequired listing
    them. Raises RulesFileError listing every problem; writes nothing in that case. `dry_run`: work out
    the changes (and any refusal, in `refused`) and write nothing."""
    check_document(document)
    rules = document.get("rules", [])
    report = RulesImport(
        owners=len(document.get("owners", [])), queues=len(document.get("queues", [])), rules=len(rules)
    )
    with transaction.atomic():
        report.rule_changes = rule_changes(rules)
        refusal = _refusal(report.rule_changes, by)
        if refusal is not None and not dry_run:
            raise refusal
        if isinstance(refusal, ActorRequired):
            report.needs_actor = True
        elif refusal is not None:
            report.refused = refusal.problems
        report.owners_changed = _import_owners(document.get("owners", []))
        report.queues_changed = _import_queues(document.get("queues", []), by=by)
        if dry_run:
            report.dry_run = True
            if refusal is None:
                try:  # the gates and guards, as the real run meets them; rolled back below
                    rule_changes_apply(report.rule_changes, by=by)
                except RulesFileError as refused:
                    report.refused = refused.problems
            transaction.set_rollback(True)  # owners, queues and rules were written only to see what changes
            return report
        report.counts = rule_changes_apply(report.rule_changes, by=by)
        audit_record(
            action=AuditAction.RULES_IMPORTED,
            actor=by,
            # Recorded even when nothing changed: who checked the live state against a file, and when.
            outcome="imported" if report.changed else "unchanged",
            data={
                "owners": report.owners,
                "queues": report.queues,
                "rules": report.rules,
                "owners_changed": report.owners_changed,
                "queues_changed": report.queues_changed,
                "rules_changed": {change.name: change.said for change in report.rules_changed},
                **report.counts,
            },
        )
    return report


def _refusal(changes: list[RuleChange], by) -> RulesFileError | None:
    """Changes a person answers for, with nobody (or somebody not allowed) to make them."""
    needing = [change for change in changes if change.needs_actor]
    if needing and by is None:
        return ActorRequired([change.describe() for change in needing])
    problems = actor_problems(needing, by) if needing else []
    return RulesFileError(problems) if problems else None


def _import_owners(items: list[dict]) -> list[str]:
    changed = []
    for item in items:
        user, created = User.objects.get_or_create(username=item["username"])
        before = (user.first_name, user.last_name, user.email)
        if user.get_full_name() != item["name"].strip():  # "Mary Ann Smith" stays split as it was
            first, _, last = item["name"].strip().partition(" ")
            user.first_name, user.last_name = first, last.strip()
        if "email" in item:
            user.email = item["email"]
        if created:
            user.set_unusable_password()  # people sign in once an admin gives them a password
        if created or before != (user.first_name, user.last_name, user.email):
            user.save()
            changed.append(user.username)
    return changed


QUEUE_SETTINGS = (
    "ack_sla_minutes",
    "resolve_sla_minutes",
    "strategy",
    "max_open_per_member",
    "escalation_interval_minutes",
    "reassign_unacknowledged",
    "return_policy",
    "distribution_period",
    "when_everyone_away",
    "credit_back",
)
# Written to a file only when not the default, so files from before they existed stay as they were.
AVAILABILITY_DEFAULTS = {
    "return_policy": ReturnPolicy.KEEP_PLACE,
    "distribution_period": DistributionPeriod.MONTH,
    "when_everyone_away": EveryoneAway.OVERFLOW,
    "credit_back": True,
}


def _row(queue: Queue) -> dict:
    return {f.attname: getattr(queue, f.attname) for f in Queue._meta.concrete_fields}


def _import_queues(items: list[dict], *, by) -> list[str]:
    """Only what differs is saved: a queue and its members keep a history, which an unchanged import must
    not grow."""
    changed, queues = set(), {}
    for item in items:
        queue, created = Queue.objects.get_or_create(name=item["name"])
        before = _row(queue)
        for key in QUEUE_SETTINGS:
            if key in item:
                setattr(queue, key, item[key])
        for key in ("owner", "escalation_contact"):
            if key in item:
                setattr(queue, key, User.objects.get(username=item[key]) if item[key] else None)
        if "business_hours" in item:
            _set_business_hours(queue, item["business_hours"])
        _save_if_changed(queue, before, created, by, changed)
        queues[queue.name] = queue
        if "members" in item and _set_members(queue, item["members"], by=by):
            changed.add(queue.name)
    for item in items:
        if "overflow_queue" in item:
            queue = queues[item["name"]]
            before = _row(queue)
            queue.overflow_queue = Queue.objects.get(name=item["overflow_queue"]) if item["overflow_queue"] else None
            _save_if_changed(queue, before, False, by, changed)
    return sorted(changed)


def _save_if_changed(queue: Queue, before: dict, created: bool, by, changed: set) -> None:
    if created or _row(queue) != before:
        queue._history_user = by
        queue.save()
        changed.add(queue.name)


def _set_business_hours(queue: Queue, hours: dict | None) -> None:
    if hours is None:
        queue.business_start = queue.business_end = None
        return
    queue.business_timezone = hours["timezone"]
    queue.business_days = ",".join(str(day) for day in sorted(hours["days"]))
    queue.business_start = dt.time.fromisoformat(hours["start"])
    queue.business_end = dt.time.fromisoformat(hours["end"])


def _business_hours_of(queue: Queue) -> dict | None:
    if queue.business_start is None or queue.business_end is None:
        return None
    return {
        "timezone": queue.business_timezone,
        "days": [int(day) for day in queue.business_days.split(",") if day],
        "start": queue.business_start.strftime("%H:%M"),
        "end": queue.business_end.strftime("%H:%M"),
    }


def _set_members(queue: Queue, members: list, *, by) -> bool:
    """Make the queue's members these; True when any membership was added, changed or removed."""
    wanted = {}
    for member in members:
        spec = {"username": member} if isinstance(member, str) else member
        wanted[spec["username"]] = spec
    users = {u.username: u for u in User.objects.filter(username__in=wanted)}
    removed, _ = queue.memberships.exclude(user__username__in=wanted).delete()
    changed = bool(removed)
    current = {m.user.username: m for m in queue.memberships.select_related("user")}
    for username, spec in wanted.items():
        membership = current.get(username) or QueueMembership(queue=queue, user=users[username])
        before = (membership.pk, membership.weight, membership.is_available)
        membership.weight = spec.get("weight", membership.weight)
        membership.is_available = spec.get("available", membership.is_available)
        if before != (membership.pk, membership.weight, membership.is_available) or membership.pk is None:
            membership._history_user = by
            membership.save()
            changed = True
        if availability_sync(user=users[username], spec=spec, by=by):
            changed = True
    return changed


def rules_export() -> dict:
    """Owners, queues and rules as one document that `rules_import` reads back to the same state, writing
    nothing: each rule's top-level fields are what runs at its stage, with its staging version and draft
    as blocks of what they change over that."""
    rules = list(Rule.objects.select_related(*RELATED).order_by("priority", "name"))
    queues = list(Queue.objects.select_related("overflow_queue").prefetch_related("memberships__user").order_by("name"))
    entries = [_rule_entry(rule) for rule in rules]
    people = {m.user for q in queues for m in q.memberships.all()}
    people |= {person for q in queues for person in (q.owner, q.escalation_contact) if person}
    for rule in rules:
        people |= {rule.owner, rule.backup_owner}
        people |= {version.owner for version in (rule.production_version, rule.staging_version) if version}
    return {
        "owners": [
            {"username": u.username, "name": u.get_full_name(), "email": u.email}
            for u in sorted((p for p in people if p), key=lambda u: u.username)
        ],
        "queues": [
            {
                "name": q.name,
                "members": [_member_entry(m) for m in q.memberships.all()],
                "ack_sla_minutes": q.ack_sla_minutes,
                "resolve_sla_minutes": q.resolve_sla_minutes,
                "strategy": q.strategy,
                "max_open_per_member": q.max_open_per_member,
                "overflow_queue": q.overflow_queue.name if q.overflow_queue else None,
                "owner": q.owner.username if q.owner else None,
                "escalation_contact": q.escalation_contact.username if q.escalation_contact else None,
                "escalation_interval_minutes": q.escalation_interval_minutes,
                "reassign_unacknowledged": q.reassign_unacknowledged,
                "business_hours": _business_hours_of(q),
                **{
                    key: getattr(q, key) for key, default in AVAILABILITY_DEFAULTS.items() if getattr(q, key) != default
                },
            }
            for q in queues
        ],
        "rules": entries,
    }


def _member_entry(membership: QueueMembership):
    """A username alone, unless the membership or the person says more (weight, availability, hours, time off)."""
    person = availability_of_member(membership.user)
    if membership.weight == 1 and membership.is_available and not person:
        return membership.user.username
    entry = {"username": membership.user.username}
    if membership.weight != 1 or not membership.is_available:
        entry |= {"weight": membership.weight, "available": membership.is_available}
    return entry | person


def _rule_entry(rule: Rule) -> dict:
    draft = content_of(rule)
    production = content_of(rule.production_version) if rule.production_version_id else None
    staging = content_of(rule.staging_version) if rule.staging_version_id else None
    top = {RuleStage.PRODUCTION: production, RuleStage.STAGING: staging}.get(rule.stage) or draft
    entry = as_file(top)
    entry = {
        "name": entry.pop("name"),
        "owner": entry.pop("owner"),
        "backup_owner": rule.backup_owner.username if rule.backup_owner_id else None,
        "priority": entry.pop("priority"),
        "stage": rule.stage,
        **entry,
    }
    if rule.stage == RuleStage.PRODUCTION and staging is not None:
        entry["staging"] = difference(staging, top)
    furthest = staging or production
    if furthest is not None and draft != furthest:
        entry["draft"] = difference(draft, furthest)
    return entry
