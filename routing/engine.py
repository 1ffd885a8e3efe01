"""The rules engine: rule versions compiled once into one function, re-compiled only when rules change.

Two sets are kept: production (what routes), and while any rule has a staging version, the shadow set
(production with staging versions in their place), which is evaluated for every lead but never acted on."""

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from routing.conditions import compile_first_match, fields_read, read_field
from routing.experiments.models import Experiment, ExperimentStatus
from routing.models import Rule, RuleSetGeneration, RuleVersion

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
    assign_to: str = ""  # routing.models.AssignTo


@dataclass(frozen=True)
class Match:
    rule: CompiledRule | None
    inputs: dict  # the fields the engine read to reach this outcome, with the values it saw


class RuleSet:
    def __init__(self, versions: Iterable[RuleVersion]):
        ordered = sorted(versions, key=lambda version: (version.priority, version.rule_id))
        self.rules = tuple(
            CompiledRule(
                id=r.rule_id,
                name=r.name,
                version=r.number,
                priority=r.priority,
                owner_id=r.owner_id,
                queue_id=r.queue_id,
                sla_minutes=r.sla_minutes,
                assign_to=r.assign_to,
            )
            for r in ordered
        )
        self.versions = tuple(ordered)  # the frozen rows, for explanations and replays
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


def production_versions():
    return RuleVersion.objects.filter(pk__in=Rule.objects.exclude(production_version=None).values("production_version"))


def candidate_versions():
    """Each rule's staging version, or its production version where it has none in staging."""
    staged = Rule.objects.exclude(staging_version=None)
    return RuleVersion.objects.filter(pk__in=staged.values("staging_version")) | RuleVersion.objects.filter(
        pk__in=Rule.objects.filter(staging_version=None).exclude(production_version=None).values("production_version")
    )


@dataclass(frozen=True)
class ExperimentSet:
    """The running experiment (routing/experiments): production with the rule's candidate version in its place."""

    id: int
    rule_id: int
    percent: int
    seed: str
    candidate: RuleSet


@dataclass(frozen=True)
class RuleSets:
    production: RuleSet
    shadow: RuleSet | None  # None while no rule has a staging version
    experiment: ExperimentSet | None = None  # None while no experiment runs


def _experiment_set(experiment_id: int | None, production: RuleSet) -> ExperimentSet | None:
    experiment = (
        Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.RUNNING).select_related("candidate").first()
        if experiment_id
        else None
    )
    if experiment is None:
        return None
    versions = [v for v in production.versions if v.rule_id != experiment.rule_id] + [experiment.candidate]
    return ExperimentSet(
        id=experiment.pk,
        rule_id=experiment.rule_id,
        percent=experiment.percent,
        seed=experiment.seed,
        candidate=RuleSet(versions),
    )


_cache_lock = threading.Lock()
_FINGERPRINT_SQL = (
    f"SELECT (SELECT value FROM {RuleSetGeneration._meta.db_table} WHERE id = 1), count(*), max(updated_at), "
    f"count(staging_version_id), (SELECT max(id) FROM {Experiment._meta.db_table} "
    f"WHERE status = '{ExperimentStatus.RUNNING}') FROM {Rule._meta.db_table}"
)
_cached: tuple[tuple, RuleSets] | None = None


def routing_rulesets() -> RuleSets:
    """The production and shadow sets, compiled. One cheap query per call tells whether any rule changed:
    the rule set generation (moved by every rule write when it commits), with the rules' count and newest
    change, and the running experiment."""
    global _cached
    with connection.cursor() as cursor:
        cursor.execute(_FINGERPRINT_SQL)
        fingerprint = cursor.fetchone()
    with _cache_lock:
        if _cached is not None and _cached[0] == fingerprint:
            return _cached[1]
    production = RuleSet(production_versions())
    shadow = RuleSet(candidate_versions()) if fingerprint[3] else None
    sets = RuleSets(production=production, shadow=shadow, experiment=_experiment_set(fingerprint[4], production))
    with _cache_lock:
        _cached = (fingerprint, sets)
    return sets


def production_ruleset() -> RuleSet:
    return routing_rulesets().production
