"""The rules engine: production rules compiled once into one function, re-compiled only when rules change."""

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from routing.conditions import compile_first_match, fields_read, read_field
from routing.models import Rule, RuleSetGeneration, RuleStage

CONTACT_FIELDS = ("email", "phone")


@dataclass(frozen=True)
class CompiledRule:
    id: int
    name: str
    version: int
    priority: int
    owner_id: int | None
    queue_id: int
    sla_minutes: int


@dataclass(frozen=True)
class Match:
    rule: CompiledRule | None
    inputs: dict  # the fields the engine read to reach this outcome, with the values it saw


class RuleSet:
    def __init__(self, rules: Iterable[Rule]):
        ordered = sorted(rules, key=lambda rule: (rule.priority, rule.id))
        self.rules = tuple(
            CompiledRule(
                id=r.id,
                name=r.name,
                version=r.version,
                priority=r.priority,
                owner_id=r.owner_id,
                queue_id=r.queue_id,
                sla_minutes=r.sla_minutes,
            )
            for r in ordered
        )
        self._first_match = compile_first_match([rule.condition for rule in ordered])
        # Fields read up to and including rule i: what a decision by rule i (or by none) depended on.
        self._fields_through: list[tuple[str, ...]] = []
        seen: dict[str, None] = {}
        for rule in ordered:
            for field in fields_read(rule.condition):
                seen.setdefault(field, None)
            self._fields_through.append(tuple(seen))

    def __len__(self):
        return len(self.rules)

    def first_match_index(self, view: dict) -> int:
        return self._first_match(view)

    def evaluate(self, view: dict) -> Match:
        index = self._first_match(view)
        if index < 0:
            fields = self._fields_through[-1] if self._fields_through else ()
            return Match(rule=None, inputs={f: read_field(view, f) for f in fields})
        return Match(rule=self.rules[index], inputs={f: read_field(view, f) for f in self._fields_through[index]})


_cache_lock = threading.Lock()
_FINGERPRINT_SQL = (
    f"SELECT (SELECT value FROM {RuleSetGeneration._meta.db_table} WHERE id = 1), count(*), max(updated_at) "
    f"FROM {Rule._meta.db_table}"
)
_cached: tuple[tuple, RuleSet] | None = None


def production_ruleset() -> RuleSet:
    """The production rules, compiled. One cheap query per call tells whether any rule changed: the rule set
    generation (moved by every rule write when it commits), with the rules' count and newest change."""
    global _cached
    with connection.cursor() as cursor:
        cursor.execute(_FINGERPRINT_SQL)
        fingerprint = cursor.fetchone()
    with _cache_lock:
        if _cached is not None and _cached[0] == fingerprint:
            return _cached[1]
    ruleset = RuleSet(Rule.objects.filter(stage=RuleStage.PRODUCTION))
    with _cache_lock:
        _cached = (fingerprint, ruleset)
    return ruleset
