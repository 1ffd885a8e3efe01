"""The Monday checklist by email, to the system owner and whoever HANDOFF_CHECKLIST_RECIPIENTS lists."""

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from config.mail import send_batch
from routing.reports.checklist import Checklist

logger = logging.getLogger(__name__)


def checklist_text(checklist: Checklist) -> str:
    base = settings.HANDOFF["CONSOLE_URL"].rstrip("/")
    lines = [f"Week of {checklist.week_start:%Y-%m-%d}", ""]
    for answer in checklist.answers:
        mark = {True: "OK ", False: "!! ", None: "-- "}[answer.ok]
        lines.append(f"{mark}{answer.question}\n    {answer.summary}\n    {base}{answer.link}")
    if checklist.escalations and checklist.escalations.failing:
        gaps = checklist.escalations
        lines.append(
            f"!! Escalations that reached nobody: {gaps.in_week} item(s) in the week, {gaps.open_items} open now; "
            f"{gaps.ownerless_queues} queue(s) without owner or escalation contact\n    {base}{gaps.link}"
        )
    lines.append(f"\nThe checklist: {base}{reverse('console:checklist')}")
    return "\n".join(lines)


def checklist_recipients() -> list[str]:
    """The system owner and whoever HANDOFF_CHECKLIST_RECIPIENTS lists, each once."""
    return sorted(
        {
            address
            for address in [settings.HANDOFF["SYSTEM_OWNER_EMAIL"], *settings.HANDOFF["CHECKLIST_RECIPIENTS"]]
            if address
        }
    )


def checklist_send(checklist: Checklist, *, last_try: bool = False) -> int:
    """Email the checklist, one message to all its recipients; returns how many it went to (0 when the mail
    server did not take it: one warning, not a traceback; the task tries again unless this is its last try)."""
    recipients = checklist_recipients()
    if not recipients:
        return 0
    problems = sum(answer.ok is False for answer in checklist.answers)
    message = EmailMessage(
        subject=f"[Handoff] Monday checklist, week of {checklist.week_start:%Y-%m-%d}: "
        + (f"{problems} to look at" if problems else "all clear"),
        body=checklist_text(checklist),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    unsent = send_batch(
        {"checklist": message},
        what="Monday checklist email(s)",
        then=(
            "this was the last try"
            if last_try
            else f"it is tried again in {settings.HANDOFF['CHECKLIST_RETRY_SECONDS']} s"
        )
        + f"; its {len(recipients)} recipient(s) can read the checklist in the console: "
        + settings.HANDOFF["CONSOLE_URL"].rstrip("/")
        + reverse("console:checklist"),
        logger=logger,
    )
    return 0 if unsent else len(recipients)
