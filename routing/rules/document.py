"""The rules file's shape and what its entries must say: every problem at once, each with where it is."""

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from jsonschema import Draft202012Validator

from exceptions.sla import BusinessHours
from routing.availability.services import availability_problems
from routing.conditions import ConditionError, validate_condition
from routing.governance.gates import TEST_CASES_SCHEMA, cases_problems
from routing.models import AssignmentStrategy, DistributionPeriod, EveryoneAway, Queue, ReturnPolicy, RuleStage
from routing.rules.contents import BLOCKS, DECIMAL_KEYS, rule_key
from routing.text import refused_character

User = get_user_model()


class RulesFileError(ValueError):
    """Every problem in a rules document, each with where it is."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


_text = {"type": "string"}
_minutes = {"type": "integer", "minimum": 1}
_username = {"type": ["string", "null"]}
_percent = {"type": ["number", "null"], "minimum": 0, "maximum": 100}
_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
# A rule's contract, as the top-level fields of a rule or (every key optional) a staging or draft block.
_CONTENT = {
    "name": {"type": "string", "minLength": 1, "maxLength": 150},
    "owner": _username,
    "priority": {"type": "integer"},
    "when": {"type": "object"},
    "then": {
        "type": "object",
        "required": ["queue"],
        "additionalProperties": False,
        "properties": {"queue": _text, "assignee": {"enum": ["account_owner", "queue"]}},
    },
    "sla_minutes": {"type": ["integer", "null"], "minimum": 1},  # a draft may have none yet
    "description": _text,
    "inputs": _text,
    "outputs": _text,
    "rollback_plan": _text,
    "test_cases": TEST_CASES_SCHEMA,
    # Success metrics (empty: no target): the same bounds as the model's columns.
    "target_exception_rate": _percent,
    "target_latency_p95_minutes": {"type": ["number", "null"], "minimum": 0, "maximum": 99999.99},
    "target_overrides_per_week": {"type": ["integer", "null"], "minimum": 0, "maximum": 2147483647},
    "target_sla_adherence": _percent,
    "source_of_truth": {"type": "string", "maxLength": 100},
}
_BLOCK = {"type": "object", "additionalProperties": False, "properties": _CONTENT}
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
                    "name": {"type": "string", "maxLength": 300},  # "": an account with no name on record
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
                                        # The person's, not the membership's (routing/availability): checked
                                        # by availability_problems, the same in every queue listing them.
                                        "timezone": {"type": "string"},
                                        "hours": {"type": "object"},
                                        "time_off": {"type": "array"},
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
                    "owner": _username,
                    "escalation_contact": _username,
                    "escalation_interval_minutes": _minutes,
                    "reassign_unacknowledged": {"type": "boolean"},
                    "return_policy": {"enum": list(ReturnPolicy.values)},
                    "distribution_period": {"enum": list(DistributionPeriod.values)},
                    "when_everyone_away": {"enum": list(EveryoneAway.values)},
                    "credit_back": {"type": "boolean"},
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
                    **_CONTENT,
                    "stage": {"enum": list(RuleStage.values)},
                    # A live setting, not part of the contract: no version freezes it.
                    "backup_owner": _username,
                    "staging": _BLOCK,
                    "draft": _BLOCK,
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


def check_document(doc: Any) -> None:
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
            # A rule is matched by the name its draft will have (a renamed draft keeps its rule).
            name = rule_key(item) if kind == "rules" else item[key]
            if name in seen:
                problems.append(f"{kind}[{i}].{key}: {name!r} appears twice")
            seen.add(name)
            if refused_character(item["name"]):
                problems.append(f"{kind}[{i}].name: {refused_character(item['name'])}")
    for i, queue in entries["queues"]:
        problems += _queue_problems(i, queue, known_users, known_queues)
    problems += _person_conflicts(entries["queues"])
    for i, rule in entries["rules"]:
        problems += _rule_problems(i, rule, known_users, known_queues)
    if problems:
        raise RulesFileError(problems)


PERSON_FIELDS = ("timezone", "hours", "time_off")


def _person_conflicts(queues) -> list[str]:
    """A person's hours and time off are theirs, not a queue's: two queues listing them must agree."""
    seen: dict[str, tuple[str, dict]] = {}
    problems = []
    for i, queue in queues:
        for j, member in enumerate(queue.get("members", [])):
            if not isinstance(member, dict) or not any(key in member for key in PERSON_FIELDS):
                continue
            said = {key: member[key] for key in PERSON_FIELDS if key in member}
            where = f"queues[{i}].members[{j}]"
            first = seen.setdefault(member["username"], (where, said))
            if first[1] != said:
                problems.append(
                    f"{where}: {member['username']}'s timezone, hours or time_off differ from {first[0]}; "
                    "a person has one week and one time off: give them once, or the same everywhere"
                )
    return problems


def _queue_problems(i: int, queue: dict, known_users: set[str], known_queues: set[str]) -> list[str]:
    problems = []
    for j, member in enumerate(queue.get("members", [])):
        username = member if isinstance(member, str) else member["username"]
        if username not in known_users:
            problems.append(f"queues[{i}].members[{j}]: unknown user {username!r}; list it under owners")
        if isinstance(member, dict):
            problems += availability_problems(member, f"queues[{i}].members[{j}]")
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
    return problems


def _rule_problems(i: int, rule: dict, known_users: set[str], known_queues: set[str]) -> list[str]:
    stage = rule.get("stage", RuleStage.DRAFT)
    problems = _content_problems(f"rules[{i}]", rule, known_users, known_queues)
    if stage != RuleStage.DRAFT and not rule.get("owner"):
        problems.append(f"rules[{i}].owner: a {stage} rule needs a named owner")
    backup = rule.get("backup_owner")
    if backup is not None and backup not in known_users:
        problems.append(f"rules[{i}].backup_owner: unknown user {backup!r}; list it under owners")
    for block in ("staging", "draft"):
        if block not in rule:
            continue
        where = f"rules[{i}].{block}"
        if block not in BLOCKS[stage]:
            version = "draft" if stage == RuleStage.DRAFT else f"{stage} version"
            problems.append(f"{where}: a {stage} rule has no {block} block; its top-level fields are its {version}")
            continue
        problems += _content_problems(where, rule[block], known_users, known_queues, block=True)
        if block == "staging" and "owner" in rule[block] and not rule[block]["owner"]:
            problems.append(f"{where}.owner: a staging version needs a named owner")
    return problems


def _content_problems(
    where: str, content: dict, known_users: set[str], known_queues: set[str], *, block: bool = False
) -> list[str]:
    """What a rule's top-level fields or one of its blocks (only the keys it has) say wrong."""
    problems = []
    if block and "name" in content and refused_character(content["name"]):
        problems.append(f"{where}.name: {refused_character(content['name'])}")  # the top level's: check_document
    if "when" in content:
        try:
            validate_condition(content["when"], root=f"{where}.when")
        except ConditionError as exc:
            problems.append(str(exc))
    problems += cases_problems(content.get("test_cases", []), where=f"{where}.test_cases")  # the caps
    if "then" in content and content["then"]["queue"] not in known_queues:
        problems.append(f"{where}.then.queue: unknown queue {content['then']['queue']!r}")
    owner = content.get("owner")
    if owner is not None and owner not in known_users:
        problems.append(f"{where}.owner: unknown owner {owner!r}; list it under owners")
    for key in DECIMAL_KEYS:
        value = content.get(key)
        if value is not None and Decimal(str(value)).as_tuple().exponent < -2:
            problems.append(f"{where}.{key}: {value} has more than 2 decimal places")
    return problems


def _contents(rule: dict) -> list[dict]:
    return [rule] + [rule[block] for block in ("staging", "draft") if isinstance(rule.get(block), dict)]


def _usernames_in(doc) -> set[str]:
    names = {c["owner"] for r in doc.get("rules", []) for c in _contents(r) if c.get("owner")}
    names |= {r["backup_owner"] for r in doc.get("rules", []) if r.get("backup_owner")}
    names |= {q[key] for q in doc.get("queues", []) for key in ("owner", "escalation_contact") if q.get(key)}
    for queue in doc.get("queues", []):
        names |= {m if isinstance(m, str) else m["username"] for m in queue.get("members", [])}
    return names


def _queue_names_in(doc) -> set[str]:
    names = {c["then"]["queue"] for r in doc.get("rules", []) for c in _contents(r) if "then" in c}
    return names | {q["overflow_queue"] for q in doc.get("queues", []) if q.get("overflow_queue")}
