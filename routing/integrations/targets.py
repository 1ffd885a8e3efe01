"""Delivery targets' signing secrets over time: a replaced secret keeps signing next to the new one for a
while, so the receiver can take the new one without refusing deliveries in between (Standard Webhooks
carries both signatures; the legacy headers only the new one)."""

import datetime as dt

from routing.integrations.models import DeliveryTarget

ROTATION_OVERLAP = dt.timedelta(hours=24)


def target_secret_replaced(*, target: DeliveryTarget, previous: str, at: dt.datetime) -> None:
    """`target.secret` was just replaced (not saved yet): keep `previous` signing until `at` + ROTATION_OVERLAP."""
    if previous and previous != target.secret:
        target.previous_secret, target.previous_secret_until = previous, at + ROTATION_OVERLAP


def target_overlap_end(*, target: DeliveryTarget) -> None:
    """Stop signing with the previous secret now (the receiver has the new one). Not saved yet."""
    target.previous_secret, target.previous_secret_until = "", None
