"""/api/schema/ as the tools people already run read it: a valid OpenAPI 3.1 document, clean under
`@redocly/cli lint` (recommended rules, docs/redocly.yaml), that every live answer of the API matches, and from
which openapi-python-client generates a client that runs the README's API examples against a live server."""

import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from openapi_spec_validator import OpenAPIV31SpecValidator

from exceptions.incidents import Cause
from exceptions.models import ExceptionItem, ExceptionReason, ExceptionStatus
from exceptions.services import exception_open
from routing.models import Lead, LeadStatus, Rule, RuleStage
from tests.api.openapi_check import CheckedClient, ResponseChecker, served_document
from tests.api.test_schema_fuzz import ID_KINDS  # which kind of object each path's `{id}` names
from tests.conftest import wait_until
from tests.factories import (
    AccountFactory,
    LeadFactory,
    LeadPayloadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
    case,
    open_exception,
    personal_token,
    promote_live,
)

ROOT = Path(__file__).resolve().parents[2]
REDOCLY = "@redocly/cli@2.77.0"  # pinned: a new release may add rules to `recommended`
LINT_CONFIG = ROOT / "docs" / "redocly.yaml"
NO_SUCH_ID = 2**31 - 1


@pytest.fixture(scope="module")
def document(django_db_setup, django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        return served_document()


def all_keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from all_keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_keys(value)


def test_document_is_valid_openapi_31(document):
    assert document["openapi"] == "3.1.0"
    assert [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()] == []
    assert "nullable" not in set(all_keys(document)), "OpenAPI 3.1 has no `nullable`: null is a type"
    page = document["components"]["schemas"]["PaginatedExceptionItemList"]["properties"]
    assert page["next"]["type"] == page["previous"]["type"] == ["string", "null"]


def test_document_passes_redocly_lint_with_the_recommended_rules(document, tmp_path):
    npx = shutil.which("npx")
    assert npx, "npx is not on PATH: install Node.js 20 or later with npm (CI has both)"
    assert yaml.safe_load(LINT_CONFIG.read_text())["extends"] == ["recommended"]
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    env = {
        **os.environ,
        "CI": "true",  # no prompt, no colours
        "npm_config_yes": "true",
        "npm_config_update_notifier": "false",
        "REDOCLY_TELEMETRY": "off",
        "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    }
    run = subprocess.run(
        [npx, "--yes", REDOCLY, "lint", "openapi.json", "--config", str(LINT_CONFIG), "--format=json"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.stdout.strip(), f"redocly printed nothing (exit {run.returncode}):\n{run.stderr[-3000:]}"
    report = json.loads(run.stdout[run.stdout.index("{") :])
    problems = [f"{p['severity']} {p['ruleId']}: {p['message']}" for p in report["problems"]]
    assert problems == [] and report["totals"]["errors"] == 0, problems
    assert run.returncode == 0


def test_batch_body_is_required_as_the_endpoint_requires_it(document, api_world):
    assert document["paths"]["/api/v1/leads/batch/"]["post"]["requestBody"]["required"] is True
    client = CheckedClient(ResponseChecker(document), token=api_world.source_token)
    # No body at all, declared as JSON (Django's client leaves out the header of an empty body otherwise).
    answer = client.generic("POST", "/api/v1/leads/batch/", CONTENT_TYPE="application/json")
    assert answer.status_code == 400 and answer.json()["detail"].startswith("Malformed JSON: "), answer.json()


def test_exceptions_origin_filter_is_documented_as_it_answers(document, api_world):
    """`origin` (like `queue` and `assignee`) is an id or a name (the schema said: an integer); one that names
    nothing answers 400 naming the parameter (it said "Select a valid choice"), as the parameter documents."""
    parameters = document["paths"]["/api/v1/exceptions/"]["get"]["parameters"]
    origin = next(p for p in parameters if p["name"] == "origin")
    assert origin["schema"]["anyOf"] == [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}]
    assert "One that names nothing answers 400" in origin["description"]
    client = CheckedClient(ResponseChecker(document), token=api_world.person_token)
    source_id = Lead.objects.get(pk=api_world.ids["leads"][0]).origin_id
    assert client.get("/api/v1/exceptions/", {"origin": source_id}).json()["count"] == 6
    assert client.get("/api/v1/exceptions/", {"origin": "fuzz-form"}).json()["count"] == 6
    for value, message in (
        (95, "Nothing has the id 95 here: give the id or exact name of one that exists."),
        ("no-such-source", "Nothing is named 'no-such-source' here: give its id or its exact name."),
    ):
        refused = client.get("/api/v1/exceptions/", {"origin": value})
        assert (refused.status_code, refused.json()) == (400, {"origin": [message]})


def test_the_exception_lists_bounds_are_in_the_schema_as_the_server_enforces_them(document, api_world):
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/api/v1/exceptions/"]["get"]["parameters"]}
    assert (parameters["q"]["minLength"], parameters["q"]["maxLength"]) == (3, 200)
    assert (parameters["due_within"]["minimum"], parameters["due_within"]["maximum"]) == (0, 7 * 24 * 60)
    client = CheckedClient(ResponseChecker(document), token=api_world.person_token)
    for outside in ({"q": "ab"}, {"due_within": -1}, {"due_within": 7 * 24 * 60 + 1}):
        assert client.get("/api/v1/exceptions/", outside).status_code == 400, outside


def test_first_and_last_pages_say_there_is_no_page_before_or_after(document, api_world):
    client = CheckedClient(ResponseChecker(document), token=api_world.person_token)
    first = client.get("/api/v1/exceptions/", {"page_size": 2, "status": list(ExceptionStatus)}).json()
    assert first["previous"] is None and first["next"]
    last_page = -(-first["count"] // 2)
    last = client.get("/api/v1/exceptions/", {"page_size": 2, "status": list(ExceptionStatus), "page": last_page})
    assert last.json()["next"] is None and last.json()["previous"]
    only = client.get("/api/v1/incidents/").json()
    assert only["next"] is None and only["previous"] is None


def test_every_operation_answers_as_documented(document, api_world, settings, monkeypatch):
    """Drives every operation: its success, the errors every operation shares (401, 403, 404, 400, 415) and
    the ones of its own (409 conflicts, 413, 429); each answer's status and body are checked against the
    schema as it arrives."""
    checker = ResponseChecker(document)
    person = CheckedClient(checker, token=api_world.person_token)
    source = CheckedClient(checker, token=api_world.source_token)
    world = _more_objects(api_world)
    colleague = UserFactory(username="colleague")
    colleague.groups.add(Group.objects.get(name="rule_owners"))
    world["colleague"] = CheckedClient(checker, token=personal_token(colleague))

    _drive_intake(source, person, world, settings, monkeypatch)
    _drive_exceptions(person, world)
    _drive_incidents(person, world)
    _drive_rules(person, world)
    _drive_approval(person, world, settings)
    _drive_experiments(person, world)
    _drive_accounts(person, world)
    _drive_people(person, world)
    _drive_shared_errors(checker, person, source, world)
    for method, path in checker.operations():
        operation = document["paths"][path][method.lower()]
        if not _token_protected(operation):
            assert operation["operationId"] in SIGNED, f"{method} {path}: takes no token; add its driver to SIGNED"
            SIGNED[operation["operationId"]](CheckedClient(checker), world)

    operations = checker.operations()
    succeeded = {(a.method, a.path) for a in checker.seen if 200 <= a.status < 300}
    assert operations - succeeded == set(), "operations never driven to a success"
    for method, path in operations:
        statuses = {a.status for a in checker.seen if (a.method, a.path) == (method, path)}
        operation = document["paths"][path][method.lower()]
        expected = {401}
        if _token_protected(operation):
            expected.add(403)
            if "{" in path and method != "PUT":
                expected.add(404)
            if "requestBody" in operation:
                expected |= {400, 415}
        assert expected <= statuses, f"{method} {path}: never answered {sorted(expected - statuses)}"
    conflicts = {(a.method, a.path) for a in checker.seen if a.status == 409}
    assert {(m, p) for m, p in operations if "409" in document["paths"][p][m.lower()]["responses"]} == conflicts


def _more_objects(world) -> dict:
    """Beyond the fuzz test's world: a rule with two production versions (so it rolls back), an account."""
    rule = Rule.objects.get(pk=world.ids["rules"][0])
    twice = RuleFactory(owner=rule.owner, queue=rule.queue, stage=RuleStage.PRODUCTION)
    promote_live(twice, priority=twice.priority + 1)
    return {
        "rule": rule,
        "rolls_back": twice,
        "draft": Rule.objects.get(pk=world.ids["rules"][2]),
        "staging": Rule.objects.get(pk=world.ids["rules"][1]),
        "account": AccountFactory(account_id="ACC-1", name="Acme Ltd", domains=["acme.example"]),
        "items": list(ExceptionItem.objects.filter(pk__in=world.ids["exceptions"]).order_by("pk")),
        "ids": world.ids,
    }


def _drive_intake(source, person, objects, settings, monkeypatch):
    payload = LeadPayloadFactory()
    created = source.post_json("/api/v1/leads/", payload)
    assert created.status_code == 202
    assert source.post_json("/api/v1/leads/", payload).status_code == 200  # sent again: the same lead
    assert source.post_json("/api/v1/leads/", {"lead_id": "x", "email": "not-an-email"}).status_code == 400
    assert source.post("/api/v1/leads/", data="{", content_type="application/json").status_code == 400
    too_large = {"lead_id": "big", "attributes": {"note": "x" * settings.HANDOFF["MAX_BODY_BYTES"]}}
    assert source.post_json("/api/v1/leads/", too_large).status_code == 413
    batch = [LeadPayloadFactory(), {"lead_id": "bad", "email": "nope"}]
    assert [r["status"] for r in source.post_json("/api/v1/leads/batch/", batch).json()["results"]] == [
        "accepted",
        "invalid",
    ]
    assert source.post_json("/api/v1/leads/batch/", [LeadPayloadFactory()] * 501).status_code == 400
    handoff = settings.HANDOFF
    settings.HANDOFF = {**handoff, "BULK_BACKLOG_LIMIT": 0}  # leads wait for routing: the bulk lane is full
    monkeypatch.setattr("routing.intake._waiting_cache", None)  # counted at most once a second per process
    assert source.post_json("/api/v1/leads/batch/", [LeadPayloadFactory()]).status_code == 429
    settings.HANDOFF = handoff
    assert source.get("/api/v1/schema-versions/").json()["source"]["default_version"] == "2"
    assert person.get("/api/v1/schema-versions/").json()["newest_live"] == "2"
    lead_id = created.json()["id"]
    assert source.get(f"/api/v1/leads/{lead_id}/").status_code == 200
    assert person.get(f"/api/v1/leads/{lead_id}/").status_code == 200
    queue = objects["rule"].queue
    assign = {"queue": queue.pk, "assignee": objects["rule"].owner.username, "reason": "Key account"}
    assert person.post_json(f"/api/v1/leads/{lead_id}/assign/", assign).status_code == 200
    nobody = {**assign, "assignee": "nobody-by-this-name"}
    assert person.post_json(f"/api/v1/leads/{lead_id}/assign/", nobody).status_code == 400


def _drive_exceptions(person, objects):
    first, second, acknowledged, resolved = objects["items"][:4]
    assert person.get("/api/v1/exceptions/").status_code == 200
    assert person.get("/api/v1/exceptions/", {"status": "bogus"}).status_code == 400
    assert person.get("/api/v1/exceptions/", {"page": 99}).status_code == 404
    assert person.get(f"/api/v1/exceptions/{first.pk}/").status_code == 200
    assert person.post(f"/api/v1/exceptions/{first.pk}/acknowledge/").status_code == 200
    assert person.post(f"/api/v1/exceptions/{acknowledged.pk}/acknowledge/").status_code == 409
    assert person.post_json(f"/api/v1/exceptions/{first.pk}/resolve/", {"resolution": "spam"}).status_code == 400
    spam = {"resolution": "spam", "note": "A bot filled the form."}
    assert person.post_json(f"/api/v1/exceptions/{first.pk}/resolve/", spam).status_code == 200
    assert person.post_json(f"/api/v1/exceptions/{resolved.pk}/resolve/", spam).status_code == 409
    fix = {"lead": {"email": "fixed@acme.example"}}
    assert person.post_json(f"/api/v1/exceptions/{second.pk}/reroute/", {"lead": {"email": "x"}}).status_code == 400
    assert person.post_json(f"/api/v1/exceptions/{second.pk}/reroute/", fix).status_code == 200
    assert person.post_json(f"/api/v1/exceptions/{resolved.pk}/reroute/", fix).status_code == 409
    spare = open_exception()
    bulk = {"action": "acknowledge", "ids": [spare.pk]}
    assert person.post_json("/api/v1/exceptions/bulk/", bulk).json() == {"done": 1, "skipped": []}
    nothing = {"action": "acknowledge", "filter": {"origin": NO_SUCH_ID}}
    assert person.post_json("/api/v1/exceptions/bulk/", nothing).status_code == 400


def _drive_incidents(person, objects):
    incidents = person.get("/api/v1/incidents/", {"status": "open"}).json()["results"]
    assert person.get("/api/v1/incidents/", {"status": "bogus"}).status_code == 400
    incident = incidents[0]["id"]
    assert person.get(f"/api/v1/incidents/{incident}/").status_code == 200
    owner = objects["rule"].owner.username
    assert person.post_json(f"/api/v1/incidents/{incident}/assign/", {"assignee": owner}).status_code == 200
    assert person.post_json(f"/api/v1/incidents/{incident}/assign/", {"assignee": "nobody-here"}).status_code == 400
    assert person.post(f"/api/v1/incidents/{incident}/acknowledge/").status_code == 200
    assert person.post(f"/api/v1/incidents/{incident}/acknowledge/").status_code == 409
    resolve = {"code": "fixed_upstream", "note": "CRM back"}
    assert person.post_json(f"/api/v1/incidents/{incident}/resolve/", resolve).status_code == 200
    assert person.post_json(f"/api/v1/incidents/{incident}/resolve/", resolve).status_code == 409
    assert person.post_json(f"/api/v1/incidents/{incident}/assign/", {"assignee": owner}).status_code == 409


def _drive_rules(person, objects):
    rule, draft, staging, twice = objects["rule"], objects["draft"], objects["staging"], objects["rolls_back"]
    assert person.get("/api/v1/rules/").status_code == 200
    assert person.get(f"/api/v1/rules/{rule.pk}/").status_code == 200
    assert person.post_json(f"/api/v1/rules/{draft.pk}/test/").status_code == 200
    assert person.post_json(f"/api/v1/rules/{draft.pk}/test/", {"test_cases": "many"}).status_code == 400
    assert person.post_json(f"/api/v1/rules/{draft.pk}/promote/", {"to": "staging"}).status_code == 200
    assert person.post_json(f"/api/v1/rules/{staging.pk}/promote/", {"to": "nowhere"}).status_code == 400
    assert person.post_json(f"/api/v1/rules/{twice.pk}/rollback/", {"comment": "Too eager"}).status_code == 200
    assert person.post_json(f"/api/v1/rules/{staging.pk}/rollback/").status_code == 400
    backup = _call(person, "PATCH", f"/api/v1/rules/{rule.pk}/", body={"backup_owner": "colleague"})
    assert (backup.status_code, backup.json()["backup_owner"]) == (200, "colleague")
    itself = _call(person, "PATCH", f"/api/v1/rules/{rule.pk}/", body={"backup_owner": rule.owner.username})
    assert itself.status_code == 400
    assert person.get(f"/api/v1/rules/{rule.pk}/targets/").status_code == 200
    targets = _call(person, "PATCH", f"/api/v1/rules/{rule.pk}/targets/", body={"target_sla_adherence": 95})
    assert (targets.status_code, targets.json()["target_sla_adherence"]) == (200, "95.00")
    out_of_range = _call(person, "PATCH", f"/api/v1/rules/{rule.pk}/targets/", body={"target_exception_rate": 101})
    assert out_of_range.status_code == 400
    busy = person.post_json("/api/v1/rules/replay/", {"limit": 100})  # the world's queued replay is theirs
    assert busy.status_code == 429 and busy["Retry-After"] == "30"
    replay = objects["colleague"].post_json("/api/v1/rules/replay/", {"limit": 100})
    assert replay.status_code == 202
    assert person.get(f"/api/v1/rules/replay/{replay.json()['id']}/").status_code == 200
    assert person.post_json("/api/v1/rules/replay/", {"limit": 0}).status_code == 400
    lead = {"lead_id": "preview", "email": "jo@acme.example", "country": "GB"}
    assert person.post_json("/api/v1/rules/preview/", {"lead": lead}).status_code == 200
    assert person.post_json("/api/v1/rules/preview/", {"lead": "jo"}).status_code == 400


def _drive_experiments(person, objects):
    """The world's running experiment on the staging rule: a second start conflicts (409); stop it (200, then
    409); start one (201); keep production (200, then 409)."""
    staging, running = objects["staging"], objects["ids"]["experiments"][1]
    assert person.get("/api/v1/experiments/").status_code == 200
    assert person.get(f"/api/v1/experiments/{running}/").status_code == 200
    body = {"percent": 50, "max_leads": 100, "criteria": {"route_latency": -50}}
    assert person.post_json(f"/api/v1/rules/{staging.pk}/experiments/", body).status_code == 409
    assert person.post_json(f"/api/v1/experiments/{running}/stop/").status_code == 200
    assert person.post_json(f"/api/v1/experiments/{running}/stop/").status_code == 409
    started = person.post_json(f"/api/v1/rules/{staging.pk}/experiments/", body)
    assert started.status_code == 201
    decide = f"/api/v1/experiments/{started.json()['id']}/decide/"
    assert person.post_json(decide, {"decision": "keep", "note": "No change"}).status_code == 200
    assert person.post_json(decide, {"decision": "keep"}).status_code == 409


def _drive_accounts(person, objects):
    account = objects["account"]
    only = person.get("/api/v1/accounts/").json()
    assert only["previous"] is None and only["next"] is None
    assert person.get(f"/api/v1/accounts/{account.account_id}/").status_code == 200
    body = {"name": "Globex", "domains": ["globex.example"], "country": "US"}
    assert person.put("/api/v1/accounts/ACC-2/", json.dumps(body), content_type="application/json").status_code == 201
    assert person.put("/api/v1/accounts/ACC-2/", json.dumps(body), content_type="application/json").status_code == 200
    bad = json.dumps({**body, "country": "Nowhere"})
    assert person.put("/api/v1/accounts/ACC-2/", bad, content_type="application/json").status_code == 400
    assert person.delete("/api/v1/accounts/ACC-2/").status_code == 204
    assert person.post_json("/api/v1/accounts/match/", {"email": "jo@acme.example"}).status_code == 200
    assert person.post_json("/api/v1/accounts/match/", {"email": "jo"}).status_code == 400


def _drive_people(person, objects):
    path = "/api/v1/people/fuzz-owner/availability/"
    assert person.get(path).json()["available_now"] is True
    week = {"timezone": "Europe/Berlin", "hours": {"mon": [["09:00", "17:00"]]}, "time_off": []}
    assert person.put(path, json.dumps(week), content_type="application/json").status_code == 200
    bad = json.dumps({**week, "hours": {"mon": [["09:00", "25:00"]]}})
    assert person.put(path, bad, content_type="application/json").status_code == 400
    assert objects["colleague"].put(path, json.dumps(week), content_type="application/json").status_code == 403
    calendar = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nEND:VCALENDAR\r\n"
    upload = SimpleUploadedFile("off.ics", calendar, content_type="text/calendar")
    assert person.post(path + "ical/", {"file": upload}).status_code == 200
    assert person.post_json(path + "ical/", {"url": "ftp://example.com/cal.ics"}).status_code == 400
    queue = objects["rule"].queue.pk
    assert person.get(f"/api/v1/queues/{queue}/distribution/?period=week&date=2026-12-01").status_code == 200
    assert person.get(f"/api/v1/queues/{queue}/distribution/?start=2026-12-09&end=2026-12-01").status_code == 400


def _drive_approval(person, objects, settings):
    """Second-person approval for production, switched on for this call: a staging version approved (200),
    and approved again by the same person (400)."""
    before = settings.HANDOFF
    settings.HANDOFF = {**before, "PRODUCTION_APPROVAL": True}
    staging = objects["staging"]
    assert (
        person.post_json(f"/api/v1/rules/{staging.pk}/approve/", {"comment": "Replay looks right"}).status_code == 200
    )
    assert person.post_json(f"/api/v1/rules/{staging.pk}/approve/").status_code == 400
    settings.HANDOFF = before


def _drive_shared_errors(checker, person, source, objects):
    """What every operation answers before doing its work: no token (401), the wrong kind of caller (403), an
    object that does not exist (404), a body that is not JSON (415) or not of the right shape (400)."""
    anonymous = CheckedClient(checker)
    outsider = CheckedClient(checker, token=personal_token(UserFactory(username="no-console-groups")))
    for method, template in sorted(checker.operations()):
        operation = checker.document["paths"][template][method.lower()]
        if not _token_protected(operation):
            continue  # a signed webhook: SIGNED drives it
        caller, wrong_caller = (source, outsider) if _for_sources(template) else (person, source)
        real = _fill(template, _real_id(template, objects))
        for client, expected in ((anonymous, 401), (wrong_caller, 403)):
            assert _call(client, method, real).status_code == expected, f"{method} {real}"
        if "{" in template and method != "PUT":  # a PUT creates what is missing
            missing = _fill(
                template, "NO-SUCH" if "{account_id}" in template or "{username}" in template else NO_SUCH_ID
            )
            body = VALID_BODIES.get(operation["operationId"], {})
            assert _call(caller, method, missing, body=body).status_code == 404, f"{method} {missing}"
        if "requestBody" in operation:
            as_text = _call(caller, method, real, raw="lead", content_type="text/plain")
            assert as_text.status_code == 415, f"{method} {real}"
            assert _call(caller, method, real, body="not an object").status_code == 400, f"{method} {real}"


def _token_protected(operation: dict) -> bool:
    return any("tokenAuth" in requirement for requirement in operation.get("security", []))


def _drive_pagerduty_webhook(anonymous, objects):
    """PagerDuty calls back signed with an alert channel's secret, and no token: an event Handoff does not act
    on (200), an unsigned call (401), a signed body that is no v3 webhook (400)."""
    from exceptions.alert_inbound import SIGNATURE_HEADER, signature_of
    from exceptions.models import AlertChannel, AlertChannelKind

    AlertChannel.objects.create(
        queue=objects["rule"].queue, name="PagerDuty", kind=AlertChannelKind.PAGERDUTY, routing_key="R1", secret="pd"
    )
    header = "HTTP_" + SIGNATURE_HEADER.upper().replace("-", "_")
    path = "/api/v1/integrations/pagerduty/"
    event = json.dumps({"event": {"event_type": "incident.triggered", "data": {"incident_key": "x"}}}).encode()
    signed = anonymous.post(path, event, content_type="application/json", **{header: signature_of("pd", event)})
    assert signed.json()["outcome"] == "ignored"
    assert anonymous.post(path, event, content_type="application/json").status_code == 401
    other = b'{"messages": []}'
    assert (
        anonymous.post(path, other, content_type="application/json", **{header: signature_of("pd", other)}).status_code
        == 400
    )


def _drive_delivery_ack(anonymous, objects):
    """A receiver confirms a delivery signed with its target's secret (Standard Webhooks), and no token: processed
    (200), the same again (200), failed afterwards (409), unsigned (401), a target that does not call back (403),
    no such delivery (404), a signed body of the wrong shape (400)."""
    import time

    from routing.integrations.models import OutboxEvent
    from routing.integrations.signing import standard_headers

    def signed(event, body: dict | str):
        raw = (body if isinstance(body, str) else json.dumps(body)).encode()
        headers = standard_headers(
            msg_id=str(event.idempotency_key), timestamp=int(time.time()), body=raw, secrets=[event.target.secret]
        )
        meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
        return anonymous.post(f"/api/v1/deliveries/{event.pk}/ack/", raw, content_type="application/json", **meta)

    callback, sync = OutboxEvent.objects.select_related("target").filter(pk__in=objects["ids"]["deliveries"])
    if not callback.target.confirms_by_callback:
        callback, sync = sync, callback
    processed = {"status": "processed", "reference": "CRM-1"}
    assert signed(callback, processed).json()["state"] == "confirmed"
    assert signed(callback, processed).json()["repeated"] is True
    assert signed(callback, {"status": "failed", "message": "lost"}).status_code == 409
    unsigned = anonymous.post(f"/api/v1/deliveries/{callback.pk}/ack/", processed, content_type="application/json")
    assert unsigned.status_code == 401
    assert signed(sync, processed).status_code == 403
    missing = anonymous.post(f"/api/v1/deliveries/{NO_SUCH_ID}/ack/", processed, content_type="application/json")
    assert missing.status_code == 404
    assert signed(callback, {"status": "maybe"}).status_code == 400
    assert signed(callback, "{").status_code == 400


# Operations that take no token, each authenticated its own way, with what drives them.
SIGNED = {
    "v1_integrations_pagerduty_create": _drive_pagerduty_webhook,
    "v1_deliveries_ack_create": _drive_delivery_ack,
}

# Bodies these operations validate before they look the object up, so that a missing one answers 404.
VALID_BODIES = {
    "v1_incidents_assign_create": {"assignee": "fuzz-owner"},
    "v1_incidents_resolve_create": {"code": "fixed_upstream", "note": "CRM back"},
}


def _for_sources(template: str) -> bool:
    """Capture sources post leads and read their own; console people use everything else."""
    return template.startswith(("/api/v1/leads/", "/api/v1/schema-versions/")) and not template.endswith("/assign/")


def _real_id(template: str, objects):
    """An object each kind of `{id}` names, so that the error found is the one under test, not a 404."""
    if "{account_id}" in template:
        return objects["account"].account_id
    if "{username}" in template:
        return "fuzz-owner"
    kind = next((kind for prefix, kind in ID_KINDS if template.startswith(prefix)), None)
    return objects["ids"][kind][0] if kind else None


def _fill(template: str, value) -> str:
    if "{" not in template:
        return template
    head, _, rest = template.partition("{")
    return f"{head}{value}{rest.partition('}')[2]}"


def _call(client, method: str, path: str, body=None, raw=None, content_type="application/json"):
    if method in ("GET", "DELETE"):
        return client.generic(method, path)
    data = raw if raw is not None else ("" if body is None else json.dumps(body))
    return client.generic(method, path, data=data, content_type=content_type)


# The generated client ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def generated_client(django_db_setup, django_db_blocker, tmp_path_factory):
    """openapi-python-client's package for /api/schema/, generated once per session outside the repository,
    and importable as `handoff_api_client`."""
    with django_db_blocker.unblock():
        document = served_document()
    where = tmp_path_factory.mktemp("generated-client")
    (where / "openapi.json").write_text(json.dumps(document))
    (where / "config.yaml").write_text("post_hooks: []\n")  # no formatter run over the generated code
    generator = Path(sys.executable).with_name("openapi-python-client")
    run = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            "openapi.json",
            "--meta",
            "none",
            "--output-path",
            "handoff_api_client",
            "--config",
            "config.yaml",
        ],
        cwd=where,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(where))
    try:
        import handoff_api_client

        yield handoff_api_client
    finally:
        sys.path.remove(str(where))
        for name in [name for name in sys.modules if name.split(".")[0] == "handoff_api_client"]:
            del sys.modules[name]


def command_token(*args) -> str:
    """Run a README command that prints a token on its last line; the token."""
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def generated_operations(package) -> dict:
    """The generated client's operation modules by operationId (`leads_create.sync_detailed(...)`)."""
    v1 = importlib.import_module(f"{package.__name__}.api.v1")
    return {
        module.name: importlib.import_module(f"{v1.__name__}.{module.name}")
        for module in pkgutil.iter_modules(v1.__path__)
    }


@pytest.mark.celery_worker
def test_generated_client_runs_the_readme_api_examples(
    generated_client, live_server, celery_worker, ops_person, rule_owner
):
    """The README's Intake, Exceptions and Rules API examples, sent by the generated client to a live server whose
    leads and replays a real worker routes and runs; every answer arrives parsed as the schema's model."""
    models = importlib.import_module(f"{generated_client.__name__}.models")
    v1 = generated_operations(generated_client)
    Client = generated_client.AuthenticatedClient
    source = Client(base_url=live_server.url, token=command_token("create_source", "website-form"), prefix="Token")
    olga = Client(base_url=live_server.url, token=command_token("create_api_token", "olga"), prefix="Token")
    rowan = Client(base_url=live_server.url, token=command_token("create_api_token", "rowan"), prefix="Token")

    # Intake API: one lead (202, then 200 for the same lead_id), a field error, a batch.
    readme_lead = {
        "lead_id": "form-123",
        "email": "jo@acme.example",
        "lifecycle_stage": "mql",
        "engagement_score": 72,
        "company_size": 120,
        "country": "GB",
        "attributes": {"form": "demo"},
    }
    accepted = v1["leads_create"].sync_detailed(client=source, body=models.Lead.from_dict(readme_lead))
    assert accepted.status_code == 202
    lead = accepted.parsed
    assert (lead.lead_id, lead.status, lead.url) == (
        "form-123",
        "received",
        f"{live_server.url}/api/v1/leads/{lead.id}/",
    )
    again = v1["leads_create"].sync_detailed(client=source, body=models.Lead.from_dict(readme_lead))
    assert again.status_code == 200 and again.parsed.id == lead.id
    bad_email = models.Lead.from_dict({"lead_id": "form-124", "email": "jo at acme"})
    invalid = v1["leads_create"].sync_detailed(client=source, body=bad_email)
    assert invalid.status_code == 400
    assert invalid.parsed.additional_properties == {"email": ["Enter a valid email address."]}
    batch = [
        models.Lead.from_dict({"lead_id": "form-125", "email": "ann@acme.example"}),
        models.Lead.from_dict(readme_lead),
    ]
    results = v1["leads_batch_create"].sync(client=source, body=batch).results
    assert [(r.lead_id, r.status) for r in results] == [("form-125", "accepted"), ("form-123", "duplicate")]

    # The worker routes them: no rule is in production, so each waits in Triage as an exception.
    def routed():
        return all(
            v1["leads_retrieve"].sync(pk, client=source).status == "exception" for pk in (lead.id, results[0].id)
        )

    wait_until(routed, what="the worker to route both leads")
    assert [e.reason for e in v1["leads_retrieve"].sync(lead.id, client=source).exceptions] == ["no_matching_rule"]

    # Exceptions API: the list by queue and origin names, one item, acknowledge (twice: 409), resolve, bulk.
    page = v1["v1_exceptions_list"].sync(client=olga, queue="Triage", origin="website-form")
    assert sorted(item.lead.lead_id for item in page.results) == ["form-123", "form-125"]
    assert page.previous is None and page.next_ is None  # null on the only page (`next_`: a Python builtin)
    item = next(item for item in page.results if item.lead.lead_id == "form-123")
    assert v1["v1_exceptions_retrieve"].sync(item.id, client=olga).id == item.id
    acknowledged = v1["v1_exceptions_acknowledge_create"].sync_detailed(item.id, client=olga)
    assert acknowledged.status_code == 200 and acknowledged.parsed.acknowledged_by == "olga"
    twice = v1["v1_exceptions_acknowledge_create"].sync_detailed(item.id, client=olga)
    assert twice.status_code == 409 and twice.parsed.detail.startswith(f"Cannot acknowledge item #{item.id}")
    duplicate = models.Resolve.from_dict({"resolution": "duplicate", "note": "Same person as form-125."})
    resolved = v1["v1_exceptions_resolve_create"].sync_detailed(item.id, client=olga, body=duplicate)
    assert resolved.status_code == 200 and resolved.parsed.status == "resolved"
    # Incidents: the CRM was down, three deliveries failed; acknowledged, assigned, resolved (twice: 409).
    crm_down = Cause("delivery_failed:0:HTTP 5xx", "Deliveries to CRM fail: HTTP 5xx")
    for _ in range(3):
        exception_open(
            lead=LeadFactory(status=LeadStatus.EXCEPTION), reason=ExceptionReason.DELIVERY_FAILED, cause=crm_down
        )
    (incident,) = v1["v1_incidents_list"].sync(client=olga, status=[models.V1IncidentsListStatusItem.OPEN]).results
    assert v1["v1_incidents_acknowledge_create"].sync(incident.id, client=olga).done == 3
    to_olga = models.IncidentAssign.from_dict({"assignee": "olga"})
    assert v1["v1_incidents_assign_create"].sync(incident.id, client=olga, body=to_olga).incident.assignee == "olga"
    fixed = models.IncidentResolve.from_dict({"code": "fixed_upstream", "note": "CRM back"})
    assert v1["v1_incidents_resolve_create"].sync(incident.id, client=olga, body=fixed).incident.status == "resolved"
    late = v1["v1_incidents_resolve_create"].sync_detailed(incident.id, client=olga, body=fixed)
    assert late.status_code == 409 and late.parsed.incident.id == incident.id
    # Bulk: one more failed delivery, outside any incident, resolved by the README's filter.
    exception_open(lead=LeadFactory(status=LeadStatus.EXCEPTION), reason=ExceptionReason.DELIVERY_FAILED)
    by_filter = models.Bulk.from_dict(
        {"action": "resolve", "filter": {"reason": "delivery_failed"}, "code": "fixed_upstream", "note": "CRM back"}
    )
    outcome = v1["v1_exceptions_bulk_create"].sync(client=olga, body=by_filter)
    assert (outcome.done, outcome.skipped) == (1, [])

    # Rules API: Rowan's draft sends big companies to Enterprise; test, promote, replay on the worker, promote.
    enterprise = QueueFactory(name="Enterprise")
    MembershipFactory(queue=enterprise, user=UserFactory(username="sam"))
    rule = RuleFactory(
        name="Enterprise accounts",
        stage=RuleStage.DRAFT,
        owner=rule_owner,
        queue=enterprise,
        condition={"field": "company_size", "op": "gte", "value": 1000},
        inputs="company_size",
        test_cases=[case("a big company", "Enterprise", company_size=5000), case("a small one", company_size=40)],
    )
    assert [r.name for r in v1["v1_rules_list"].sync(client=rowan)] == ["Enterprise accounts"]
    assert v1["v1_rules_retrieve"].sync(rule.pk, client=rowan).condition_text
    cases = v1["rules_test"].sync(rule.pk, client=rowan, body=models.RunTestsRequest())
    assert [(c.name, c.passed) for c in cases] == [("a big company", True), ("a small one", True)]
    to_staging = models.PromoteRequest.from_dict({"to": "staging", "comment": "Enterprise deals need the team."})
    assert v1["rules_promote"].sync_detailed(rule.pk, client=rowan, body=to_staging).status_code == 200
    to_production = models.PromoteRequest.from_dict({"to": "production", "comment": "Replayed."})
    blocked = v1["rules_promote"].sync_detailed(rule.pk, client=rowan, body=to_production)
    assert blocked.status_code == 400 and [f.gate for f in blocked.parsed.failures]
    replay = v1["rules_replay"].sync_detailed(client=rowan, body=models.ReplayRequest.from_dict({"limit": 10000}))
    assert replay.status_code == 202
    wait_until(
        lambda: v1["v1_rules_replay_retrieve"].sync(replay.parsed.id, client=rowan).status == "done",
        what="the worker to finish the replay",
    )
    assert v1["rules_promote"].sync_detailed(rule.pk, client=rowan, body=to_production).status_code == 200
    nothing_before = v1["rules_rollback"].sync_detailed(rule.pk, client=rowan, body=models.RollbackRequest())
    assert nothing_before.status_code == 400
    # Rerouting form-125 with its company's real size: the new rule takes it, and the item resolves itself.
    (other,) = v1["v1_exceptions_list"].sync(client=olga, q="form-125").results
    bigger = models.Reroute.from_dict({"lead": {"company_size": 4200}, "version": other.version})
    rerouted = v1["v1_exceptions_reroute_create"].sync(other.id, client=olga, body=bigger)
    assert (rerouted.status, rerouted.resolution, rerouted.lead.status) == ("resolved", "rerouted", "assigned")
    preview = models.PreviewRequest.from_dict({"lead": {**readme_lead, "company_size": 4200}, "candidate": False})
    decided = v1["rules_preview"].sync(client=rowan, body=preview)
    assert (decided.rule.name, decided.queue, decided.assignee) == ("Enterprise accounts", "Enterprise", "sam")
    by_hand = models.ManualAssignRequest.from_dict({"queue": enterprise.pk, "assignee": "sam", "reason": "Key account"})
    override = v1["leads_assign"].sync(lead.id, client=olga, body=by_hand)
    assert (override.queue, override.assignee) == ("Enterprise", "sam")
