"""A rule's backup owner: a live setting (not part of the contract, so no version freezes it) naming who
else may sign the rule off and is told of changes to it. The rule's history and the audit trail keep each
change."""

from django.db import transaction

from audit.models import AuditAction
from audit.services import audit_record
from routing.governance.services import GovernanceError, _locked, _require_governor
from routing.models import Rule


def may_back_up(user) -> bool:
    """Who may be a backup owner: an active rule owner or admin."""
    return bool(user.is_active and (user.is_superuser or user.groups.filter(name="rule_owners").exists()))


@transaction.atomic
def rule_backup_owner_set(*, rule: Rule, backup_owner, by) -> Rule:
    """Name (or, with None, clear) the rule's backup owner: a live setting, not part of the contract, so it
    freezes into no version; the rule's history and the audit trail keep each change."""
    _require_governor(by, rule, "change the backup owner of")
    rule = _locked(rule)
    if backup_owner is not None:
        if backup_owner.pk == rule.owner_id:
            raise GovernanceError(
                f"{backup_owner.get_username()} owns {rule.name!r}; name someone else as the backup owner."
            )
        if not may_back_up(backup_owner):
            raise GovernanceError(
                f"{backup_owner.get_username()} cannot be a backup owner: name an active user in the"
                " rule_owners group, or an admin."
            )
    before = rule.backup_owner.get_username() if rule.backup_owner_id else None
    rule.backup_owner = backup_owner
    rule._history_user = by
    rule.save(update_fields=["backup_owner", "updated_at"])
    after = backup_owner.get_username() if backup_owner is not None else None
    audit_record(
        action=AuditAction.RULE_SAVED,
        actor=by,
        rule=rule,
        outcome="backup owner changed",
        data={"backup_owner": {"before": before, "after": after}},
    )
    return rule
