"""The Monday sign-off reminder: one email per owner per week, listing their production rules not yet
signed off. A SignOffReminder row per (owner, week) makes a repeated beat tick send nothing twice."""

import logging
import smtplib
from collections import defaultdict

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

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
    sent = 0
    year, number, _ = week.isocalendar()
    for owner, names in by_owner.items():
        if owner is None:
            logger.warning("Production rules without an owner get no reminder: %s", ", ".join(names))
            continue
        if not owner.email:
            logger.warning("Owner %s has no email address; sign-off reminder not sent.", owner.get_username())
            continue
        try:
            # The row and the email stand or fall together: a failed send is tried again on the next tick.
            with transaction.atomic():
                SignOffReminder.objects.create(owner=owner, week=week, sent_at=now, rules=names)
                send_mail(
                    subject=f"[Handoff] {len(names)} rule(s) to sign off for {year}-W{number:02d}",
                    message="Your production rules without a sign-off this week:\n"
                    + "\n".join(f"  - {name}" for name in names)
                    + f"\n\nReview and sign off: {link}\n",
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    recipient_list=[owner.email],
                )
        except IntegrityError:
            continue  # reminded already this week
        except (OSError, smtplib.SMTPException):
            logger.exception("Sign-off reminder to %s failed; it is tried again on the next tick.", owner.email)
            continue
        sent += 1
    return sent
