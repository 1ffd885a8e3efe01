"""Sending a batch of email when the mail server may be down, drop the connection or refuse an address.

Every sender of the product (notifications, sign-off reminders, the anomaly report, the Monday checklist, the
parity incident) goes through `send_batch`: one connection for the batch, and a failure is one warning line
for the batch (what, how many, the error), never a traceback. The caller gets back what was not sent and
keeps it marked unsent, so its next run tries again: nothing is lost while the server is away."""

import logging
import smtplib
from collections.abc import Hashable
from typing import TypeVar

from django.core.mail import EmailMessage, get_connection

Key = TypeVar("Key", bound=Hashable)


def send_batch(messages: dict[Key, EmailMessage], *, what: str, then: str, logger: logging.Logger) -> set[Key]:
    """Send each message over one connection; returns the keys of those to try again.

    `what` names the messages in the warning ("notification message(s)"), `then` says what becomes of the
    unsent ("they stay pending and are tried again at the next run."); the warning goes to the caller's
    `logger`. The server down, failing or dropping the connection stops the batch: the messages not sent are
    returned. A message the server refuses for good (5xx for every recipient) is not tried again: one more
    warning names the addresses."""
    if not messages:
        return set()
    done: set[Key] = set()
    refused: dict[str, str] = {}
    try:
        with get_connection() as mail:
            for key, message in messages.items():
                try:
                    mail.send_messages([message])
                except smtplib.SMTPRecipientsRefused as exc:  # every recipient of the message refused
                    if not exc.recipients or min(code for code, _ in exc.recipients.values()) < 500:
                        raise  # a temporary refusal (4xx): try again later
                    refused.update(
                        {address: f"{code} {_text(reply)}" for address, (code, reply) in exc.recipients.items()}
                    )
                done.add(key)
    except OSError as exc:  # smtplib's errors are OSErrors, as are a refused, timed-out or dropped connection
        unsent = set(messages) - done
        logger.warning(
            "Could not email %d of %d %s (%s: %s); %s",
            len(unsent),
            len(messages),
            what,
            type(exc).__name__,
            exc,
            then,
        )
        return unsent
    finally:
        if refused:
            logger.warning(
                "The mail server refused %d address(es) for good; the %s to them is not tried again: %s",
                len(refused),
                what,
                ", ".join(f"{address} ({reason})" for address, reason in sorted(refused.items())),
            )
    return set()


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
