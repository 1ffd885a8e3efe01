"""The Monday checklist by email, to the system owner and whoever HANDOFF_CHECKLIST_RECIPIENTS lists."""

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from routing.reports.checklist import Checklist


def checklist_text(checklist: Checklist) -> str:
    base = settings.HANDOFF["CONSOLE_URL"].rstrip("/")
    lines = [f"Week of {checklist.week_start:%Y-%m-%d}", ""]
    for answer in checklist.answers:
        mark = {True: "OK ", False: "!! ", None: "-- "}[answer.ok]
        lines.append(f"{mark}{answer.question}\n    {answer.summary}\n    {base}{answer.link}")
    lines.append(f"\nThe checklist: {base}{reverse('console:checklist')}")
    return "\n".join(lines)


def checklist_send(checklist: Checklist) -> int:
    recipients = sorted(
        {
            address
            for address in [settings.HANDOFF["SYSTEM_OWNER_EMAIL"], *settings.HANDOFF["CHECKLIST_RECIPIENTS"]]
            if address
        }
    )
    if not recipients:
        return 0
    problems = sum(answer.ok is False for answer in checklist.answers)
    send_mail(
        subject=f"[Handoff] Monday checklist, week of {checklist.week_start:%Y-%m-%d}: "
        + (f"{problems} to look at" if problems else "all clear"),
        message=checklist_text(checklist),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
    )
    return len(recipients)
