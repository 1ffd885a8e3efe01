"""The Monday sign-off reminder: one email per owner per week, listing their production rules not yet
signed off (or whose sign-off a later change reopened). A SignOffReminder row per (owner, week) makes a
repeated beat tick send nothing twice."""

import logging
from collections import defaultdict

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from config.mail import send_batch
from routing.governance.models import SignOffReminder
from routing.governance.selectors import this_week, unsigned_production_rules

logger = logging.getLogger(__name__)


def sign_off_reminders_send(*, now=None) -> int:
    """Email each owner with unsigned production rules this week, once; returns how many were emailed."""
    now = now or timezone.now()
    week = this_week(now)
    by_owner = defaultdict(list)
    for rule in unsigned_production_rules(week=week):
        by_owner[rule.owner].append(rule.name)
    link = settings.HANDOFF["CONSOLE_URL"].rstrip("/") + reverse("console:my-rules")
    year, number, _ = week.isocalendar()
    reminded = set(SignOffReminder.objects.filter(week=week).values_list("owner_id", flat=True))
    messages: dict[int, EmailMessage] = {}
    with transaction.atomic():
        for owner, names in by_owner.items():
            if owner is None:
                logger.warning("Production rules without an owner get no reminder: %s", ", ".join(names))
                continue
            if owner.pk in reminded:
                continue
            if not owner.email:
                logger.warning("Owner %s has no email address; sign-off reminder not sent.", owner.get_username())
                continue
            try:
                with transaction.atomic():  # a tick running beside this one may have just reminded them
                    SignOffReminder.objects.create(owner=owner, week=week, sent_at=now, rules=names)
            except IntegrityError:
                continue
            messages[owner.pk] = EmailMessage(
                subject=f"[Handoff] {len(names)} rule(s) to sign off for {year}-W{number:02d}",
                body="Your production rules without a sign-off this week:\n"
                + "\n".join(f"  - {name}" for name in names)
                + f"\n\nReview and sign off: {link}\n",
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[owner.email],
            )
        # The row and the email stand or fall together: an owner the mail server did not reach has no row,
        # so the next tick (hourly on Mondays) tries again.
        unsent = send_batch(
            messages,
            what="sign-off reminder(s)",
            then="they are tried again at the next tick (hourly on Mondays).",
            logger=logger,
        )
        SignOffReminder.objects.filter(week=week, owner_id__in=unsent).delete()
    return len(messages) - len(unsent)
