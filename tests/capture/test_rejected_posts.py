"""Inbound dead letters: every refused post from a known source is kept, counted, listed and replayable."""

import datetime as dt
import json

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from routing.capture.models import RejectedPost, RejectedPostStatus, RejectionDay, RejectionReason
from routing.capture.rejections import UNREDACTABLE, rejected_posts_trim, secret_key
from routing.models import DailyLeadStat, Lead
from routing.reports.anomalies import anomaly_report_build
from tests.capture.conftest import client_for, post_json
from tests.factories import LeadPayloadFactory, SourceFactory, UserFactory
from tests.observability.conftest import scrape, value

INTAKE = "/api/v1/leads/"
BATCH = "/api/v1/leads/batch/"

pytestmark = pytest.mark.django_db


def person(*groups, **fields) -> Client:
    user = UserFactory(**fields)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def test_invalid_fields_are_kept_with_the_errors_the_sender_got():
    source = SourceFactory()
    response = post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id="f-1", email="nope"))
    assert response.status_code == 400
    post = RejectedPost.objects.get()
    assert (post.source, post.status_code, post.reason, post.lead_id) == (source, 400, "invalid_fields", "f-1")
    assert post.errors == response.json()
    assert json.loads(post.excerpt)["email"] == "nope"
    assert post.status == RejectedPostStatus.OPEN and not post.batch


def test_credentials_in_a_refused_post_are_redacted_and_the_hash_is_of_what_came():
    source = SourceFactory()
    body = json.dumps({"lead_id": "s", "email": "bad", "attributes": {"api_key": "sk_live_123", "plan": "pro"}})
    post_json(client_for(source), INTAKE, json.loads(body))
    post = RejectedPost.objects.get()
    assert "sk_live_123" not in post.excerpt
    assert json.loads(post.excerpt)["attributes"] == {"api_key": "[redacted]", "plan": "pro"}
    assert post.size_bytes == len(body.encode()) and len(post.payload_sha256) == 64


def test_unreadable_json_unsupported_media_type_and_a_body_too_large_are_kept_by_reason():
    source = SourceFactory()
    client = client_for(source)
    assert (
        client.post(
            INTAKE, data='{"lead_id": "x", "password": "hunter2", ', content_type="application/json"
        ).status_code
        == 400
    )
    assert client.post(INTAKE, data="lead_id=x", content_type="application/x-www-form-urlencoded").status_code == 415
    huge = json.dumps(LeadPayloadFactory(attributes={"blob": "x" * 70_000}))
    assert client.post(INTAKE, data=huge, content_type="application/json").status_code == 413
    kept = {post.reason: post for post in RejectedPost.objects.all()}
    assert set(kept) == {RejectionReason.UNREADABLE, RejectionReason.UNSUPPORTED_MEDIA_TYPE, RejectionReason.TOO_LARGE}
    assert kept["unreadable"].excerpt == UNREDACTABLE  # "password" in a body no parser can split: not kept
    assert kept["unsupported_media_type"].status_code == 415
    assert kept["too_large"].status_code == 413 and kept["too_large"].excerpt == ""
    assert kept["too_large"].size_bytes == len(huge.encode())


def test_nul_characters_are_kept_escaped_not_a_500():
    source = SourceFactory()
    response = post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id="a\x00b"))
    assert response.status_code == 400
    assert RejectedPost.objects.get().lead_id == "a\\u0000b"


def test_each_refused_item_of_a_batch_is_kept_with_its_place():
    source = SourceFactory()
    items = [LeadPayloadFactory(lead_id="ok"), LeadPayloadFactory(lead_id="bad", country="XX"), "not a lead"]
    response = post_json(client_for(source), BATCH, items)
    assert response.status_code == 200
    kept = list(RejectedPost.objects.order_by("batch_index").values_list("batch_index", "reason", "lead_id", "batch"))
    assert kept == [(1, "invalid_fields", "bad", True), (2, "not_an_object", "", True)]
    assert Lead.objects.filter(lead_id="ok").exists()


def test_no_token_is_not_kept_nothing_is_known_of_its_sender():
    assert post_json(APIClient(), INTAKE, LeadPayloadFactory()).status_code == 401
    assert not RejectedPost.objects.exists()


def test_metrics_count_rejections_by_source_and_reason_even_after_the_rows_are_trimmed(client, settings):
    settings.HANDOFF = {**settings.HANDOFF, "REJECTED_POSTS_PER_SOURCE": 1}
    source = SourceFactory(name="chat")
    for n in range(3):
        post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id=f"c{n}", email="bad"))
    assert rejected_posts_trim() == 2
    assert RejectedPost.objects.count() == 1
    samples = scrape(client)
    assert value(samples, "handoff_intake_rejected_total", origin="chat", reason="invalid_fields") == 3


def test_trim_drops_rows_older_than_the_retention():
    source = SourceFactory()
    with time_machine.travel(timezone.now() - dt.timedelta(days=40)):
        post_json(client_for(source), INTAKE, LeadPayloadFactory(email="bad"))
    post_json(client_for(source), INTAKE, LeadPayloadFactory(email="bad"))
    assert rejected_posts_trim() == 1
    assert RejectedPost.objects.count() == 1
    assert sum(RejectionDay.objects.values_list("count", flat=True)) == 2


def test_ops_fix_and_replay_a_rejected_lead_which_is_stored_routed_and_audited(django_capture_on_commit_callbacks):
    source = SourceFactory()
    post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id="r-1", email="jo@@example.com"))
    post = RejectedPost.objects.get()
    ops = person("ops")
    page = ops.get(f"/console/intake/rejected/{post.pk}/")
    assert page.status_code == 200 and b"jo@@example.com" in page.content
    fixed = json.loads(post.excerpt) | {"email": "jo@example.com"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = ops.post(f"/console/intake/rejected/{post.pk}/", {"action": "replay", "payload": json.dumps(fixed)})
    assert response.status_code == 302
    lead = Lead.objects.get(lead_id="r-1", origin=source)
    post.refresh_from_db()
    assert (post.status, post.replayed_lead, post.settled_by) == ("replayed", lead, ops.user)
    assert callbacks, "routing was queued for the replayed lead"
    event = AuditEvent.objects.get(action=AuditAction.INTAKE_REPLAYED)
    assert (event.lead, event.actor, event.data["rejected_post"]) == (lead, ops.user, post.pk)


def test_a_replay_that_is_still_wrong_says_what_and_stores_nothing():
    source = SourceFactory()
    post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id="r-2", email="bad"))
    post = RejectedPost.objects.get()
    ops = person("ops")
    response = ops.post(f"/console/intake/rejected/{post.pk}/", {"action": "replay", "payload": post.excerpt})
    assert response.status_code == 400
    assert b"Enter a valid email address." in response.content and b"Nothing was replayed" in response.content
    post.refresh_from_db()
    assert post.status == RejectedPostStatus.OPEN and not Lead.objects.exists()
    unreadable = ops.post(f"/console/intake/rejected/{post.pk}/", {"action": "replay", "payload": "{"})
    assert unreadable.status_code == 400 and b"Not readable JSON" in unreadable.content


def test_dismiss_records_who_and_why_and_a_second_settle_is_refused():
    source = SourceFactory()
    post_json(client_for(source), INTAKE, LeadPayloadFactory(email="bad"))
    post = RejectedPost.objects.get()
    ops = person("ops")
    ops.post(f"/console/intake/rejected/{post.pk}/", {"action": "dismiss", "note": "test post"})
    post.refresh_from_db()
    assert post.status == RejectedPostStatus.DISMISSED
    assert AuditEvent.objects.get(action=AuditAction.INTAKE_DISMISSED).data["note"] == "test post"
    assert '<q id="dismissal-note">test post</q>' in ops.get(f"/console/intake/rejected/{post.pk}/").content.decode()
    again = ops.post(f"/console/intake/rejected/{post.pk}/", {"action": "replay", "payload": "{}"})
    assert again.status_code == 400 and b"Already dismissed" in again.content


def test_who_may_see_and_settle_rejected_posts():
    owner = UserFactory(username="sam")
    source = SourceFactory(owner=owner)
    post_json(client_for(source), INTAKE, LeadPayloadFactory(email="bad"))
    post = RejectedPost.objects.get()
    url = f"/console/intake/rejected/{post.pk}/"
    assert person().get(url).status_code == 403  # no console group
    rule_owner = person("rule_owners")
    assert rule_owner.get("/console/intake/rejected/").status_code == 200
    assert rule_owner.post(url, {"action": "dismiss"}).status_code == 403
    source_owner = Client()
    owner.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    source_owner.force_login(owner)
    assert source_owner.post(url, {"action": "dismiss"}).status_code == 302


def test_the_list_filters_by_source_and_shows_open_posts_first_with_the_source_owner():
    owner = UserFactory(username="sam")
    chat, form = SourceFactory(name="chat", owner=owner), SourceFactory(name="form")
    post_json(client_for(chat), INTAKE, LeadPayloadFactory(lead_id="from-chat", email="bad"))
    post_json(client_for(form), INTAKE, LeadPayloadFactory(lead_id="from-form", email="bad"))
    ops = person("ops")
    page = ops.get("/console/intake/rejected/", {"source": chat.pk}).content.decode()
    assert "from-chat" in page and "from-form" not in page and "sam" in page
    bad_filter = ops.get("/console/intake/rejected/", {"reason": "nonsense"})
    assert bad_filter.status_code == 400


def test_the_anomaly_report_flags_a_source_whose_refused_share_jumps():
    owner = UserFactory(username="sam", email="sam@example.com")
    source = SourceFactory(name="chat", owner=owner)
    day = timezone.now().date() - dt.timedelta(days=1)
    for back in range(1, 15):
        DailyLeadStat.objects.create(day=day - dt.timedelta(days=back), origin=source, received=100)
        RejectionDay.objects.create(source=source, day=day - dt.timedelta(days=back), reason="invalid_fields", count=1)
    DailyLeadStat.objects.create(day=day, origin=source, received=60)
    RejectionDay.objects.create(source=source, day=day, reason="unknown_fields", count=40)
    measures = anomaly_report_build(day=day).data["measures"]
    chat = next(m for m in measures if m["measure"] == "Posts refused from chat, % of what it sent")
    assert chat["value"] == 40.0 and chat["flagged"] is True and chat["owner_email"] == "sam@example.com"


def test_credential_keys_are_told_by_their_words_not_by_a_substring():
    for key in ("password", "userPassword", "x-api-key", "apiKey", "client_secret", "access_token", "Authorization"):
        assert secret_key(key), key
    for key in ("author", "passport_country", "compass", "company", "cardinal"):
        assert not secret_key(key), key


def test_credentials_are_redacted_at_any_depth_and_in_form_bodies():
    source = SourceFactory()
    deep = {"password": "deep-secret"}
    for level in range(9):
        deep = {f"k{level}": deep}
    post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id="deep", attributes=deep))
    form = "lead_id=rj-415&password=hunter4"
    client_for(source).post(INTAKE, data=form, content_type="application/x-www-form-urlencoded")
    excerpts = " ".join(RejectedPost.objects.values_list("excerpt", flat=True))
    assert "deep-secret" not in excerpts and "hunter4" not in excerpts
    assert json.loads(RejectedPost.objects.get(reason="unsupported_media_type").excerpt) == {
        "lead_id": "rj-415",
        "password": "[redacted]",
    }


def test_a_replay_must_fill_in_redacted_values_and_may_not_take_another_leads_id():
    source = SourceFactory()
    post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id="other"))
    post_json(client_for(source), INTAKE, {"lead_id": "mine", "email": "bad", "attributes": {"token": "t"}})
    post = RejectedPost.objects.get()
    ops = person("ops")
    url = f"/console/intake/rejected/{post.pk}/"
    leftover = ops.post(url, {"action": "replay", "payload": post.excerpt.replace('"bad"', '"ok@example.com"')})
    assert leftover.status_code == 400 and b"Fill in or remove the [redacted] values" in leftover.content
    taken = {"lead_id": "other", "email": "ok@example.com"}
    refused = ops.post(url, {"action": "replay", "payload": json.dumps(taken)})
    assert refused.status_code == 400 and b"is another lead this source sent" in refused.content
    post.refresh_from_db()
    assert post.status == RejectedPostStatus.OPEN and Lead.objects.count() == 1


def test_erasure_removes_the_rejected_posts_of_a_person_who_never_had_a_lead():
    from routing.erasure import person_erase

    source = SourceFactory()
    post_json(client_for(source), INTAKE, {"lead_id": "only", "email": "only.refused@x.example", "country": "ZZ"})
    post_json(client_for(SourceFactory()), INTAKE, LeadPayloadFactory(email="bad"))  # someone else's
    erasure = person_erase(email="Only.Refused@x.example", by=None)
    assert erasure.lead_ids == [] and erasure.rows == {"routing_rejectedpost (deleted)": 1}
    assert not RejectedPost.objects.filter(excerpt__icontains="only.refused").exists()
    assert RejectedPost.objects.count() == 1
