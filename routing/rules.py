"""Rule writes and the rules file: `import_rules` / `export_rules` (README: Rules file)."""

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from django.db import transaction
from jsonschema import Draft202012Validator

from audit.models import AuditAction
from audit.services import audit_record
from exceptions.sla import BusinessHours
from routing.conditions import ConditionError, validate_condition
from routing.governance.gates import TEST_CASES_SCHEMA, cases_problems
from routing.governance.replay import replay_execute, replay_request
from routing.governance.services import PromotionBlocked, rule_draft_save, rule_promote, same_content
from routing.models import AssignmentStrategy, AssignTo, Queue, QueueMembership, Rule, RuleStage
from routing.text import refused_character

User = get_user_model()


class RulesFileError(ValueError):
    """Every problem in a rules document, each with where it is."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


_text = {"type": "string"}
_minutes = {"type": "integer", "minimum": 1}
_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
RULES_FILE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "owners": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["username", "name"],
                "additionalProperties": False,
                "properties": {
                    "username": {"type": "string", "pattern": r"^[\w.@+-]{1,150}$"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 300},
                    "email": {"type": "string"},
                },
            },
        },
        "queues": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "members": {
                        "type": "array",
                        "items": {
                            "oneOf": [
                                {"type": "string"},
                                {
                                    "type": "object",
                                    "required": ["username"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "username": _text,
                                        "weight": {"type": "integer", "minimum": 1},
                                        "available": {"type": "boolean"},
                                    },
                                },
                            ]
                        },
                    },
                    "ack_sla_minutes": _minutes,
                    "resolve_sla_minutes": _minutes,
                    "strategy": {"enum": list(AssignmentStrategy.values)},
                    "max_open_per_member": {"type": ["integer", "null"], "minimum": 1},
                    "overflow_queue": {"type": ["string", "null"]},
                    "owner": {"type": ["string", "null"]},
                    "escalation_contact": {"type": ["string", "null"]},
                    "escalation_interval_minutes": _minutes,
                    "reassign_unacknowledged": {"type": "boolean"},
                    "business_hours": {
                        "oneOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "required": ["timezone", "days", "start", "end"],
                                "additionalProperties": False,
                                "properties": {
                                    "timezone": {"type": "string"},
                                    "days": {
                                        "type": "array",
                                        "minItems": 1,
                                        "uniqueItems": True,
                                        "items": {"type": "integer", "minimum": 0, "maximum": 6},
                                    },
                                    "start": {"type": "string", "pattern": _HHMM},
                                    "end": {"type": "string", "pattern": _HHMM},
                                },
                            },
                        ]
                    },
                },
            },
        },
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "priority", "when", "then"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 150},
                    "owner": {"type": ["string", "null"]},
                    "priority": {"type": "integer"},
                    "stage": {"enum": list(RuleStage.values)},
                    "when": {"type": "object"},
                    "then": {
                        "type": "object",
                        "required": ["queue"],
                        "additionalProperties": False,
                        "properties": {"queue": _text, "assignee": {"enum": ["account_owner", "queue"]}},
                    },
                    "sla_minutes": _minutes,
                    "description": _text,
                    "inputs": _text,
                    "outputs": _text,
                    "rollback_plan": _text,
                    "test_cases": TEST_CASES_SCHEMA,
                },
            },
        },
    },
}
_file_validator = Draft202012Validator(RULES_FILE_SCHEMA)


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


SECTIONS = ("owners", "queues", "rules")


def _named(items: list, key: str) -> set[str]:
    return {item[key] for item in items if isinstance(item, dict) and isinstance(item.get(key), str)}


def _check_document(doc: Any) -> None:
    """Every problem of the file at once: its shape, then what the well-formed entries say (unknown users and
    queues, duplicates, conditions, test cases). An entry with a shape problem is only reported for that."""
    errors = list(_file_validator.iter_errors(doc))
    problems = [f"{_where(e.absolute_path)}: {e.message}" for e in errors]
    if not isinstance(doc, dict) or any(not isinstance(doc.get(kind, []), list) for kind in SECTIONS):
        raise RulesFileError(problems)
    misshapen = {tuple(e.absolute_path)[:2] for e in errors if len(e.absolute_path) >= 2}
    entries = {
        kind: [(i, item) for i, item in enumerate(doc.get(kind, [])) if (kind, i) not in misshapen] for kind in SECTIONS
    }
    well_formed = {kind: [item for _, item in entries[kind]] for kind in SECTIONS}
    # Names a misshapen entry still gives count as known: a rule naming that queue is not wrong as well.
    owners = _named(doc.get("owners", []), "username")
    queues = _named(doc.get("queues", []), "name")
    known_users = owners | set(
        User.objects.filter(username__in=_usernames_in(well_formed)).values_list("username", flat=True)
    )
    known_queues = queues | set(
        Queue.objects.filter(name__in=_queue_names_in(well_formed)).values_list("name", flat=True)
    )
    for kind in SECTIONS:
        key = "username" if kind == "owners" else "name"
        seen = set()
        for i, item in entries[kind]:
            if item[key] in seen:
                problems.append(f"{kind}[{i}].{key}: {item[key]!r} appears twice")
            seen.add(item[key])
            if refused_character(item["name"]):
                problems.append(f"{kind}[{i}].name: {refused_character(item['name'])}")
    for i, queue in entries["queues"]:
        for j, member in enumerate(queue.get("members", [])):
            username = member if isinstance(member, str) else member["username"]
            if username not in known_users:
                problems.append(f"queues[{i}].members[{j}]: unknown user {username!r}; list it under owners")
        for key in ("owner", "escalation_contact"):
            if queue.get(key) is not None and queue[key] not in known_users:
                problems.append(f"queues[{i}].{key}: unknown user {queue[key]!r}; list it under owners")
        hours = queue.get("business_hours")
        if hours:
            try:
                BusinessHours(
                    ZoneInfo(hours["timezone"]),
                    frozenset(hours["days"]),
                    dt.time.fromisoformat(hours["start"]),
                    dt.time.fromisoformat(hours["end"]),
                )
            except (ValueError, ZoneInfoNotFoundError) as exc:
                problems.append(f"queues[{i}].business_hours: {exc}")
        overflow = queue.get("overflow_queue")
        if overflow is not None and overflow not in known_queues:
            problems.append(f"queues[{i}].overflow_queue: unknown queue {overflow!r}")
        if overflow == queue["name"]:
            problems.append(f"queues[{i}].overflow_queue: a queue cannot overflow into itself")
    for i, rule in entries["rules"]:
        try:
            validate_condition(rule["when"], root=f"rules[{i}].when")
        except ConditionError as exc:
            problems.append(str(exc))
        problems += cases_problems(rule.get("test_cases", []), where=f"rules[{i}].test_cases")  # the caps
        if rule["then"]["queue"] not in known_queues:
            problems.append(f"rules[{i}].then.queue: unknown queue {rule['then']['queue']!r}")
        owner = rule.get("owner")
        if owner is not None and owner not in known_users:
            problems.append(f"rules[{i}].owner: unknown owner {owner!r}; list it under owners")
        if rule.get("stage", RuleStage.DRAFT) != RuleStage.DRAFT and not owner:
            problems.append(f"rules[{i}].owner: a {rule['stage']} rule needs a named owner")
    if problems:
        raise RulesFileError(problems)


def _usernames_in(doc) -> set[str]:
    names = {r["owner"] for r in doc.get("rules", []) if r.get("owner")}
    names |= {q[key] for q in doc.get("queues", []) for key in ("owner", "escalation_contact") if q.get(key)}
    for queue in doc.get("queues", []):
        names |= {m if isinstance(m, str) else m["username"] for m in queue.get("members", [])}
    return names


def _queue_names_in(doc) -> set[str]:
    names = {r["then"]["queue"] for r in doc.get("rules", [])}
    return names | {q["overflow_queue"] for q in doc.get("queues", []) if q.get("overflow_queue")}


def rules_import(*, document: Any, by=None) -> dict[str, int]:
    """Create or update owners, queues and rules from one document, all or nothing.
    Raises RulesFileError listing every problem; writes nothing in that case."""
    _check_document(document)
    counts = {"owners": 0, "queues": 0, "rules": 0}
    with transaction.atomic():
        for item in document.get("owners", []):
            first, _, last = item["name"].strip().partition(" ")
            user, created = User.objects.get_or_create(username=item["username"])
            user.first_name, user.last_name = first, last.strip()
            if "email" in item:
                user.email = item["email"]
            if created:
                user.set_unusable_password()  # people sign in once an admin gives them a password
            user.save()
            counts["owners"] += 1
        queues = {}
        for item in document.get("queues", []):
            queue, _ = Queue.objects.get_or_create(name=item["name"])
            for key in QUEUE_SETTINGS:
                if key in item:
                    setattr(queue, key, item[key])
            for key in ("owner", "escalation_contact"):
                if key in item:
                    setattr(queue, key, User.objects.get(username=item[key]) if item[key] else None)
            if "business_hours" in item:
                _set_business_hours(queue, item["business_hours"])
            queue.save()
            queues[queue.name] = queue
            if "members" in item:
                _set_members(queue, item["members"])
            counts["queues"] += 1
        for item in document.get("queues", []):
            if "overflow_queue" in item:
                queue = queues[item["name"]]
                queue.overflow_queue = (
                    Queue.objects.get(name=item["overflow_queue"]) if item["overflow_queue"] else None
                )
                queue.save()
        promotions = _import_rules(document.get("rules", []), by=by)
        counts["rules"] = len(document.get("rules", []))
        counts.update(promotions)
        audit_record(action=AuditAction.RULES_IMPORTED, actor=by, outcome="imported", data=counts)
    return counts


def _import_rules(items: list[dict], *, by) -> dict[str, int]:
    """Save each rule's draft, then move it to the stage the file asks for through the same gates as the
    console: staging first, then one replay of the new candidate set as evidence, then production. Every
    blocked gate becomes a located problem, and nothing is written."""
    problems, rules = [], []
    counts = {"promoted_to_staging": 0, "promoted_to_production": 0}
    for i, item in enumerate(items):
        rule = Rule.objects.filter(name=item["name"]).first() or Rule(name=item["name"])
        rule.owner = User.objects.get(username=item["owner"]) if item.get("owner") else None
        rule.priority = item["priority"]
        rule.condition = item["when"]
        rule.queue = Queue.objects.get(name=item["then"]["queue"])
        rule.sla_minutes = item.get("sla_minutes")
        rule.assign_to = item["then"].get("assignee", AssignTo.DEFAULT)
        rule.test_cases = item.get("test_cases", [])
        for key in ("description", "inputs", "outputs", "rollback_plan"):
            setattr(rule, key, item.get(key, ""))
        rule_draft_save(rule=rule, by=by)
        rules.append((i, rule, item.get("stage", RuleStage.DRAFT)))
    for i, rule, stage in rules:
        if stage == RuleStage.DRAFT or same_content(rule, rule.staging_version or rule.production_version):
            continue
        try:
            # A shell import acts for each rule's owner; a person importing must own the rule or be an admin.
            rule_promote(rule=rule, to=RuleStage.STAGING, by=by or rule.owner, comment="import_rules")
            counts["promoted_to_staging"] += 1
        except PromotionBlocked as blocked:
            problems += [f"rules[{i}] ({rule.name}): {gate.message}" for gate in blocked.failures]
    pending = [(i, rule) for i, rule, stage in rules if stage == RuleStage.PRODUCTION]
    pending = [(i, Rule.objects.get(pk=rule.pk)) for i, rule in pending]
    pending = [(i, rule) for i, rule in pending if rule.staging_version_id]
    if pending and not problems:
        replay_execute(run_id=replay_request(by=by).pk)
        for i, rule in pending:
            try:
                rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=by or rule.owner, comment="import_rules")
                counts["promoted_to_production"] += 1
            except PromotionBlocked as blocked:
                problems += [f"rules[{i}] ({rule.name}): {gate.message}" for gate in blocked.failures]
    if problems:
        raise RulesFileError(problems)
    return counts


QUEUE_SETTINGS = (
    "ack_sla_minutes",
    "resolve_sla_minutes",
    "strategy",
    "max_open_per_member",
    "escalation_interval_minutes",
    "reassign_unacknowledged",
)


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


def _set_members(queue: Queue, members: list) -> None:
    wanted = {}
    for member in members:
        spec = {"username": member} if isinstance(member, str) else member
        wanted[spec["username"]] = spec
    users = {u.username: u for u in User.objects.filter(username__in=wanted)}
    queue.memberships.exclude(user__username__in=wanted).delete()
    current = {m.user.username: m for m in queue.memberships.select_related("user")}
    for username, spec in wanted.items():
        membership = current.get(username) or QueueMembership(queue=queue, user=users[username])
        membership.weight = spec.get("weight", membership.weight)
        membership.is_available = spec.get("available", membership.is_available)
        membership.save()


def rules_export() -> dict:
    """Owners, queues and rules as one document that `rules_import` reads back to the same state."""
    rules = list(Rule.objects.select_related("owner", "queue").order_by("priority", "name"))
    queues = list(Queue.objects.select_related("overflow_queue").prefetch_related("memberships__user").order_by("name"))
    people = {r.owner for r in rules if r.owner} | {m.user for q in queues for m in q.memberships.all()}
    people |= {person for q in queues for person in (q.owner, q.escalation_contact) if person}
    return {
        "owners": [
            {"username": u.username, "name": u.get_full_name(), "email": u.email}
            for u in sorted(people, key=lambda u: u.username)
        ],
        "queues": [
            {
                "name": q.name,
                "members": [
                    m.user.username
                    if (m.weight == 1 and m.is_available)
                    else {"username": m.user.username, "weight": m.weight, "available": m.is_available}
                    for m in q.memberships.all()
                ],
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
            }
            for q in queues
        ],
        "rules": [
            {
                "name": r.name,
                "owner": r.owner.username if r.owner else None,
                "priority": r.priority,
                "stage": r.stage,
                "when": r.condition,
                "then": {"queue": r.queue.name, **({"assignee": r.assign_to} if r.assign_to else {})},
                "sla_minutes": r.sla_minutes,
                "description": r.description,
                "inputs": r.inputs,
                "outputs": r.outputs,
                "rollback_plan": r.rollback_plan,
                "test_cases": r.test_cases,
            }
            for r in rules
        ],
    }
