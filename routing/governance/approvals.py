"""Second-person approval for production (HANDOFF_PRODUCTION_APPROVAL=on): a staging version goes to
production only once someone other than the person promoting it has approved it.

Who may approve: the rule's owner, its backup owner, or an admin: the people who may answer for the rule.
The promoter's own approval never counts for their promotion, so one person cannot both approve and promote;
an owner who promotes needs the backup owner or an admin, an admin who promotes needs the owner, the backup
owner or another admin. An approval is of one frozen staging version, so a new staging version needs a new
one. A forced promotion (an admin's emergency change) is not approved: it records its reason and shows as
unsigned until the owner signs it off."""

from django.conf import settings
from django.utils import timezone

from routing.governance.gates import Gate
from routing.governance.models import RuleApproval, RuleVersion
from routing.models import Rule


def production_approval_required() -> bool:
    return bool(settings.HANDOFF["PRODUCTION_APPROVAL"])


def can_approve(user, rule: Rule) -> bool:
    return bool(
        user
        and user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.pk in (rule.owner_id, rule.backup_owner_id))
    )


def approvers_text(rule: Rule) -> str:
    """Who may approve, in words: "the owner rowan, the backup owner bea or an admin"."""
    owner = f"the owner {rule.owner.get_username()}" if rule.owner_id else "the owner"
    backup = f", the backup owner {rule.backup_owner.get_username()}" if rule.backup_owner_id else ""
    return f"{owner}{backup} or an admin"


def version_approvals(version: RuleVersion) -> list[RuleApproval]:
    return list(RuleApproval.objects.filter(version=version).select_related("by").order_by("at", "id"))


def approval_gate(rule: Rule, staged: RuleVersion, *, promoter=None) -> Gate:
    """The production gate for the second person's approval of `staged`, judged for `promoter` (the person
    promoting, or looking at the page). Only asked when production approval is required."""
    approvals = version_approvals(staged)
    counted = [a for a in approvals if promoter is None or a.by_id != promoter.pk]
    if counted:
        names = ", ".join(f"{a.by.get_username()} ({timezone.localtime(a.at):%Y-%m-%d %H:%M})" for a in counted)
        return Gate("approval", True, f"Staging v{staged.number} approved for production by {names}.")
    if approvals:  # only the promoter's own
        return Gate(
            "approval",
            False,
            f"You approved staging v{staged.number} yourself; your own approval does not count for your"
            f" promotion: {approvers_text(rule)} other than you approves it, or promotes it.",
        )
    return Gate(
        "approval",
        False,
        f"Get a second person's approval of staging v{staged.number}: {approvers_text(rule)}, other than"
        " whoever promotes it, approves it on the rule's page (production approval is on).",
    )
