"""What availability costs routing, and the distribution report at a year of ledger rows.

1. The pick: `pick_assignees` for batches of 250 leads in a queue of N members, each with a week in their own
   time zone and a few time-off periods, against the same queue with nobody's hours set (always in), same run,
   alternating. Per lead: wall time and this process's CPU, in one transaction per batch like routing's.
2. The report: `distribution_report` over a year for a queue of 100 members (36,500 ledger rows, plus 10
   other queues' rows beside them), and the console page that shows it.

    .venv/bin/python bench/availability.py [--members 3 20 100] [--batches 40]
"""

import argparse
import datetime as dt
import statistics
import time

from _setup import machine, recreate_database, sized

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC", "Pacific/Auckland"]


def make_queue(name: str, members: int, *, with_hours: bool):
    from django.contrib.auth import get_user_model

    from routing.availability.models import TimeOff, WorkingHours
    from routing.models import Queue, QueueMembership

    queue = Queue.objects.create(name=name)
    users = get_user_model().objects.bulk_create(get_user_model()(username=f"{name}-{i}") for i in range(members))
    QueueMembership.objects.bulk_create(QueueMembership(queue=queue, user=u) for u in users)
    if with_hours:
        all_day = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        WorkingHours.objects.bulk_create(
            WorkingHours(user=u, timezone=ZONES[i % len(ZONES)], hours=all_day) for i, u in enumerate(users)
        )
        now = dt.datetime.now(dt.UTC)
        TimeOff.objects.bulk_create(
            TimeOff(user=u, start=now + dt.timedelta(days=7 * k), end=now + dt.timedelta(days=7 * k + 2))
            for u in users
            for k in range(1, 4)
        )
    return queue


def time_picks(queue_id: int, batches: int, batch: int) -> tuple[float, float]:
    from django.db import transaction

    from routing.assignment import pick_assignees

    walls, cpus = [], []
    for _ in range(batches):
        wall, cpu = time.perf_counter(), time.process_time()
        with transaction.atomic():
            picks = pick_assignees(queue_id=queue_id, count=batch)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert all(p.assignee is not None for p in picks)
    return statistics.median(walls) / batch * 1e6, statistics.median(cpus) / batch * 1e6


def bench_picks(members_list, batches: int, batch: int) -> None:
    print(f"## pick_assignees, batches of {batch}, median of {batches} batches (µs per lead)")
    print("| members | always in: wall / CPU | hours + time off: wall / CPU | extra per lead |")
    for members in members_list:
        plain = make_queue(f"plain{members}", members, with_hours=False)
        timed = make_queue(f"timed{members}", members, with_hours=True)
        time_picks(plain.pk, 2, batch), time_picks(timed.pk, 2, batch)  # warm
        a = time_picks(plain.pk, batches, batch)
        b = time_picks(timed.pk, batches, batch)
        print(f"| {members} | {a[0]:.0f} / {a[1]:.0f} | {b[0]:.0f} / {b[1]:.0f} | {b[0] - a[0]:+.0f} µs wall |")


def bench_report(members: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from routing.availability.models import DistributionDay
    from routing.availability.report import distribution_report

    queues = [make_queue(f"ledger{q}", members if q == 0 else 10, with_hours=False) for q in range(11)]
    today = dt.date.today()
    rows = []
    for queue in queues:
        for membership in queue.memberships.all():
            for d in range(365):
                rows.append(
                    DistributionDay(
                        queue=queue,
                        user_id=membership.user_id,
                        day=today - dt.timedelta(days=d),
                        assigned=3,
                        expected=3.1,
                        expected_if_always_in=3.3,
                        skipped_out_of_hours=2,
                    )
                )
    DistributionDay.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE routing_distributionday")
    target = queues[0]
    start, end = today - dt.timedelta(days=364), today
    walls = []
    for _ in range(7):
        began = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            report = distribution_report(queue=target, start=start, end=end)
        walls.append(time.perf_counter() - began)
    print(f"## distribution_report: {members} members, a year ({len(rows):,} ledger rows in all)")
    print(f"median {statistics.median(walls) * 1000:.1f} ms, {len(queries)} queries, {len(report.members)} members")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=sized([3, 20, 100], [3]))
    parser.add_argument("--batches", type=int, default=sized(40, 3))
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args()
    recreate_database()
    print(f"# Availability ({machine()})")
    bench_picks(args.members, args.batches, args.batch)
    bench_report(sized(100, 5))


if __name__ == "__main__":
    main()
