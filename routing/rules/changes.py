"""What importing each rule entry changes, worked out before anything is written, and then doing it.

An entry is compared with the stored rule stage by stage: equal content writes nothing (no version, no
promotion, no draft save). A changed draft is saved. A changed staging or production content is promoted
through the same gates as the console, as the person running the import: never as the rule's owner."""

from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from routing.governance.backup_owner import rule_backup_owner_set
from routing.governance.replay import replay_execute, replay_request
from routing.governance.services import (
    GovernanceError,
    PromotionBlocked,
    RuleDraftError,
    can_govern,
    rule_draft_save,
    rule_promote,
)
from routing.models import AssignTo, Queue, Rule, RuleStage
from routing.rules.contents import DECIMAL_KEYS, TEXT_KEYS, Content, changed_keys, content_of, rule_key, wanted
from routing.rules.document import RulesFileError

User = get_user_model()

COMMENT = "import_rules"
RELATED = (
    "owner",
    "queue",
    "backup_owner",
    "production_version__owner",
    "production_version__queue",
    "staging_version__owner",
    "staging_version__queue",
)


class ActorRequired(RulesFileError):
    """The file would promote rules or change a live setting, and nobody was named to do it as."""


@dataclass
class RuleChange:
    """One rule entry's plan. `production`/`staging`/`draft`: the content to put there (None: unchanged)."""

    index: int
    name: str
    rule: Rule | None  # as stored; None: the file creates it
    production: Content | None = None
    stage_first: bool = False  # production needs a new staging version first (staging does not hold it yet)
    staging: Content | None = None
    draft: Content | None = None
    backup_owner: tuple[str | None, str | None] | None = None  # (from, to)
    said: list[str] = field(default_factory=list)  # the changes in words, for --dry-run and refusals

    @property
    def where(self) -> str:
        return f"rules[{self.index}] ({self.name})"

    @property
    def promotes(self) -> bool:
        return self.production is not None or self.staging is not None

    @property
    def needs_actor(self) -> bool:
        """Changes a person answers for: a promotion, or the backup owner (a live setting)."""
        return self.promotes or self.backup_owner is not None

    @property
    def changed(self) -> bool:
        return self.needs_actor or self.draft is not None

    def describe(self) -> str:
        return f"{self.where}: {'; '.join(self.said) if self.said else 'unchanged'}"


def _versus(keys: list[str], base: str | None) -> str:
    return f"{base} → a new version ({', '.join(keys)})" if base else "its first version"


def rule_changes(items: list[dict]) -> list[RuleChange]:
    """The plan for every well-formed rule entry of a checked document; reads, writes nothing."""
    names = [rule_key(item) for item in items]
    stored = {rule.name: rule for rule in Rule.objects.filter(name__in=names).select_related(*RELATED)}
    return [_change(i, names[i], item, stored.get(names[i])) for i, item in enumerate(items)]


def _change(i: int, name: str, item: dict, rule: Rule | None) -> RuleChange:
    production, staging, draft = wanted(item)
    change = RuleChange(index=i, name=name, rule=rule)
    now_production = content_of(rule.production_version) if rule and rule.production_version_id else None
    now_staging = content_of(rule.staging_version) if rule and rule.staging_version_id else None
    now_draft = content_of(rule) if rule else None
    furthest = now_staging or now_production
    if rule is None:
        change.said.append("a new rule")
        base = None
    elif now_staging is not None:
        base = f"staging v{rule.staging_version.number}"
    else:
        base = f"production v{rule.production_version.number}" if now_production else None
    if production is not None and production != now_production:
        change.production, change.stage_first = production, production != now_staging
        was = f"v{rule.production_version.number}" if now_production else None
        if change.stage_first:
            change.said.append(f"promote to production: {_versus(changed_keys(production, now_production), was)}")
        else:
            replacing = f" in place of v{rule.production_version.number}" if now_production else ""
            change.said.append(f"promote staging v{rule.staging_version.number} to production{replacing}")
        # Production takes the staging version; a new one is frozen from the draft first.
        furthest, base = production, "the new production version"
        now_draft = production if change.stage_first else now_draft
    # A stage the file does not describe is left as it is: an import never withdraws or demotes a version.
    if staging is not None and staging != furthest:
        change.staging = now_draft = staging
        change.said.append(f"promote to staging: {_versus(changed_keys(staging, furthest), base)}")
    if draft != now_draft:
        change.draft = draft
        if rule is not None:
            change.said.append(f"save the draft ({', '.join(changed_keys(draft, now_draft))})")
    if "backup_owner" in item:
        before = rule.backup_owner.get_username() if rule and rule.backup_owner_id else None
        if item["backup_owner"] != before:
            change.backup_owner = (before, item["backup_owner"])
            change.said.append(f"backup owner {before or 'none'} → {item['backup_owner'] or 'none'}")
    return change


def actor_problems(changes: list[RuleChange], by) -> list[str]:
    """Why `by` may not make the changes that need a person (empty: they may). The same rule as the console
    (`can_govern`): the rule's owner, as stored and as the file names it for each promoted stage, or an admin."""
    if by.is_superuser:
        return []
    problems = []
    for change in changes:
        if not change.needs_actor:
            continue
        owners = {content["owner"] for content in (change.production, change.staging) if content is not None}
        if change.rule is not None and not can_govern(by, change.rule):
            owners.add(change.rule.owner.get_username() if change.rule.owner_id else None)
        if owners - {by.get_username()}:
            named = ", ".join(sorted(owner or "nobody" for owner in owners - {by.get_username()}))
            problems.append(
                f"{change.where}: {by.get_username()} may not make these changes ({'; '.join(change.said)}):"
                f" only its owner ({named}) or an admin can"
            )
    return problems


class _People(dict):
    """Users and queues by name, each read once, after the document's owners and queues are written."""

    def __init__(self, model, key: str):
        super().__init__()
        self.model, self.key = model, key

    def __missing__(self, name):
        self[name] = self.model.objects.get(**{self.key: name})
        return self[name]


def _set_draft(rule: Rule, content: Content, users: _People, queues: _People) -> None:
    rule.name = content["name"]
    rule.owner = users[content["owner"]] if content["owner"] else None
    rule.priority = content["priority"]
    rule.condition = content["when"]
    rule.queue = queues[content["then"]["queue"]]
    rule.assign_to = content["then"].get("assignee", AssignTo.DEFAULT)
    rule.sla_minutes = content["sla_minutes"]
    rule.test_cases = content["test_cases"]
    rule.target_overrides_per_week = content["target_overrides_per_week"]
    for key in TEXT_KEYS:
        setattr(rule, key, content[key])
    for key in DECIMAL_KEYS:
        setattr(rule, key, None if content[key] is None else Decimal(content[key]))


def _refused(change: RuleChange, exc: Exception) -> list[str]:
    if isinstance(exc, PromotionBlocked):
        return [f"{change.where}: {gate.message}" for gate in exc.failures]
    if isinstance(exc, RuleDraftError):
        return [f"{change.where}: {problem}" for problem in exc.problems]
    return [f"{change.where}: {exc}"]


REFUSALS = (PromotionBlocked, RuleDraftError, PermissionDenied, GovernanceError)


def rule_changes_apply(changes: list[RuleChange], *, by) -> dict[str, int]:
    """Make the planned changes in the caller's transaction: production first (each changed rule frozen into
    staging, then one replay of the new candidate set as evidence, then production), then new staging
    versions, then drafts, then backup owners. Every refusal (a gate, a permission) becomes a located
    problem and RulesFileError is raised, so the caller's transaction writes nothing."""
    users, queues = _People(User, "username"), _People(Queue, "name")
    counts = {"promoted_to_staging": 0, "promoted_to_production": 0, "drafts_saved": 0, "backup_owners_changed": 0}
    problems: list[str] = []

    def save(change: RuleChange, content: Content) -> None:
        rule = change.rule or Rule()
        _set_draft(rule, content, users, queues)
        change.rule = rule_draft_save(rule=rule, by=by)

    def promote(change: RuleChange, content: Content | None, to: str) -> None:
        try:
            if content is not None:
                save(change, content)
            rule_promote(rule=change.rule, to=to, by=by, comment=COMMENT)
            counts[f"promoted_to_{to}"] += 1
        except REFUSALS as exc:
            problems.extend(_refused(change, exc))

    going_live = [change for change in changes if change.production is not None]
    for change in going_live:
        if change.stage_first:
            promote(change, change.production, RuleStage.STAGING)
    if going_live and not problems:
        try:
            replay_execute(run_id=replay_request(by=by).pk)
        except PermissionDenied as exc:
            problems.append(f"{going_live[0].where}: {exc}")
        for change in going_live if not problems else []:
            change.rule = Rule.objects.get(pk=change.rule.pk)  # its staging version, as promoted above
            promote(change, None, RuleStage.PRODUCTION)
    for change in changes if not problems else []:
        if change.staging is not None:
            promote(change, change.staging, RuleStage.STAGING)
    for change in changes if not problems else []:
        if change.draft is not None:
            try:
                save(change, change.draft)
                counts["drafts_saved"] += 1
            except REFUSALS as exc:
                problems.extend(_refused(change, exc))
    for change in changes if not problems else []:
        if change.backup_owner is not None:
            username = change.backup_owner[1]
            try:
                rule_backup_owner_set(rule=change.rule, backup_owner=users[username] if username else None, by=by)
                counts["backup_owners_changed"] += 1
            except REFUSALS as exc:
                problems.extend(_refused(change, exc))
    if problems:
        raise RulesFileError(problems)
    return counts
