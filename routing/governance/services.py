"""Rule change control: save drafts, promote draft → staging → production through the gates, roll back,
force (admins only, recorded as unsigned), and sign off weekly. Each write and its audit event share a
transaction; the rule row is locked so two promotions of one rule cannot interleave."""

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.accounts.models import Account, accounts_state
from routing.conditions import ACCOUNT_FIELDS, ConditionError, fields_read, validate_condition
from routing.engine import candidate_versions
from routing.experiments.lifecycle import experiment_supersede
from routing.governance.approvals import approval_gate, can_approve, production_approval_required
from routing.governance.diffs import rolled_back_twin
from routing.governance.gates import (
    CaseResult,
    Gate,
    cases_fingerprint,
    cases_outcome,
    cases_problems,
    cases_status,
    contract_gates,
    failures,
    inactive_owner_message,
    reads_account,
    results_from_json,
    results_gates,
    rolled_back_gate,
    unrunnable_cases_gates,
)
from routing.governance.models import (
    CANDIDATE_CHANGES,
    PRODUCTION_KINDS,
    PromotionKind,
    ReplayRun,
    ReplayStatus,
    RuleApproval,
    RulePromotion,
    RuleSignOff,
    RuleVersion,
    iso_week_start,
)
from routing.governance.notices import promotion_notice
from routing.governance.sign_offs import change_set, changes_after_sign_off
from routing.models import TEST_RESULT_FIELDS, Rule, RuleSetGeneration, RuleStage
from routing.text import refused_character


class RuleDraftError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class PromotionBlocked(Exception):
    """The gates said no; `gates` holds every result, `failures` the ones to fix."""

    def __init__(self, gates: list[Gate]):
        self.gates = gates
        self.failures = failures(gates)
        super().__init__(" ".join(gate.message for gate in self.failures))


class GovernanceError(ValueError):
    """An action that makes no sense in the rule's current state (nothing to roll back to, …)."""


def can_govern(user, rule: Rule) -> bool:
    """Only the rule's owner or an admin promotes, rolls back or edits it."""
    return bool(user and user.is_authenticated and (user.is_superuser or rule.owner_id == user.pk))


def _require_governor(user, rule: Rule, action: str) -> None:
    if not can_govern(user, rule):
        owner = rule.owner.get_username() if rule.owner_id else "nobody yet"
        raise PermissionDenied(f"Only the rule's owner ({owner}) or an admin can {action} {rule.name!r}.")


def may_author_rules(user) -> bool:
    """Rule owners and admins start rules and replays; ops staff read them."""
    return bool(
        user and user.is_authenticated and (user.is_superuser or user.groups.filter(name="rule_owners").exists())
    )


def _require_author(user, rule: Rule, stored: dict | None) -> None:
    """`stored`: the rule as it is in the database (None for a new rule), whose owner decides."""
    if stored is None:
        if not may_author_rules(user):
            raise PermissionDenied("Only rule owners and admins create rules.")
    elif not (user.is_superuser or stored["owner_id"] == user.pk):
        raise PermissionDenied(f"Only the rule's owner or an admin edits {rule.name!r}.")
    # A rule's owner answers for it (sign-off, reminders, the audit trail): only an admin names someone else.
    # (No owner at all is judged by the draft's own checks: a rule with versions keeps one.)
    if not user.is_superuser and rule.owner_id not in (None, user.pk):
        raise PermissionDenied(
            f"Only an admin makes someone else the owner of {rule.name!r}; a rule you save is yours."
        )


def rule_draft_save(*, rule: Rule, by=None) -> Rule:
    """Save the rule's working copy. Drafts may be incomplete, but what is there must be well-formed: the
    condition compiles and the test cases have the documented shape. Nothing live changes."""
    before = None
    if rule.pk is not None:
        before = Rule.objects.filter(pk=rule.pk).values(*Rule.CONTRACT_FIELDS).first()
    if by is not None:
        _require_author(by, rule, before)
    problems = []
    if refused_character(rule.name or ""):
        problems.append(f"name: {refused_character(rule.name)}")
    if rule.pk is not None and rule.owner_id is None and rule.versions.exists():
        problems.append("owner: a rule with versions keeps a named owner; hand it to someone else instead")
    if rule.condition in (None, {}, ""):
        problems.append("when: Add at least one condition: a rule without one would match every lead.")
    else:
        try:
            validate_condition(rule.condition)
        except ConditionError as exc:
            problems.append(str(exc))
    problems += cases_problems(rule.test_cases)
    if problems:
        raise RuleDraftError(problems)
    if by is not None:
        rule._history_user = by  # simple-history credits the editor even outside a web request
    _set_test_results(rule)  # before the transaction: the cases are bounded, but no lock waits on them
    with transaction.atomic():
        rule.save()
        after = {field: getattr(rule, field) for field in Rule.CONTRACT_FIELDS}
        audit_record(
            action=AuditAction.RULE_SAVED,
            actor=by,
            rule=rule,
            outcome="created" if before is None else "draft changed",
            data={"changed": sorted(f for f in after if before is None or before[f] != after[f])},
        )
    return rule


def _queue_name(contract) -> str:
    return contract.queue.name if contract.queue_id else ""


def _set_test_results(rule: Rule) -> list[CaseResult] | None:
    """Run the draft's test cases and put their results on the rule (not saved)."""
    queue_name = _queue_name(rule)
    results = cases_outcome(condition=rule.condition, queue_name=queue_name, test_cases=rule.test_cases)
    rule.test_results = None if results is None else [r.as_dict() for r in results]
    rule.test_status = cases_status(results)
    rule.test_run_at = timezone.now()
    rule.test_fingerprint = _fingerprint(rule)
    return results


def rule_tests_record(*, rule: Rule) -> list[CaseResult] | None:
    """Run the draft's own test cases and store the results on the rule: "run tests" in the console and the
    API. The update is conditional on the draft (condition, cases and queue) being the one that ran, so a
    draft saved meanwhile keeps its own, newer results. Returns the results (None: the cases cannot run)."""
    results = _set_test_results(rule)
    Rule.objects.filter(
        pk=rule.pk, condition=rule.condition, test_cases=rule.test_cases, queue_id=rule.queue_id
    ).update(**{field: getattr(rule, field) for field in TEST_RESULT_FIELDS})
    return results


def _fingerprint(rule: Rule, accounts: Callable[[], str] = accounts_state) -> str:
    return cases_fingerprint(
        condition=rule.condition,
        queue_name=_queue_name(rule),
        test_cases=rule.test_cases,
        accounts=accounts() if reads_account(rule.condition) else "",
    )


def unknown_account_attributes(condition) -> list[str]:
    """The `account.<attribute>` fields a (saved, so valid) condition reads that no account has (a typo such
    as account.teritory, or a CRM column not imported yet): such a leaf reads nothing, whatever the lead."""
    wanted = [f for f in fields_read(condition) if f.startswith("account.") and f.split(".")[1] not in ACCOUNT_FIELDS]
    return [f for f in wanted if not Account.objects.filter(attributes__has_key=f.split(".")[1]).exists()]


def tests_stale(rule: Rule, accounts: Callable[[], str] = accounts_state) -> bool:
    """The stored results were computed for another condition, queue (or queue name) or cases, or never; or,
    for a rule that reads account fields, before an account was written or deleted. `accounts` gives the
    accounts' state (a list passes one that asks once for all its rows)."""
    if rule.test_run_at is None:
        return True
    return rule.test_fingerprint != _fingerprint(rule, accounts)


STALE_RESULTS = (
    "Run the test cases again: the stored results are for an earlier draft (or, as it reads account fields,"
    " earlier accounts)."
)


def stored_test_gates(rule: Rule) -> list[Gate]:
    """The staging test-case gates as the stored results say, for the rule's page: no case runs there."""
    unrunnable = unrunnable_cases_gates(rule.test_cases or [])
    if unrunnable is not None:
        return unrunnable
    if rule.test_run_at is None:
        return [Gate("test_cases", False, "Run the test cases: no results are stored for this draft yet.")]
    if tests_stale(rule):
        return [
            Gate(
                "test_cases",
                False,
                STALE_RESULTS,
            )
        ]
    results = results_from_json(rule.test_results)
    if results is None:
        return [Gate("test_cases", False, "The test cases cannot run: fix the condition or their shape.")]
    return results_gates(results)


def staged_test_gates(rule: Rule) -> list[Gate]:
    """The production test-case gates for the rule's page: those recorded when the staging version was
    promoted (the version is frozen, so they still hold unless its queue was renamed since)."""
    staged = rule.staging_version
    recorded = (
        RulePromotion.objects.filter(rule=rule, version=staged, kind=PromotionKind.STAGING)
        .order_by("-at")
        .values_list("gate_results", flat=True)
        .first()
    )
    gates = [
        Gate(**gate) for gate in recorded or [] if gate["gate"] == "test_cases" or gate["gate"].startswith("test:")
    ]
    if not gates:
        return [
            Gate("test_cases", False, f"No stored test results for staging v{staged.number}: they run on promotion.")
        ]
    return gates


def same_content(rule: Rule, version: RuleVersion | None) -> bool:
    return version is not None and all(getattr(rule, f) == getattr(version, f) for f in Rule.CONTRACT_FIELDS)


def staging_gates(rule: Rule, *, stored: bool = False, comment: str | None = None) -> list[Gate]:
    """`stored`: the test-case gates from the stored results (the rule's page) instead of running them.
    `comment`: the promoter's, which is the reason a draft repeating a rolled-back version needs."""
    gates = contract_gates(rule, test_gates=stored_test_gates(rule) if stored else None)
    current = rule.staging_version or rule.production_version
    if same_content(rule, current):
        where = "staging" if rule.staging_version_id else "production"
        gates.append(
            Gate(
                "changed",
                False,
                f"Nothing to promote: the draft is the same as {where} v{current.number}.",
                not_applicable=True,
            )
        )
    elif (rolled_back := rolled_back_twin(rule)) is not None:
        gates.append(rolled_back_gate(rolled_back, comment=comment))
    return gates


def current_candidate() -> dict[str, int]:
    """{rule id: version number} of the candidate set as it stands: what a replay records and is held to."""
    return {str(rule_id): number for rule_id, number in candidate_versions().values_list("rule_id", "number")}


def evidence_replay(rule: Rule) -> ReplayRun | None:
    """The newest finished replay of exactly the current candidate set (so it ran this rule's staging
    version and every other rule as it now stands), requested after the last change to that set."""
    if not rule.staging_version_id:
        return None
    candidate = current_candidate()
    if candidate.get(str(rule.pk)) != rule.staging_version.number:
        return None
    last_change = RulePromotion.objects.filter(kind__in=CANDIDATE_CHANGES).aggregate(at=Max("at"))["at"]
    replays = ReplayRun.objects.filter(status=ReplayStatus.DONE, candidate=candidate).defer("result")
    if last_change is not None:
        replays = replays.filter(requested_at__gte=last_change)
    return replays.order_by("-requested_at").first()


def production_gates(rule: Rule, *, stored: bool = False, promoter=None) -> tuple[list[Gate], ReplayRun | None]:
    """`promoter`: the person promoting (or looking at the page), for the second-person approval gate."""
    staged = rule.staging_version
    if staged is None:
        return [
            Gate(
                "staging",
                False,
                "Promote to staging first: production only takes a version that ran there.",
                not_applicable=True,
            )
        ], None
    test_gates = staged_test_gates(rule) if stored else None
    gates = [Gate("staging", True, f"Staging v{staged.number} is the candidate.")]
    gates += contract_gates(staged, test_gates=test_gates)
    replay = evidence_replay(rule)
    if replay is None:
        gates.append(
            Gate(
                "replay",
                False,
                f"Run a replay with staging v{staged.number}: none has finished since the last rule change.",
            )
        )
    else:
        moved = replay.result.get("moved_count", 0)  # one deferred read, for this one replay
        gates.append(Gate("replay", True, f"Replay #{replay.pk}: {replay.total} leads, {moved} would move."))
    if production_approval_required():
        gates.append(approval_gate(rule, staged, promoter=promoter))
    return gates, replay


def promotion_gates(rule: Rule, to: str, *, by=None) -> list[Gate]:
    """The gate results a promotion would meet now, without promoting (shown on the rule's page): the
    test-case gates come from stored results; the promotion itself runs the cases again. `by`: the person
    who would promote (their own approval does not count)."""
    if to == RuleStage.STAGING:
        return staging_gates(rule, stored=True)
    return production_gates(rule, stored=True, promoter=by)[0]


def _locked(rule: Rule) -> Rule:
    """Lock the rule set generation row, then the rule: promotions of different rules take turns, so a gate
    never judges evidence against a change that is about to commit."""
    RuleSetGeneration.objects.select_for_update().filter(pk=1).exists()
    return Rule.objects.select_for_update(of=("self",)).select_related("owner", "queue").get(pk=rule.pk)


def _freeze(rule: Rule, *, by, at, forced: bool = False) -> RuleVersion:
    number = (rule.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    return RuleVersion.objects.create(
        rule=rule,
        number=number,
        **{field: getattr(rule, field) for field in Rule.CONTRACT_FIELDS},
        created_at=at,
        created_by=by,
        forced=forced,
    )


@transaction.atomic
def rule_promote(*, rule: Rule, to: str, by, comment: str = "") -> RulePromotion:
    """Move a rule one stage on: the draft becomes a new staging version, or the staging version becomes
    production. Raises PromotionBlocked with every failed gate; PermissionDenied unless owner or admin."""
    _require_governor(by, rule, "promote")
    if to not in (RuleStage.STAGING, RuleStage.PRODUCTION):
        raise GovernanceError(f"Stages move one way, draft → staging → production; {to!r} is not a promotion target.")
    rule = _locked(rule)
    now = timezone.now()
    if to == RuleStage.STAGING:
        gates = staging_gates(rule, comment=comment)
        if failures(gates):
            raise PromotionBlocked(gates)
        version, replaced, replay = _freeze(rule, by=by, at=now), rule.staging_version, None
        rule.staging_version = version
        if rule.stage == RuleStage.DRAFT:
            rule.stage = RuleStage.STAGING
    else:
        gates, replay = production_gates(rule, promoter=by)
        if failures(gates):
            raise PromotionBlocked(gates)
        version, replaced = rule.staging_version, rule.production_version
        rule.production_version, rule.staging_version, rule.stage = version, None, RuleStage.PRODUCTION
    rule.save(update_fields=["staging_version", "production_version", "stage", "updated_at"])
    experiment_supersede(rule=rule, by=by, at=now)  # its running experiment compared what is now replaced
    promotion = RulePromotion.objects.create(
        rule=rule,
        version=version,
        kind=PromotionKind(to),
        replaced=replaced,
        by=by,
        at=now,
        gate_results=[gate.as_dict() for gate in gates],
        replay=replay,
        comment=comment,
    )
    audit_record(
        action=AuditAction.RULE_PROMOTED,
        actor=by,
        rule=rule,
        rule_version=version.number,
        outcome=to,
        at=now,
        data={
            "replaced_version": replaced.number if replaced else None,
            "replay_id": replay.pk if replay else None,
            "comment": comment,
        },
    )
    promotion_notice(promotion=promotion, by=by, comment=comment)  # the owner and backup, unless they did it
    return promotion


def rollback_target(rule: Rule) -> RuleVersion | None:
    """The version the current production one replaced. Production history is a stack: a promotion or a
    forced change pushes, a rollback pops, so v1 → v2 → rollback → v3 rolls back to v1, never to the v2
    already rolled back, and two rollbacks in a row walk back two versions."""
    if not rule.production_version_id:
        return None
    stack: list[int] = []
    for kind, version_id in (
        rule.promotions.filter(kind__in=PRODUCTION_KINDS).order_by("at", "id").values_list("kind", "version_id")
    ):
        if kind == PromotionKind.ROLLBACK:
            if stack:
                stack.pop()
        else:
            stack.append(version_id)
    return RuleVersion.objects.get(pk=stack[-2]) if len(stack) >= 2 else None


@transaction.atomic
def rule_rollback(*, rule: Rule, by, comment: str = "") -> RulePromotion:
    """One action: re-promote the previous production version."""
    _require_governor(by, rule, "roll back")
    rule = _locked(rule)
    _require_active_owner(rule)
    target = rollback_target(rule)
    if target is None:
        raise GovernanceError(f"{rule.name!r} has no earlier production version to roll back to.")
    now = timezone.now()
    replaced = rule.production_version
    rule.production_version = target
    rule.save(update_fields=["production_version", "updated_at"])
    experiment_supersede(rule=rule, by=by, at=now)
    promotion = RulePromotion.objects.create(
        rule=rule, version=target, kind=PromotionKind.ROLLBACK, replaced=replaced, by=by, at=now, comment=comment
    )
    audit_record(
        action=AuditAction.RULE_ROLLED_BACK,
        actor=by,
        rule=rule,
        rule_version=target.number,
        outcome="rolled back",
        at=now,
        data={"from_version": replaced.number, "to_version": target.number, "comment": comment},
    )
    promotion_notice(promotion=promotion, by=by, comment=comment)
    return promotion


@transaction.atomic
def rule_force_production(*, rule: Rule, by, reason: str) -> RulePromotion:
    """An admin's emergency change: the draft goes straight into production past the gates. It is recorded
    as forced and shows as unsigned until the owner signs the rule off."""
    if not (by and by.is_superuser):
        raise PermissionDenied("Only an admin can force a change into production.")
    reason = (reason or "").strip()
    if not reason:
        raise GovernanceError("Give a reason for forcing a change past the gates; the owner will see it.")
    rule = _locked(rule)
    if not rule.owner_id:
        raise GovernanceError("Name an owner first: a production rule always has one, forced or not.")
    _require_active_owner(rule)
    if not rule.sla_minutes:
        raise GovernanceError("Set the SLA first: a production rule always has one, forced or not.")
    try:
        validate_condition(rule.condition)
    except ConditionError as exc:
        raise GovernanceError(f"The condition does not compile: {exc}") from None
    if same_content(rule, rule.production_version):
        raise GovernanceError(
            f"Nothing to force: the draft is the same as production v{rule.production_version.number}."
        )
    now = timezone.now()
    version = _freeze(rule, by=by, at=now, forced=True)
    replaced, withdrawn = rule.production_version, rule.staging_version
    # A staging version older than the forced fix must not be promoted over it later.
    rule.production_version, rule.staging_version, rule.stage = version, None, RuleStage.PRODUCTION
    rule.save(update_fields=["production_version", "staging_version", "stage", "updated_at"])
    experiment_supersede(rule=rule, by=by, at=now)
    promotion = RulePromotion.objects.create(
        rule=rule, version=version, kind=PromotionKind.FORCED, replaced=replaced, by=by, at=now, comment=reason
    )
    audit_record(
        action=AuditAction.RULE_FORCED,
        actor=by,
        rule=rule,
        rule_version=version.number,
        outcome="forced into production",
        at=now,
        data={
            "replaced_version": replaced.number if replaced else None,
            "withdrawn_staging_version": withdrawn.number if withdrawn else None,
            "reason": reason,
        },
    )
    promotion_notice(promotion=promotion, by=by, comment=reason)
    return promotion


@transaction.atomic
def rule_approve(*, rule: Rule, by, comment: str = "") -> RuleApproval:
    """A second person approves the rule's staging version for production (HANDOFF_PRODUCTION_APPROVAL):
    the owner, the backup owner or an admin, once per version. Whoever promotes it must be someone else."""
    if not can_approve(by, rule):
        owner = rule.owner.get_username() if rule.owner_id else "nobody"
        backup = f", its backup owner ({rule.backup_owner.get_username()})" if rule.backup_owner_id else ""
        raise PermissionDenied(f"Only the rule's owner ({owner}){backup} or an admin approves {rule.name!r}.")
    if not production_approval_required():
        raise GovernanceError(
            "Production approval is off (HANDOFF_PRODUCTION_APPROVAL): promotions to production need no approval."
        )
    rule = _locked(rule)
    staged = rule.staging_version
    if staged is None:
        raise GovernanceError(f"Nothing to approve: {rule.name!r} has no staging version.")
    earlier = RuleApproval.objects.filter(version=staged, by=by).first()
    if earlier is not None:
        raise GovernanceError(
            f"You already approved staging v{staged.number} of {rule.name!r} at"
            f" {timezone.localtime(earlier.at):%Y-%m-%d %H:%M}."
        )
    now = timezone.now()
    approval = RuleApproval.objects.create(rule=rule, version=staged, by=by, at=now, comment=comment.strip())
    # Recorded as a step of the promotion (no action of its own): the outcome tells it apart.
    audit_record(
        action=AuditAction.RULE_PROMOTED,
        actor=by,
        rule=rule,
        rule_version=staged.number,
        outcome="approved for production",
        at=now,
        data={"approval_id": approval.pk, "comment": approval.comment},
    )
    return approval


def _require_active_owner(rule: Rule) -> None:
    """A deactivated owner answers for nothing: the rule moves no stage until someone active owns it."""
    if rule.owner_id and not rule.owner.is_active:
        raise GovernanceError(inactive_owner_message(rule.owner))


def can_sign_off(user, rule: Rule) -> bool:
    """The owner or the backup owner signs a rule off (each recorded as themselves)."""
    return bool(user and user.is_authenticated and user.pk in (rule.owner_id, rule.backup_owner_id))


@transaction.atomic
def rule_sign_off(*, rule: Rule, by, comment: str = "", at=None) -> RuleSignOff:
    """The owner (or backup owner) signs the rule off for the ISO week of `at` (default now): once per rule
    per week, unless the rule changed after that sign-off (a draft edit, promotion, forced change or
    rollback reopens it). A re-sign updates the week's row (one per rule per week); each sign-off keeps its
    own audit event, the re-sign's naming the sign-off it replaces and the changes that reopened it.
    The signer must have viewed the diff of every change of the rule's change set (sign_offs.change_set, each
    view recorded by the server that sent it); the sign-off stores the set it covers and those views."""
    if not can_sign_off(by, rule):
        owner = rule.owner.get_username() if rule.owner_id else "nobody"
        backup = f" or backup owner ({rule.backup_owner.get_username()})" if rule.backup_owner_id else ""
        raise PermissionDenied(f"Only the rule's owner ({owner}){backup} signs {rule.name!r} off.")
    at = at or timezone.now()
    week = iso_week_start(timezone.localtime(at))
    rule = _locked(rule)
    existing = RuleSignOff.objects.filter(rule=rule, week=week).select_related("by").first()
    reopened = changes_after_sign_off(week=week, rule_ids=[rule.pk]).get(rule.pk, []) if existing else []
    if existing is not None and not reopened:
        raise GovernanceError(
            f"{rule.name!r} is already signed off for {existing.iso_week_label} "
            f"by {existing.by.get_username()} at {timezone.localtime(existing.at):%Y-%m-%d %H:%M}."
        )
    pending = change_set(rule=rule, viewer=by)
    if pending.unviewed:  # a view is written by the server that sent the diff, never claimed by the form
        raise GovernanceError(
            f"Open the diff of every change before signing {rule.name!r} off; not viewed by you yet: "
            + "; ".join(f"{c.label} {timezone.localtime(c.at):%Y-%m-%d %H:%M}" for c in pending.unviewed)
            + "."
        )
    covers = pending.as_record(viewer=by)
    data = {"covers": covers}
    if existing is not None:  # changed after this week's sign-off: signed again, the earlier one in the audit
        data["replaces"] = {
            "by": existing.by.get_username(),
            "at": existing.at.isoformat(),
            "production_version": existing.production_version,
            "comment": existing.comment,
        }
        data["reopened_by"] = [{"at": c.at.isoformat(), "change": c.label, "by": c.by} for c in reopened]
        RuleSignOff.objects.filter(pk=existing.pk).update(
            by=by, at=at, production_version=rule.version, comment=comment.strip(), covers=covers
        )
        sign_off = RuleSignOff.objects.get(pk=existing.pk)
    else:
        sign_off = RuleSignOff.objects.create(
            rule=rule,
            week=week,
            by=by,
            at=at,
            production_version=rule.version,
            comment=comment.strip(),
            covers=covers,
        )
    audit_record(
        action=AuditAction.RULE_SIGNED_OFF,
        actor=by,
        rule=rule,
        outcome="signed off again" if existing is not None else "signed off",
        at=at,
        data={"week": sign_off.iso_week_label, "comment": sign_off.comment, **data},
    )
    return sign_off
