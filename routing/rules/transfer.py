"""`rules_import` / `rules_export`: owners, queues and rules as one document (README: Rules file).

A file never changes a governed queue's routing (changes.queues.ROUTING_FIELDS and its members) at once: the
change is staged through routing/changes/queues.py, with its evidence, as the person importing, and applies once
confirmed on the console. The queue's other settings, and its members' own hours and time off, apply as usual."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse

from audit.models import AuditAction
from audit.services import audit_record
from routing.availability.services import availability_of_member, availability_sync
from routing.changes.queues import (
    ROUTING_FIELDS,
    QueueChangeError,
    may_change_queues,
    proposal_differences,
    queue_change_propose,
    queue_proposal_current,
    settings_of,
    staged_changes,
)
from routing.models import DistributionPeriod, EveryoneAway, Queue, QueueMembership, ReturnPolicy, Rule, RuleStage
from routing.rules.changes import RELATED, ActorRequired, RuleChange, actor_problems, rule_changes, rule_changes_apply
from routing.rules.contents import as_file, content_of, difference
from routing.rules.document import RulesFileError, check_document

User = get_user_model()


@dataclass
class GovernedQueueChange:
    """What a file changes in a governed queue's routing: staged for review, never applied by the import."""

    where: str  # "queues[0] (Enterprise)"
    queue_id: int
    proposal: dict  # as routing.changes.queues takes it: the queue's settings and members as they would be
    said: list[str]
    staged_id: int | None = None  # the staged change: made by this import, or the same one staged before
    already_staged: bool = False

    def describe(self) -> str:
        return f"{self.where}: {'; '.join(self.said)}"


@dataclass
class RulesImport:
    """What an import did (or, dry run, would do): the entries read, and what changed."""

    owners: int
    queues: int
    rules: int
    owners_changed: list[str] = field(default_factory=list)
    queues_changed: list[str] = field(default_factory=list)
    rule_changes: list[RuleChange] = field(default_factory=list)
    queues_staged: list[GovernedQueueChange] = field(default_factory=list)
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
        staged_now = any(not change.already_staged for change in self.queues_staged)
        return bool(self.owners_changed or self.queues_changed or self.rules_changed or staged_now)


def rules_import(*, document: Any, by=None, dry_run: bool = False) -> RulesImport:
    """Make the live state what the document says, all or nothing; what already is as it says is not
    written again. Promotions (and backup owner changes) are made as `by`, through the same gates and
    permissions as the console; so is staging a governed queue's routing change (ops staff or admins);
    with `by` None a document that needs any raises ActorRequired listing them. Raises RulesFileError
    listing every problem; writes nothing in that case. `dry_run`: work out the changes (and any refusal,
    in `refused`) and write nothing."""
    check_document(document)
    rules = document.get("rules", [])
    report = RulesImport(
        owners=len(document.get("owners", [])), queues=len(document.get("queues", [])), rules=len(rules)
    )
    with transaction.atomic():
        report.rule_changes = rule_changes(rules)
        report.owners_changed = _import_owners(document.get("owners", []))
        report.queues_changed, report.queues_staged = _import_queues(document.get("queues", []), by=by)
        refusal = _refusal(report.rule_changes, report.queues_staged, by)  # raising rolls the writes back
        if refusal is not None and not dry_run:
            raise refusal
        if isinstance(refusal, ActorRequired):
            report.needs_actor = True
        elif refusal is not None:
            report.refused = refusal.problems
        if dry_run:
            report.dry_run = True
            if refusal is None:
                try:  # the staging, gates and guards, as the real run meets them; rolled back below
                    _stage(report.queues_staged, by=by)
                    rule_changes_apply(report.rule_changes, by=by)
                except RulesFileError as refused:
                    report.refused = refused.problems
            transaction.set_rollback(True)  # owners, queues and rules were written only to see what changes
            return report
        _stage(report.queues_staged, by=by)
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
                "queues_staged": {change.where: change.staged_id for change in report.queues_staged},
                **report.counts,
            },
        )
    return report


def _refusal(changes: list[RuleChange], governed: list[GovernedQueueChange], by) -> RulesFileError | None:
    """Changes a person answers for, with nobody (or somebody not allowed) to make them: promotions, backup
    owners, and governed queues' routing changes (staged as that person)."""
    needing = [change for change in changes if change.needs_actor]
    if (needing or governed) and by is None:
        return ActorRequired(
            [change.describe() for change in needing]
            + [f"{change.describe()} (a governed queue: staged for review as that person)" for change in governed]
        )
    problems = actor_problems(needing, by) if needing else []
    if governed and not may_change_queues(by):
        problems += [
            f"{change.where} is governed: {by.get_username()} may not stage a change to its routing"
            f" ({'; '.join(change.said)}): only ops staff or admins can, here or on its settings screen"
            f" {reverse('console:queue-settings', args=[change.queue_id])}"
            for change in governed
        ]
    return RulesFileError(problems) if problems else None


def _stage(governed: list[GovernedQueueChange], *, by) -> None:
    """Stage each governed queue's routing change as `by`, unless the same change already waits for review
    (importing the same file again stages nothing new). Raises RulesFileError listing every refusal."""
    problems = []
    for change in governed:
        queue = Queue.objects.get(pk=change.queue_id)
        same = next((e for e in staged_changes(queue=queue) if e.data.get("proposal") == change.proposal), None)
        if same is not None:
            change.staged_id, change.already_staged = same.pk, True
            continue
        try:
            change.staged_id = queue_change_propose(queue=queue, proposal=change.proposal, by=by).staged.pk
        except (QueueChangeError, PermissionDenied) as exc:
            problems.append(f"{change.where}: {exc}")
    if problems:
        raise RulesFileError(problems)


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


def _import_queues(items: list[dict], *, by) -> tuple[list[str], list[GovernedQueueChange]]:
    """Only what differs is saved: a queue and its members keep a history, which an unchanged import must
    not grow. On a governed queue the routing settings and members the file sets are held back and returned
    as changes to stage (those that differ); its other settings are saved."""
    changed, queues, held = set(), {}, {}
    for index, item in enumerate(items):
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
        governed = queue.governed and not created
        if governed:
            held[queue.name] = (index, _hold_routing(queue, before), item.get("members"))
        _save_if_changed(queue, before, created, by, changed)
        queues[queue.name] = queue
        if "members" not in item:
            continue
        if governed:  # a member's own hours and time off are theirs, not the queue's: never staged
            if _sync_availability(item["members"], by=by):
                changed.add(queue.name)
        elif _set_members(queue, item["members"], by=by):
            changed.add(queue.name)
    for item in items:
        if "overflow_queue" in item:
            queue = queues[item["name"]]
            overflow = Queue.objects.get(name=item["overflow_queue"]) if item["overflow_queue"] else None
            if queue.name in held:
                held[queue.name][1]["overflow_queue_id"] = overflow.pk if overflow else None
                continue
            before = _row(queue)
            queue.overflow_queue = overflow
            _save_if_changed(queue, before, False, by, changed)
    staged = [
        _governed_change(queues[name], index, routing, members) for name, (index, routing, members) in held.items()
    ]
    return sorted(changed), [change for change in staged if change.said]


def _hold_routing(queue: Queue, stored: dict) -> dict:
    """A governed queue's routing settings as the file sets them (attname → value); the queue gets its
    stored ones back, so saving it writes only its other settings."""
    routing = {}
    for name in ROUTING_FIELDS:
        attname = Queue._meta.get_field(name).attname
        routing[attname] = getattr(queue, attname)
        setattr(queue, attname, stored[attname])
    return routing


def _governed_change(queue: Queue, index: int, routing: dict, members: list | None) -> GovernedQueueChange:
    """The proposal (routing/changes/queues.py) a file's routing settings and members make for a governed
    queue, over its settings as now saved; `said` is empty when it changes nothing."""
    stored = Queue.objects.get(pk=queue.pk)
    wanted = Queue.objects.get(pk=queue.pk)
    for attname, value in routing.items():
        setattr(wanted, attname, value)
    proposal = queue_proposal_current(stored)
    proposal["fields"] = settings_of(wanted)
    if members is not None:
        proposal["members"] = _members_proposal(stored, members)
    fields, member_changes = proposal_differences(stored, proposal)
    said = [f"changes {', '.join(str(Queue._meta.get_field(name).verbose_name) for name in fields)}"] if fields else []
    said += [f"member {change['user']}: {change['change']}" for change in member_changes]
    return GovernedQueueChange(where=f"queues[{index}] ({queue.name})", queue_id=queue.pk, proposal=proposal, said=said)


def _members_proposal(queue: Queue, members: list) -> dict:
    """user id → weight and availability, as `_set_members` would make them (a new member: weight 1, in)."""
    specs = [{"username": member} if isinstance(member, str) else member for member in members]
    ids = dict(User.objects.filter(username__in=[spec["username"] for spec in specs]).values_list("username", "pk"))
    current = {m.user_id: m for m in queue.memberships.all()}
    proposal = {}
    for spec in specs:
        uid = ids[spec["username"]]
        now = current.get(uid)
        proposal[str(uid)] = {
            "weight": spec.get("weight", now.weight if now else 1),
            "is_available": spec.get("available", now.is_available if now else True),
        }
    return proposal


def _sync_availability(members: list, *, by) -> bool:
    """Members' own working hours and time off as the file says; True when any changed."""
    changed = False
    for member in members:
        spec = {"username": member} if isinstance(member, str) else member
        if availability_sync(user=User.objects.get(username=spec["username"]), spec=spec, by=by):
            changed = True
    return changed


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
