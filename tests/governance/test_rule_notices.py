"""Owner notices (routing.governance.notices): the owner and backup owner are told, in "My rules" and by
email, when someone else promotes, forces or rolls back their rule, and the backup (or the admins) when the
owner is deactivated; each once, never the person who acted, never an inactive account."""

import datetime as dt
import logging
import threading

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from routing.governance.models import RuleNotice, RuleNoticeKind
from routing.governance.notices import rule_notice, rule_notices_send
from routing.governance.services import PromotionBlocked, rule_force_production, rule_promote, rule_rollback
from routing.governance.tasks import send_rule_notices_task
from routing.models import RuleStage
from tests.factories import RuleFactory, UserFactory, case, promote_live
from tests.governance.helpers import edit, replay, stage
from tests.mail_server import FakeSMTP, refusing_port, use_smtp

pytestmark = pytest.mark.django_db

TUESDAY = dt.datetime(2026, 11, 17, 10, 0, tzinfo=dt.UTC)  # ISO week 2026-W47


@pytest.fixture
def backup(db):
    user = UserFactory(username="bianca", email="bianca@example.com")
    user.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    return user


@pytest.fixture
def rule(sales, rule_owner, backup):
    with time_machine.travel(TUESDAY - dt.timedelta(days=30), tick=False):
        return RuleFactory(name="MQL to sales", owner=rule_owner, backup_owner=backup, queue=sales)


def to_partners(partners) -> dict:
    return {"queue": partners, "test_cases": [case("an MQL", "Partners", lifecycle_stage="mql")]}


def notices(**filters) -> list[tuple[str, str, str | None]]:
    """(recipient, kind, by) of each notice, in a stable order."""
    return sorted(
        (n.recipient.username, n.kind, n.by.username if n.by else None)
        for n in RuleNotice.objects.filter(**filters).select_related("recipient", "by")
    )


def test_an_admin_promoting_someone_elses_rule_tells_the_owner_and_the_backup_once(rule, partners, admin):
    edit(rule, **to_partners(partners))

    rule_promote(rule=rule, to=RuleStage.STAGING, by=admin, comment="Partners take MQLs from today")

    assert notices() == [("bianca", "promoted", "ada"), ("rowan", "promoted", "ada")]
    message = RuleNotice.objects.filter(recipient=rule.owner).get().message
    assert message == "ada promoted v2 of 'MQL to sales' to staging.\nComment: Partners take MQLs from today"


def test_the_owners_own_promotion_tells_only_the_backup(rule, partners, rule_owner):
    promote_live(rule, **to_partners(partners))  # staging then production, both by the owner

    assert notices() == [("bianca", "promoted", "rowan")] * 2
    assert sorted(RuleNotice.objects.values_list("message", flat=True)) == [
        "rowan promoted v2 of 'MQL to sales' to production.",
        "rowan promoted v2 of 'MQL to sales' to staging.",
    ]


def test_a_refused_promotion_tells_nobody(rule, admin):
    with pytest.raises(PromotionBlocked):
        rule_promote(rule=rule, to=RuleStage.STAGING, by=admin)  # nothing changed: nothing to promote

    assert not RuleNotice.objects.exists()


def test_a_forced_change_tells_the_owner_and_backup_with_the_reason(rule, partners, admin):
    edit(rule, queue=partners)

    promotion = rule_force_production(rule=rule, by=admin, reason="Sales are offsite today")

    assert notices() == [("bianca", "forced", "ada"), ("rowan", "forced", "ada")]
    notice = RuleNotice.objects.get(recipient=rule.owner)
    assert notice.message.startswith(
        "ada forced v2 of 'MQL to sales' into production past the gates.\nReason: Sales are offsite today"
    )
    assert notice.key == f"rule:{rule.pk}:promotion:{promotion.pk}"


def test_an_admin_forcing_a_rule_they_back_up_tells_the_owner_only(sales, partners, rule_owner, admin):
    rule = RuleFactory(owner=rule_owner, backup_owner=admin, queue=sales)
    edit(rule, queue=partners)

    rule_force_production(rule=rule, by=admin, reason="Urgent")

    assert notices() == [("rowan", "forced", "ada")]


def test_a_rollback_by_an_admin_tells_the_owner_and_backup_which_versions(rule, partners, admin):
    promote_live(rule, **to_partners(partners))

    rule_rollback(rule=rule, by=admin, comment="v2 misroutes")

    assert notices(kind=RuleNoticeKind.ROLLED_BACK) == [
        ("bianca", "rolled_back", "ada"),
        ("rowan", "rolled_back", "ada"),
    ]
    assert RuleNotice.objects.get(kind=RuleNoticeKind.ROLLED_BACK, recipient=rule.owner).message == (
        "ada rolled 'MQL to sales' back from v2 to v1.\nComment: v2 misroutes"
    )


def test_a_notice_key_is_written_once_per_person(rule):
    first = rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:2026-11-16", message="91% < 95%")
    again = rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:2026-11-16", message="91% < 95%")

    assert sorted(n.recipient.username for n in first) == ["bianca", "rowan"] and all(n.pk for n in first)
    assert again == []
    assert RuleNotice.objects.count() == 2


def test_one_key_on_two_rules_of_one_owner_is_two_notices(rule, sales, rule_owner):
    other = RuleFactory(owner=rule_owner, queue=sales)

    for each in (rule, other):
        rule_notice(rule=each, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:2026-11-16", message="below")

    assert RuleNotice.objects.filter(recipient=rule_owner).count() == 2


def test_inactive_people_get_no_notice_and_people_without_email_still_do(rule, rule_owner, backup):
    backup.is_active = False
    backup.save()
    rule_owner.email = ""
    rule_owner.save()
    rule.refresh_from_db()

    rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="below")

    assert notices(kind=RuleNoticeKind.SLA_BELOW_TARGET) == [("rowan", "sla_below_target", None)]


def test_a_notice_is_published_for_mail_only_when_the_transaction_commits(rule, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="below")
        rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="below")

    assert len(callbacks) == 1  # the second call wrote nothing, so publishes nothing


def test_deactivating_an_owner_tells_the_backup_owner_once(rule, rule_owner):
    rule_owner.is_active = False
    rule_owner.save()
    rule_owner.save()  # saved again while inactive: not a new deactivation

    assert notices() == [("bianca", "owner_deactivated", None)]
    assert RuleNotice.objects.get().message.startswith("The owner of 'MQL to sales', rowan, was deactivated.")


def test_deactivating_an_owner_without_a_backup_tells_the_active_admins(sales, rule_owner, admin):
    RuleFactory(name="Lonely", owner=rule_owner, queue=sales)
    UserFactory(username="retired-admin", is_superuser=True, is_active=False)

    rule_owner.is_active = False
    rule_owner.save(update_fields=["is_active"])

    assert notices() == [("ada", "owner_deactivated", None)]


def test_a_login_or_other_save_of_an_owner_tells_nobody(rule, rule_owner):
    rule_owner.first_name = "Ro"
    rule_owner.save()
    rule_owner.is_active = False
    rule_owner.save(update_fields=["last_login"])  # is_active not written: nothing changed in the database

    assert not RuleNotice.objects.exists()


def test_the_mail_task_sends_each_persons_notices_in_one_message_and_marks_them_sent(rule, sales, rule_owner, settings):
    other = RuleFactory(name="Enterprise", owner=rule_owner, queue=sales)
    rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="91% < 95%")
    rule_notice(rule=other, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="80% < 95%")

    with FakeSMTP() as server, time_machine.travel(TUESDAY, tick=False):
        use_smtp(settings, server.server_address[1])
        assert send_rule_notices_task() == 3  # beat's sweep: rowan's two notices, bianca's one
        assert send_rule_notices_task() == 0  # and once only

    assert sorted(server.received) == ["bianca@example.com", "rowan@example.com"]
    assert set(RuleNotice.objects.values_list("sent_at", flat=True)) == {TUESDAY}


def test_the_mail_task_for_just_written_notices_sends_only_those(rule, settings):
    (first, _) = rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="below")

    with FakeSMTP() as server:
        use_smtp(settings, server.server_address[1])
        assert send_rule_notices_task(notice_ids=[first.pk]) == 1

    assert server.received == [first.recipient.email]
    assert RuleNotice.objects.filter(sent_at__isnull=True).count() == 1


def test_a_notice_the_mail_server_did_not_take_stays_unsent_and_goes_at_the_next_run(rule, settings, caplog):
    rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="below")
    use_smtp(settings, refusing_port())

    with caplog.at_level(logging.WARNING):
        assert rule_notices_send() == 0
    (record,) = [r for r in caplog.records if r.name == "routing.governance.notices"]
    assert record.getMessage().startswith("Could not email 2 of 2 rule notice message(s) (ConnectionRefusedError")
    assert RuleNotice.objects.filter(sent_at__isnull=True).count() == 2

    with FakeSMTP() as server:
        use_smtp(settings, server.server_address[1])
        assert rule_notices_send() == 2
    assert sorted(server.received) == ["bianca@example.com", "rowan@example.com"]


def test_a_notice_to_someone_without_email_is_console_only_and_not_tried_again(rule, rule_owner, settings, caplog):
    rule_owner.email = ""
    rule_owner.save()
    rule.refresh_from_db()
    rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="below")

    with FakeSMTP() as server, caplog.at_level(logging.WARNING):
        use_smtp(settings, server.server_address[1])
        assert rule_notices_send() == 2

    assert server.received == ["bianca@example.com"]
    assert "has no email address to go to" in caplog.text
    assert not RuleNotice.objects.filter(sent_at__isnull=True).exists()


def test_my_rules_lists_unread_notices_newest_first(client, rule, rule_owner):
    with time_machine.travel(TUESDAY, tick=False):
        rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w46", message="older <b>notice</b>")
    with time_machine.travel(TUESDAY + dt.timedelta(hours=1), tick=False):
        rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="newer notice")
    client.force_login(rule_owner)

    page = client.get(reverse("console:my-rules")).content.decode()

    assert page.index("newer notice") < page.index("older &lt;b&gt;notice&lt;/b&gt;")
    assert 'name="csrfmiddlewaretoken"' in page and "Mark all read" in page


def test_my_rules_reads_notices_in_one_query_however_many(client, rule, rule_owner):
    client.force_login(rule_owner)
    rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w1", message="one")
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("console:my-rules"))
    for week in range(2, 8):
        rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key=f"sla:w{week}", message="more")
    with CaptureQueriesContext(connection) as seven:
        client.get(reverse("console:my-rules"))

    assert len(seven) == len(one)


def test_the_recipient_marks_a_notice_read_and_it_leaves_my_rules(client, rule, rule_owner):
    rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="Adherence 91%")
    notice = RuleNotice.objects.get(recipient=rule_owner)
    client.force_login(rule_owner)

    response = client.post(reverse("console:rule-notices-read"), {"notice": notice.pk}, follow=True)

    notice.refresh_from_db()
    assert notice.read_at is not None
    assert "Marked the notice about MQL to sales read." in [str(m) for m in response.context["messages"]]
    assert "Adherence 91%" not in response.content.decode()


def test_nobody_marks_someone_elses_notice_read(client, rule, rule_owner, backup):
    rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="below")
    backups = RuleNotice.objects.get(recipient=backup)
    client.force_login(rule_owner)

    response = client.post(reverse("console:rule-notices-read"), {"notice": backups.pk})

    assert response.status_code == 403
    assert b"only its recipient marks it read" in response.content
    backups.refresh_from_db()
    assert backups.read_at is None


@pytest.mark.parametrize("value", ["", "seven"])
def test_marking_read_a_notice_that_is_not_a_number_says_what_to_send(client, rule_owner, value):
    client.force_login(rule_owner)

    response = client.post(reverse("console:rule-notices-read"), {"notice": value})

    assert (response.status_code, response.content) == (400, b"notice: give the number of a notice.")


def test_mark_all_read_marks_only_your_own(client, rule, rule_owner, backup):
    for week in ("w46", "w47"):
        rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key=f"sla:{week}", message="below")
    client.force_login(rule_owner)

    response = client.post(reverse("console:rule-notices-read"), follow=True)

    assert "Marked 2 notices read." in [str(m) for m in response.context["messages"]]
    assert not RuleNotice.objects.filter(recipient=rule_owner, read_at__isnull=True).exists()
    assert RuleNotice.objects.filter(recipient=backup, read_at__isnull=True).count() == 2


def test_marking_read_needs_the_csrf_token(rule, rule_owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(rule_owner)

    assert client.post(reverse("console:rule-notices-read")).status_code == 403


def test_marking_read_needs_a_console_login(client, outsider):
    assert client.post(reverse("console:rule-notices-read")).status_code == 302  # to the sign-in page
    client.force_login(outsider)
    assert client.post(reverse("console:rule-notices-read")).status_code == 403


def test_the_beat_schedule_sweeps_unsent_rule_notices_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["send-rule-notices"]
    assert (entry["task"], entry["schedule"]) == ("routing.governance.tasks.send_rule_notices_task", 60.0)


def test_an_admin_taking_a_rule_to_production_tells_the_owner_at_each_stage(rule, partners, admin):
    stage(rule, by=admin, **to_partners(partners))
    replay()
    rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=admin)

    assert [n.message.split(".")[0] for n in RuleNotice.objects.filter(recipient=rule.owner).order_by("id")] == [
        "ada promoted v2 of 'MQL to sales' to staging",
        "ada promoted v2 of 'MQL to sales' to production",
    ]


def test_deactivating_an_owner_in_the_admin_names_the_admin_and_tells_the_backup(client, rule, rule_owner, admin):
    client.force_login(admin)
    url = reverse("admin:auth_user_change", args=[rule_owner.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(
        groups=[g.pk for g in rule_owner.groups.all()],
        user_permissions=[],
        is_active="",
        last_login_0="",
        last_login_1="",
        date_joined_0=rule_owner.date_joined.strftime("%Y-%m-%d"),
        date_joined_1=rule_owner.date_joined.strftime("%H:%M:%S"),
    )
    data = {k: v for k, v in data.items() if k not in ("last_login", "date_joined")}

    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    rule_owner.refresh_from_db()
    assert not rule_owner.is_active
    assert notices() == [("bianca", "owner_deactivated", "ada")]
    assert "was deactivated by ada." in RuleNotice.objects.get().message


@pytest.mark.django_db(transaction=True)
def test_notices_another_worker_holds_are_skipped_so_none_is_sent_twice(rule, rule_owner, backup, settings):
    rule_notice(rule=rule, kind=RuleNoticeKind.SLA_BELOW_TARGET, key="sla:w47", message="below")
    claimed, release = threading.Event(), threading.Event()

    def other_worker():  # claims rowan's notice and is still sending it
        try:
            with transaction.atomic():
                list(RuleNotice.objects.filter(recipient=rule_owner).select_for_update())
                claimed.set()
                release.wait(10)
        finally:
            connection.close()

    worker = threading.Thread(target=other_worker)
    worker.start()
    assert claimed.wait(10)
    try:
        with FakeSMTP() as server:
            use_smtp(settings, server.server_address[1])
            assert rule_notices_send() == 1  # only bianca's: rowan's is the other worker's
    finally:
        release.set()
        worker.join()

    assert server.received == ["bianca@example.com"]
    assert list(RuleNotice.objects.filter(sent_at__isnull=True).values_list("recipient__username", flat=True)) == [
        "rowan"
    ]
