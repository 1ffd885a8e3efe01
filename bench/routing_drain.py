"""Drain rate of batched routing in one process (what one worker process does per task, without the broker),
against a floor measured in the same run: raw SQL doing the same writes for batches of the same size.

Set-up: the demo's owners, queues, members and production rules (seed_demo), one delivery target subscribed
to lead.assigned, and synthetic leads inserted through the intake service. The leads are split in two halves;
batches alternate between the product (routing.services.leads_route) and the floor, so both see the same
machine load. The floor writes what routing writes for an assigned lead, with no engine and no Python model
objects: one UPDATE of the leads from a VALUES list, one INSERT … SELECT of their history rows, one multi-row
INSERT of their decisions and one of their outbox rows.

With --experiment, a third of the batches route while an experiment runs on the first rule (its candidate
differs only in SLA, so both arms assign alike): what enrolling costs, beside the same run's plain batches.

    .venv/bin/python bench/routing_drain.py [--leads 20000] [--batch 250] [--experiment]
"""

import argparse
import io
import random
import time

from _setup import contention, machine, recreate_database, sized


def seed(leads: int) -> list[int]:
    from django.core.management import call_command

    from routing.demo.leads import synthetic_lead
    from routing.intake import leads_intake
    from routing.integrations.models import DeliveryTarget, EventType
    from routing.models import Source

    call_command("seed_demo", stdout=io.StringIO())
    DeliveryTarget.objects.create(
        name="crm", url="http://127.0.0.1:9/hook", secret="s" * 32, events=[EventType.LEAD_ASSIGNED]
    )
    source = Source.objects.order_by("id").first()
    rng = random.Random(7)
    ids = []
    for start in range(0, leads, 500):
        payloads = []
        for _ in range(min(500, leads - start)):
            lead = synthetic_lead(rng)
            lead.setdefault("email", f"{lead['lead_id']}@example.com")  # routable: the floor assigns every lead
            payloads.append(lead)
        _, created = leads_intake(source=source, payloads=payloads)
        ids += created
    return ids


def floor_route(batch: list[int], assignees: list[int], queue_id: int, rule_id: int) -> None:
    """The writes of routing `batch` (all assigned), as raw SQL."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM routing_lead WHERE id = ANY(%s) AND status = 'received' FOR UPDATE SKIP LOCKED",
            [batch],
        )
        ids = [row[0] for row in cursor.fetchall()]
        values = ", ".join(["(%s::bigint, %s::int)"] * len(ids))
        params = [v for i, lead_id in enumerate(ids) for v in (lead_id, assignees[i % len(assignees)])]
        cursor.execute(
            f"UPDATE routing_lead AS l SET status = 'assigned', assignee_id = v.assignee, queue_id = %s, "
            f"rule_id = %s, rule_version = 1, routed_at = now(), assigned_at = now() "
            f"FROM (VALUES {values}) AS v(id, assignee) WHERE l.id = v.id",
            [queue_id, rule_id, *params],
        )
        from routing.lead_store import _HISTORY_COPIED

        copied = ", ".join(f'"{c}"' for c in _HISTORY_COPIED)
        cursor.execute(
            f"INSERT INTO routing_historicallead ({copied}, history_date, history_type) "
            f"SELECT {copied}, now(), '~' FROM routing_lead WHERE id = ANY(%s)",
            [ids],
        )
        cursor.execute(
            "INSERT INTO audit_auditevent (action, occurred_at, actor_label, lead_id, rule_id, rule_version, "
            "inputs, outcome, data) SELECT 'routing.decision', now(), 'engine', id, %s, 1, "
            "jsonb_build_object('country', country), 'assigned', '{}'::jsonb FROM routing_lead WHERE id = ANY(%s)",
            [rule_id, ids],
        )
        cursor.execute(
            "INSERT INTO routing_outboxevent (target_id, event_type, lead_id, payload, status, attempts, replays, "
            "idempotency_key, created_at, next_attempt_at, last_error) "
            "SELECT (SELECT min(id) FROM routing_deliverytarget), 'lead.assigned', id, "
            "jsonb_build_object('lead', id), 'pending', 0, 0, gen_random_uuid(), now(), now(), '' "
            "FROM routing_lead WHERE id = ANY(%s)",
            [ids],
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--leads", type=int, default=sized(20000, 500), help="leads in all (half routed, half the floor)"
    )
    parser.add_argument("--batch", type=int, default=250, help="leads per routing task")
    parser.add_argument("--experiment", action="store_true", help="also route batches while an experiment runs")
    args = parser.parse_args()

    recreate_database()
    from django.db import connection

    from routing.engine import routing_rulesets
    from routing.models import QueueMembership, Rule
    from routing.services import leads_route

    ids = seed(args.leads)
    rulesets = routing_rulesets()
    rule = Rule.objects.exclude(production_version=None).order_by("priority").first()
    assignees = list(QueueMembership.objects.filter(queue_id=rule.queue_id).values_list("user_id", flat=True))
    batches = [ids[i : i + args.batch] for i in range(0, len(ids), args.batch)]
    leads_route(lead_ids=batches[0][:10], rulesets=rulesets)  # warm: connection, compiled rules, caches
    trial = experiment_start(rule) if args.experiment else None

    product = {"leads": 0, "wall": 0.0, "cpu": 0.0}
    floor = {"leads": 0, "wall": 0.0, "cpu": 0.0}
    experiment = {"leads": 0, "wall": 0.0, "cpu": 0.0}
    kinds = [product, floor, experiment] if trial else [product, floor]
    outcomes: dict[str, int] = {}
    for n, batch in enumerate(batches):
        target = kinds[n % len(kinds)]
        wall, cpu = time.perf_counter(), time.process_time()
        if target is not floor:
            for lead in leads_route(lead_ids=batch, rulesets=trial if target is experiment else rulesets):
                outcomes[lead.status] = outcomes.get(lead.status, 0) + 1
        else:
            floor_route(batch, assignees, rule.queue_id, rule.pk)
        target["wall"] += time.perf_counter() - wall
        target["cpu"] += time.process_time() - cpu
        target["leads"] += len(batch)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM routing_lead WHERE status = 'received'")
        (left,) = cursor.fetchone()
    rate = product["leads"] / product["wall"]
    floor_rate = floor["leads"] / floor["wall"]
    print(f"# Batched routing drain, one process ({machine()}; {contention()})")
    print(f"leads {args.leads}, batch {args.batch}, rules {len(rulesets.production)}; product outcomes {outcomes}")
    print(f"left received: {left}")
    print(
        f"product: {rate:,.0f} leads/s, {product['cpu'] / product['leads'] * 1e6:,.0f} µs CPU per lead "
        f"(this process; PostgreSQL's own time not counted)"
    )
    print(f"floor (raw SQL, same writes): {floor_rate:,.0f} leads/s, {floor['cpu'] / floor['leads'] * 1e6:,.0f} µs CPU")
    print(f"product / floor: {rate / floor_rate:.0%}")
    if trial:
        from routing.experiments.models import ExperimentLead

        enrolled = ExperimentLead.objects.count()
        experiment_rate = experiment["leads"] / experiment["wall"]
        print(
            f"with an experiment running: {experiment_rate:,.0f} leads/s, "
            f"{experiment['cpu'] / experiment['leads'] * 1e6:,.0f} µs CPU per lead, {enrolled} leads enrolled; "
            f"against plain batches: {experiment_rate / rate:.0%}"
        )


def experiment_start(rule):
    """An experiment on `rule`: a staging version that differs only in SLA, half the leads; the rule sets with it."""
    from django.utils import timezone

    from routing.engine import routing_rulesets
    from routing.experiments.models import Experiment
    from routing.models import RuleVersion

    live = rule.production_version
    fields = {
        f.name: getattr(live, f.name) for f in RuleVersion._meta.concrete_fields if f.name not in ("id", "number")
    }
    candidate = RuleVersion.objects.create(**{**fields, "number": live.number + 1, "sla_minutes": live.sla_minutes + 1})
    rule.staging_version = candidate
    rule.save(update_fields=["staging_version"])
    Experiment.objects.create(
        rule=rule,
        candidate=candidate,
        baseline=live,
        percent=50,
        seed="bench",
        started_by=rule.owner,
        started_at=timezone.now(),
    )
    return routing_rulesets()


if __name__ == "__main__":
    main()
