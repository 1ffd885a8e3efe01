"""PagerDuty's word back (webhooks v3): an incident acknowledged or resolved in PagerDuty acknowledges or
resolves the Handoff item or incident it alerts about, as a recorded, audited action.

- The request is signed: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>` with the signing secret
  of the webhook subscription (kept sealed on the PagerDuty alert channel); several signatures may come,
  comma-separated, while PagerDuty rotates the secret. None matching any active PagerDuty channel: refused.
- The PagerDuty incident is found by its `incident_key`, the dedup key Handoff sent (`handoff-exception-<id>`,
  `handoff-incident-<id>`), and only when a channel whose secret signed the request was sent that alert.
- The actor is the `pagerduty` system account (inactive: it cannot sign in); the PagerDuty user who acted is
  named in the audit note. The change is not echoed back to the channel it came from; other channels of the
  queue (Slack, a webhook) are told as for any acknowledge or resolve.
- What cannot be acted on (another event type, an alert we did not send, an item already acknowledged or
  resolved) is answered 200 and ignored, with the reason: PagerDuty retries any other answer.
"""

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model

from exceptions import incident_actions, services
from exceptions.alerts import alerts_not_echoed_to
from exceptions.models import (
    AlertAction,
    AlertChannel,
    AlertChannelKind,
    AlertMessage,
    ExceptionIncident,
    ExceptionItem,
    Resolution,
)

SIGNATURE_HEADER = "X-PagerDuty-Signature"
SYSTEM_USERNAME = "pagerduty"
_DEDUP_KEY = re.compile(r"^handoff-(exception|incident)-([0-9]{1,18})$")
ACTED_ON = {"incident.acknowledged": AlertAction.ACKNOWLEDGE, "incident.resolved": AlertAction.RESOLVE}


class SignatureRefused(Exception):
    """No signature on the request matches an active PagerDuty channel's webhook secret."""


@dataclass(frozen=True)
class WebhookOutcome:
    outcome: str  # acknowledged, resolved, ignored
    detail: str


def signature_of(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _signed_by(channel: AlertChannel, header: str, body: bytes) -> bool:
    expected = signature_of(channel.secret, body)
    return any(hmac.compare_digest(expected, given.strip()) for given in header.split(",") if given.strip())


def pagerduty_webhook(*, body: bytes, signature: str) -> WebhookOutcome:
    channels = AlertChannel.objects.filter(kind=AlertChannelKind.PAGERDUTY, is_active=True)
    signers = [channel for channel in channels if channel.secret and _signed_by(channel, signature or "", body)]
    if not signature:
        raise SignatureRefused(
            f"No {SIGNATURE_HEADER} header: PagerDuty signs every v3 webhook with it; a proxy in between may have "
            "dropped it."
        )
    if not signers:
        raise SignatureRefused(
            f"{SIGNATURE_HEADER} does not match: sign the raw body with the webhook subscription's secret, as set "
            "on an active PagerDuty alert channel (admin: Alert channels, Secret)."
        )
    try:
        event = json.loads(body)["event"]
        event_type, data = event["event_type"], event.get("data") or {}
    except (ValueError, KeyError, TypeError):
        raise ValueError("The body is not a PagerDuty v3 webhook: expected JSON with event.event_type.") from None
    action = ACTED_ON.get(event_type)
    if action is None:
        return WebhookOutcome("ignored", f"{event_type}: only incident.acknowledged and incident.resolved act.")
    key = str(data.get("incident_key") or "")
    found = _DEDUP_KEY.match(key)
    sent = AlertMessage.objects.filter(dedup_key=key, action=AlertAction.TRIGGER, channel__in=signers)
    if found is None or not sent.exists():
        return WebhookOutcome("ignored", f"Incident key {key!r} is not an alert Handoff sent to this channel.")
    agent = (event.get("agent") or {}).get("summary") or "someone"
    done = "Acknowledged" if action == AlertAction.ACKNOWLEDGE else "Resolved"
    note = f"{done} in PagerDuty by {agent} (PagerDuty incident {data.get('number') or data.get('id') or '?'})."
    with alerts_not_echoed_to((channel.pk for channel in signers), dedup_key=key):
        if found.group(1) == "exception":
            return _item(int(found.group(2)), action, note)
        return _incident(int(found.group(2)), action, note)


def system_account():
    """The account PagerDuty's changes are recorded under; it cannot sign in."""
    user, created = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"first_name": "PagerDuty", "is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _item(pk: int, action: str, note: str) -> WebhookOutcome:
    item = ExceptionItem.objects.select_related("lead", "queue", "assignee").filter(pk=pk).first()
    if item is None:
        return WebhookOutcome("ignored", f"Item #{pk} no longer exists.")
    by = system_account()
    try:
        if action == AlertAction.ACKNOWLEDGE:
            services.exception_acknowledge(item=item, by=by, note=note)
            return WebhookOutcome("acknowledged", f"Item #{pk} acknowledged.")
        services.exception_resolve(item=item, by=by, resolution=Resolution.FIXED_UPSTREAM, note=note)
        return WebhookOutcome("resolved", f"Item #{pk} resolved.")
    except services.ExceptionConflict as conflict:
        return WebhookOutcome("ignored", conflict.message)


def _incident(pk: int, action: str, note: str) -> WebhookOutcome:
    incident = ExceptionIncident.objects.select_related("queue", "assignee").filter(pk=pk).first()
    if incident is None:
        return WebhookOutcome("ignored", f"Incident #{pk} no longer exists.")
    by = system_account()
    try:
        if action == AlertAction.ACKNOWLEDGE:
            incident_actions.incident_acknowledge(incident=incident, by=by, note=note)
            return WebhookOutcome("acknowledged", f"Incident #{pk} acknowledged.")
        incident_actions.incident_resolve(incident=incident, by=by, resolution=Resolution.FIXED_UPSTREAM, note=note)
        return WebhookOutcome("resolved", f"Incident #{pk} resolved.")
    except incident_actions.IncidentConflict as conflict:
        return WebhookOutcome("ignored", conflict.message)
