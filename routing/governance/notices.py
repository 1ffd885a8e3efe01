"""Owner notices: a rule's owner and backup owner are told when someone else promotes, forces or rolls back
their rule, when its SLA adherence falls below target, and (the backup, or the admins) when its owner's
account is deactivated. A notice is written in the caller's transaction, listed in "My rules" until read,
and emailed after commit by a task (and by beat's sweep, so a lost task loses no mail)."""

import datetime as dt
import logging
from collections import defaultdict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from config.mail import send_batch
from routing.dispatch import rule_notices_enqueue
from routing.governance.models import PromotionKind, RuleNotice, RuleNoticeKind
from routing.models import Rule

logger = logging.getLogger(__name__)

# Notices one run of rule_notices_send takes (a row lock each while their mail goes out).
RULE_NOTICE_BATCH = 500

_KEY_MAX = RuleNotice._meta.get_field("key").max_length


def rule_notice(*, rule: Rule, kind: str, key: str, message: str, by=None, now=None) -> list[RuleNotice]:
    """One notice per person among the rule's owner and backup owner, except the actor `by` and inactive
    accounts (one without an email address still sees it in the console). Idempotent: a `key` already
    noticed to a person (a promotion's id, a week's SLA check) writes nothing for them again. Returns the
    notices written now; they are emailed once the caller's transaction commits."""
    people = [rule.owner if rule.owner_id else None, rule.backup_owner if rule.backup_owner_id else None]
    return _notices_write(rule=rule, recipients=people, kind=kind, key=key, message=message, by=by, now=now)


def _notices_write(*, rule, recipients, kind, key, message, by, now) -> list[RuleNotice]:
    # The model's key is unique per recipient, not per rule: the rule's id in it keeps one person's two
    # rules (both below target the same week) from swallowing each other's notice.
    stored_key = f"rule:{rule.pk}:{key}"
    if len(stored_key) > _KEY_MAX:
        raise ValueError(f"A notice key is at most {_KEY_MAX} characters with the rule's prefix; {key!r} is longer.")
    kind = RuleNoticeKind(kind)
    people = {
        person.pk: person
        for person in recipients
        if person is not None and person.is_active and (by is None or person.pk != by.pk)
    }
    if not people:
        return []
    already = set(RuleNotice.objects.filter(key=stored_key, recipient__in=people).values_list("recipient", flat=True))
    wanted = [pk for pk in people if pk not in already]
    if not wanted:
        return []
    now = now or timezone.now()
    RuleNotice.objects.bulk_create(
        [
            RuleNotice(rule=rule, recipient_id=pk, kind=kind, key=stored_key, by=by, message=message, created_at=now)
            for pk in wanted
        ],
        ignore_conflicts=True,  # a concurrent writer of the same key wins; each person has it once
    )
    written = list(
        RuleNotice.objects.filter(key=stored_key, recipient__in=wanted, created_at=now).order_by("recipient")
    )
    if written:
        ids = [notice.pk for notice in written]
        transaction.on_commit(lambda: rule_notices_enqueue(ids), robust=True)
    return written


def _who(user) -> str:
    return user.get_username() if user is not None else "someone"


def promotion_notice(*, promotion, by, comment: str = "") -> list[RuleNotice]:
    """Tell the rule's owner and backup owner (but not `by`) about a promotion, forced change or rollback.
    Called inside the promotion's transaction, so the notice stands or falls with it."""
    rule, version = promotion.rule, promotion.version
    if promotion.kind == PromotionKind.FORCED:
        kind = RuleNoticeKind.FORCED
        did = f"forced v{version.number} of {rule.name!r} into production past the gates"
    elif promotion.kind == PromotionKind.ROLLBACK:
        kind = RuleNoticeKind.ROLLED_BACK
        replaced = f" from v{promotion.replaced.number}" if promotion.replaced_id else ""
        did = f"rolled {rule.name!r} back{replaced} to v{version.number}"
    else:
        kind = RuleNoticeKind.PROMOTED
        did = f"promoted v{version.number} of {rule.name!r} to {promotion.kind}"
    text = f"{_who(by)} {did}."
    comment = (comment or "").strip()
    if comment:
        label = "Reason" if kind == RuleNoticeKind.FORCED else "Comment"
        text += f"\n{label}: {comment}"
    if kind == RuleNoticeKind.FORCED:
        text += "\nA forced change shows as unsigned until the owner signs the rule off."
    return rule_notice(rule=rule, kind=kind, key=f"promotion:{promotion.pk}", message=text, by=by, now=promotion.at)


def owner_deactivated_notices(*, user, by=None, now=None) -> int:
    """The owner `user` was deactivated: for each rule they own, tell its backup owner, or, with no active
    backup owner, every active admin (they can name a new owner). Returns how many notices were written;
    a rule nobody can be told about is logged for the system owner."""
    rules = list(Rule.objects.filter(owner=user).select_related("owner", "backup_owner").order_by("name"))
    if not rules:
        return 0
    now = now or timezone.now()
    admins = None
    written = 0
    for rule in rules:
        backup = rule.backup_owner if rule.backup_owner_id and rule.backup_owner.is_active else None
        if backup is not None:
            people = [backup]
        else:
            if admins is None:
                admins = list(get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("pk"))
            people = admins
        message = (
            f"The owner of {rule.name!r}, {user.get_username()}, was deactivated"
            f"{f' by {by.get_username()}' if by is not None else ''}. The rule keeps routing, but it cannot be"
            " promoted until someone active owns it: name a new owner."
        )
        notices = _notices_write(
            rule=rule,
            recipients=people,
            kind=RuleNoticeKind.OWNER_DEACTIVATED,
            key=f"deactivated:{user.pk}:{now:%Y%m%dT%H%M%S.%f}",  # each deactivation once
            message=message,
            by=by,
            now=now,
        )
        if not notices and not people:
            logger.error(
                "Rule %r lost its owner %s (deactivated) and has no active backup owner or admin to tell; "
                "HANDOFF_SYSTEM_OWNER_EMAIL (%s) should name a new owner.",
                rule.name,
                user.get_username(),
                settings.HANDOFF["SYSTEM_OWNER_EMAIL"] or "not set",
            )
        written += len(notices)
    return written


def unread_notices(*, user, limit: int = 50):
    """The person's unread notices, newest first, for "My rules"."""
    return (
        RuleNotice.objects.filter(recipient=user, read_at__isnull=True)
        .select_related("rule", "by")
        .order_by("-created_at", "-id")[:limit]
    )


def unread_notice_count(*, user) -> int:
    return RuleNotice.objects.filter(recipient=user, read_at__isnull=True).count()


def notices_mark_read(*, user, notice_ids=None, now=None) -> int:
    """Mark the person's own notices read (`notice_ids` None: all of them); someone else's are never
    touched. Returns how many changed."""
    notices = RuleNotice.objects.filter(recipient=user, read_at__isnull=True)
    if notice_ids is not None:
        notices = notices.filter(pk__in=notice_ids)
    return notices.update(read_at=now or timezone.now())


def _console_url(path: str) -> str:
    return settings.HANDOFF["CONSOLE_URL"].rstrip("/") + path


def rule_notices_send(*, notice_ids=None, now: dt.datetime | None = None, limit: int = RULE_NOTICE_BATCH) -> int:
    """Email unsent notices (those of `notice_ids`, or the oldest `limit`), one message per address; returns
    how many were sent. Rows are claimed with SKIP LOCKED, so two workers never send one twice; one the mail
    server did not take stays unsent for the next run (config.mail.send_batch). A recipient without an email
    address has the notice in the console only: it counts as sent."""
    now = now or timezone.now()
    with transaction.atomic():
        due = RuleNotice.objects.filter(sent_at__isnull=True)
        if notice_ids is not None:
            due = due.filter(pk__in=notice_ids)
        due = list(
            due.order_by("created_at", "id")  # along rule_notice_unsent_idx
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("rule", "recipient")[:limit]
        )
        if not due:
            return 0
        by_address: dict[str, list[RuleNotice]] = defaultdict(list)
        for notice in due:
            if notice.recipient.email:
                by_address[notice.recipient.email].append(notice)
            else:
                logger.warning(
                    "Rule notice %s to %s has no email address to go to; it stays in the console only.",
                    notice.pk,
                    notice.recipient.get_username(),
                )
        messages = {address: _message(address, notes) for address, notes in by_address.items()}
        unreached = send_batch(
            messages,
            what="rule notice message(s)",
            then="they stay unsent and are tried again at the next run (every minute).",
            logger=logger,
        )
        waiting = {n.pk for address in unreached for n in by_address[address]}
        sent = [n.pk for n in due if n.pk not in waiting]
        RuleNotice.objects.filter(pk__in=sent).update(sent_at=now)
    return len(sent)


def _message(address: str, notices: list[RuleNotice]) -> EmailMessage:
    if len(notices) == 1:
        subject = f"[Handoff] {notices[0].get_kind_display()}: {notices[0].rule.name}"
    else:
        subject = f"[Handoff] {len(notices)} notices about your rules"
    mine = _console_url(reverse("console:my-rules"))
    body = "\n\n".join(
        f"{n.get_kind_display()}: {n.rule.name}\n{n.message}\n{_console_url(reverse('console:rule', args=[n.rule_id]))}"
        for n in notices
    )
    return EmailMessage(
        subject=subject,
        body=f"{body}\n\nYour notices: {mine}\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
    )
