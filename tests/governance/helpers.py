"""Steps of the governance workflow, as an owner takes them, for tests that need a rule in a given state."""

from routing.governance.replay import replay_execute, replay_request
from routing.governance.services import rule_draft_save, rule_promote, rule_sign_off
from routing.governance.sign_offs import change_set, change_view_record
from routing.models import Lead, Rule, RuleStage
from routing.services import lead_route


def edit(rule: Rule, **changes) -> Rule:
    """Change the rule's draft through the service, as the editor does."""
    for name, value in changes.items():
        setattr(rule, name, value)
    rule_draft_save(rule=rule, by=rule.owner)
    return rule


def stage(rule: Rule, by=None, **changes) -> Rule:
    """Edit the draft and promote it to staging; returns the rule as stored afterwards."""
    edit(rule, **changes)
    rule_promote(rule=rule, to=RuleStage.STAGING, by=by or rule.owner)
    rule.refresh_from_db()
    return rule


def replay(by=None, **filters):
    """Request and run a replay of the current candidate set."""
    return replay_execute(run_id=replay_request(by=by, **filters).pk)


def routed(lead) -> Lead:
    """Route the lead by the production rules and return it as stored."""
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    return lead


def review(rule: Rule, by) -> None:
    """Open the diff of every change awaiting the rule's sign-off, as `by` does on "My rules" (the service the
    diff's screen calls records each view)."""
    for change in change_set(rule=rule).changes:
        change_view_record(rule=rule, key=change.key, viewer=by)


def reviewed_sign_off(*, rule: Rule, by, **kwargs):
    """Sign the rule off after opening every change's diff, as a careful owner does."""
    review(rule, by)
    return rule_sign_off(rule=rule, by=by, **kwargs)
