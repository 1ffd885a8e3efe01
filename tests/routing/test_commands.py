import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from audit.models import AuditAction, AuditEvent
from routing.management.commands.run_demo import demo_workers
from routing.models import Source

pytestmark = pytest.mark.django_db


def test_create_source_prints_the_token_last_and_stores_only_its_hash():
    out = io.StringIO()
    call_command("create_source", "chat-widget", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    source = Source.objects.get(name="chat-widget")
    assert len(token) >= 40
    assert source.token_hash == Source.hash_token(token) and token not in source.token_hash
    assert AuditEvent.objects.filter(action=AuditAction.SOURCE_CREATED).count() == 1


def test_create_source_refuses_a_duplicate_name():
    call_command("create_source", "web", stdout=io.StringIO())
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_source", "web", stdout=io.StringIO())
    assert Source.objects.count() == 1


def test_seed_demo_is_repeatable_and_loads_the_seed_rule():
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    from routing.models import Rule

    seed = Rule.objects.get(name="MQL to AE")
    assert seed.stage == "production" and seed.queue.name == "Account Executives"
    assert seed.condition["all"][1] == {"field": "engagement_score", "op": "gt", "value": 50}


def test_the_demo_gives_routing_the_edges_and_replays_workers_of_their_own():
    def served(command):
        (concurrency,) = [arg for arg in command if arg.startswith("--concurrency=")]
        return set(command[command.index("-Q") + 1].split(",")), concurrency

    workers = {name: served(command) for name, command in demo_workers(["celery"]).items()}
    lanes = settings.HANDOFF_QUEUES
    assert workers == {
        "routing worker": ({lanes["live"], lanes["bulk"], settings.CELERY_TASK_DEFAULT_QUEUE}, "--concurrency=2"),
        "edges worker": ({lanes["enrichment"], lanes["deliveries"]}, "--concurrency=2"),
        # One replay at a time, never in a slot enrichment or deliveries wait for.
        "replays worker": ({lanes["replays"]}, "--concurrency=1"),
    }
