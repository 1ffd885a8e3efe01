"""The compiled rule set is cached per process and recompiled when any rule change commits."""

import threading

import pytest
from django.db import connection, transaction

from routing.engine import production_ruleset
from tests.factories import RuleFactory, case, promote_live

FR = {"field": "country", "op": "eq", "value": "FR"}
GB = {"field": "country", "op": "eq", "value": "GB"}


@pytest.mark.django_db
def test_the_compiled_rules_are_reused_until_a_rule_changes():
    rule = RuleFactory(condition=FR)
    first = production_ruleset()
    assert production_ruleset() is first
    promote_live(rule, condition=GB, test_cases=[case("GB", rule.queue.name, country="GB")])
    assert production_ruleset() is not first
    assert production_ruleset().evaluate({"country": "GB"}).rule.version == 2


@pytest.mark.django_db(transaction=True)
def test_a_rule_change_that_commits_late_is_still_picked_up():
    rule = RuleFactory(condition=FR)
    edited, release = threading.Event(), threading.Event()

    def slow_edit():
        try:
            with transaction.atomic():
                # promoted (updated_at set) now, committed only later
                promote_live(rule, condition=GB, test_cases=[case("GB", rule.queue.name, country="GB")])
                edited.set()
                release.wait(10)
        finally:
            connection.close()

    other_saved = threading.Event()

    def another_edit():  # a second person saves another rule meanwhile (it waits for the first to commit)
        try:
            RuleFactory(condition={"field": "country", "op": "eq", "value": "DE"}, priority=999)
            other_saved.set()
        finally:
            connection.close()

    editor = threading.Thread(target=slow_edit)
    editor.start()
    assert edited.wait(10)
    other = threading.Thread(target=another_edit)
    other.start()
    other_saved.wait(2)  # committed already if nothing serialises rule writes; blocked otherwise
    cached = production_ruleset()  # a worker compiles while the first edit is still uncommitted
    assert cached.evaluate({"country": "GB"}).rule is None
    release.set()
    editor.join()
    other.join()
    assert production_ruleset().evaluate({"country": "GB"}).rule.id == rule.id
