from django.utils import timezone

from audit.models import AuditEvent


def audit_record(**fields) -> AuditEvent:
    """Write one audit event (the fields of `audit_event`). Call it inside the transaction of the change it
    records."""
    event = audit_event(**fields)
    event.save()
    return event


def audit_event(
    *,
    action,
    actor=None,
    lead=None,
    exception=None,
    incident=None,
    rule=None,
    inputs=None,
    outcome="",
    data=None,
    at=None,
    rule_version=None,
) -> AuditEvent:
    """An unsaved audit event; audit_record writes one, bulk_create many.

    `rule` is anything with id, version and owner_id: a Rule, or the engine's compiled rule; `rule_version`
    overrides its version when the event concerns an earlier one (the version that decided a lead)."""
    return AuditEvent(
        action=action,
        occurred_at=at or timezone.now(),
        actor=actor,
        actor_label=actor.get_username() if actor is not None else AuditEvent.ENGINE,
        lead=lead,
        exception=exception,
        incident=incident,
        rule_id=rule.id if rule is not None else None,
        rule_version=rule_version or (rule.version if rule is not None else None),
        rule_owner_id=rule.owner_id if rule is not None else None,
        inputs=inputs or {},
        outcome=outcome,
        data=data or {},
    )
