"""Races over real HTTP against gunicorn (two processes, ten threads each, so requests really overlap), each
thread with its own database connection: the same lead posted twenty times at once, and two people
acknowledging the same exception at once. Threads are released together by a barrier."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.contrib.auth.models import Group

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem
from routing.models import Lead, LeadStatus
from tests.conftest import wait_until
from tests.factories import LeadPayloadFactory, UserFactory
from tests.faults.helpers import Processes, assert_nothing_lost, log_in, post_lead

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]

POSTS = 20
ROUNDS = 10  # acknowledge races, one exception each: a check-then-act race shows up well within ten


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    """gunicorn on the test database and the suite's broker, shared by this module's tests."""
    started = Processes(tmp_path_factory.mktemp("web"))
    try:
        yield started.web(workers=2, threads=10)
    finally:
        started.stop_all()


def together(n: int, work) -> list:
    """Run work(i) for i in range(n) in n threads released at the same instant."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(timeout=10)
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def acknowledge_together(url: str, people: dict[str, dict]) -> dict[str, httpx.Response]:
    """Each person (name: session headers) POSTs the acknowledge at the same instant; their answers by name."""
    names = list(people)
    answers = together(len(names), lambda i: httpx.post(url, headers=people[names[i]], timeout=10))
    return dict(zip(names, answers, strict=True))


def test_the_same_lead_posted_20_times_at_once_is_one_lead_with_one_assignment(celery_worker, web, source, ae_rule):
    payload = LeadPayloadFactory(lead_id="posted-twenty-times")

    responses = together(POSTS, lambda _: post_lead(web, source.token, payload))

    assert Counter(r.status_code for r in responses) == {202: 1, 200: POSTS - 1}  # 200: already received
    (lead_id,) = {r.json()["id"] for r in responses}
    assert Lead.objects.count() == 1
    wait_until(
        lambda: Lead.objects.filter(pk=lead_id, status=LeadStatus.ASSIGNED).exists(),
        what="the worker to assign the lead",
    )
    assert_nothing_lost([lead_id])


def test_two_people_acknowledging_the_same_exception_at_once_get_one_200_and_one_409(
    celery_worker, web, source, ae_rule
):
    ops = Group.objects.get_or_create(name="ops")[0]
    for name in ("ana", "bo"):
        UserFactory(username=name).groups.add(ops)
    people = {name: log_in(web, name, "pw-for-tests") for name in ("ana", "bo")}
    accepted = []
    for payload in LeadPayloadFactory.build_batch(ROUNDS, lifecycle_stage="customer"):  # no rule: exceptions
        response = post_lead(web, source.token, payload)
        assert response.status_code == 202
        accepted.append(response.json()["id"])
    wait_until(
        lambda: Lead.objects.filter(pk__in=accepted, status=LeadStatus.EXCEPTION).count() == ROUNDS,
        what="the worker to open an exception for every lead",
    )

    for item in ExceptionItem.objects.filter(lead__in=accepted).order_by("pk"):
        answers = acknowledge_together(f"{web}/api/v1/exceptions/{item.pk}/acknowledge/", people)

        codes = {name: answer.status_code for name, answer in answers.items()}
        assert sorted(codes.values()) == [200, 409], f"item {item.pk}: {codes}"
        (winner,) = [name for name, code in codes.items() if code == 200]
        (loser,) = [name for name, code in codes.items() if code == 409]
        conflict = answers[loser].json()
        assert conflict["detail"].startswith(f"Cannot acknowledge item #{item.pk}: it is already acknowledged by")
        assert conflict["item"]["acknowledged_by"] == winner  # the one told no is told who did it
        acknowledgements = AuditEvent.objects.filter(exception=item, action=AuditAction.EXCEPTION_ACKNOWLEDGED)
        assert list(acknowledgements.values_list("actor__username", flat=True)) == [winner]
        item.refresh_from_db()
        assert (item.status, item.acknowledged_by.username) == ("acknowledged", winner)

    assert_nothing_lost(accepted)
