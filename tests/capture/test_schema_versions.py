"""Capture schema versions: which version a lead is read as, unknown-field policies, registration."""

import datetime as dt

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from routing.capture.models import RejectedPost, SchemaVersion, UnknownFieldPolicy
from routing.capture.services import SchemaVersionRefused, schema_version_register
from routing.intake import LeadIn
from routing.intake_schema import BUILT_IN, LEAD_COLUMNS, VERSION_FIELD
from routing.models import Lead
from tests.capture.conftest import client_for, post_json
from tests.factories import LeadPayloadFactory, SourceFactory, UserFactory

INTAKE = "/api/v1/leads/"
BATCH = "/api/v1/leads/batch/"
VERSIONS = "/api/v1/schema-versions/"

pytestmark = pytest.mark.django_db


def test_lead_columns_are_exactly_the_fields_intake_validates():
    assert LEAD_COLUMNS == set(LeadIn.model_fields) - {VERSION_FIELD}


def test_built_in_version_1_is_the_lead_as_intake_took_it_before_versions():
    """Version 1 never changes: a capture system pinned to it keeps working whatever the lead model gains."""
    assert BUILT_IN["1"][0] == (
        "lead_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "company",
        "company_size",
        "country",
        "lifecycle_stage",
        "engagement_score",
        "intent_score",
        "occurred_at",
        "attributes",
    )
    assert BUILT_IN["2"][0] == (*BUILT_IN["1"][0], "enrichment_refs")


def test_a_lead_naming_no_version_is_read_as_the_newest_and_enrichment_refs_are_stored():
    source = SourceFactory()
    refs = [{"provider": "clearbit", "ref": "cb_123"}]
    response = post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id="a", enrichment_refs=refs))
    assert response.status_code == 202, response.json()
    assert response.json()["schema_version"] == "2"
    lead = Lead.objects.get(lead_id="a")
    assert lead.enrichment_refs == refs
    assert lead.schema_version == "2"


def test_enrichment_refs_are_unknown_under_version_1():
    source = SourceFactory()
    payload = LeadPayloadFactory(schema_version="1", enrichment_refs=[{"provider": "x", "ref": "y"}])
    response = post_json(client_for(source), INTAKE, payload)
    assert response.status_code == 400
    assert response.json()["enrichment_refs"][0].startswith("Unknown field. Allowed fields (capture schema version 1)")
    assert not Lead.objects.exists()


def test_a_source_default_version_applies_when_the_lead_names_none():
    source = SourceFactory(schema_version="1")
    response = post_json(client_for(source), INTAKE, LeadPayloadFactory(lead_id="b"))
    assert response.status_code == 202
    assert response.json()["schema_version"] == "1"
    assert Lead.objects.get(lead_id="b").schema_version == "1"


def test_an_unregistered_version_is_400_naming_the_live_ones():
    response = post_json(client_for(SourceFactory()), INTAKE, LeadPayloadFactory(schema_version="9"))
    assert response.status_code == 400
    assert response.json() == {VERSION_FIELD: ["Capture schema version '9' is not registered. Live versions: 1, 2."]}


def test_a_future_version_is_refused_until_it_takes_effect_then_its_custom_fields_go_under_attributes():
    admin = UserFactory(is_superuser=True, is_staff=True)
    start = timezone.now() + dt.timedelta(days=1)
    schema_version_register(
        version="3", fields=["lead_id", "email", "utm_source"], effective_from=start, notes="UTM source", by=admin
    )
    client = client_for(SourceFactory())
    payload = {"schema_version": "3", "lead_id": "c", "email": "c@example.com", "utm_source": "ads"}
    refused = post_json(client, INTAKE, payload)
    assert refused.status_code == 400
    assert "takes effect at" in refused.json()[VERSION_FIELD][0]
    with time_machine.travel(start + dt.timedelta(minutes=1)):
        from routing.intake_schema import versions_cache

        versions_cache.clear()
        accepted = post_json(client, INTAKE, payload)
    assert accepted.status_code == 202, accepted.json()
    lead = Lead.objects.get(lead_id="c")
    assert lead.attributes == {"utm_source": "ads"}
    assert lead.schema_version == "3"
    assert accepted.json()["warnings"] == {}


def test_keep_policy_keeps_unknown_fields_under_attributes_with_a_warning():
    source = SourceFactory(unknown_fields=UnknownFieldPolicy.KEEP)
    payload = LeadPayloadFactory(lead_id="d", favourite_colour="blue")
    response = post_json(client_for(source), INTAKE, payload)
    assert response.status_code == 202
    assert response.json()["warnings"] == {
        "favourite_colour": [
            "Not in capture schema version 2; kept as attributes.favourite_colour. "
            "Register a new version to make it a field."
        ]
    }
    assert Lead.objects.get(lead_id="d").attributes == {"form": "demo", "favourite_colour": "blue"}


def test_keep_policy_refuses_a_field_sent_both_top_level_and_under_attributes():
    source = SourceFactory(unknown_fields=UnknownFieldPolicy.KEEP)
    payload = LeadPayloadFactory(favourite_colour="blue", attributes={"favourite_colour": "red"})
    response = post_json(client_for(source), INTAKE, payload)
    assert response.status_code == 400
    assert response.json() == {
        "favourite_colour": ["Sent both as a top-level field and as attributes.favourite_colour; send it once."]
    }


def test_batch_items_say_their_version_and_warnings():
    source = SourceFactory(unknown_fields=UnknownFieldPolicy.KEEP)
    items = [LeadPayloadFactory(lead_id="e1"), LeadPayloadFactory(lead_id="e2", schema_version="1", extra=1)]
    response = post_json(client_for(source), BATCH, items)
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert (first["schema_version"], first["warnings"]) == ("2", {})
    assert second["schema_version"] == "1"
    assert list(second["warnings"]) == ["extra"]


def test_versions_api_lists_every_version_and_the_asking_source_default():
    source = SourceFactory(schema_version="1", unknown_fields=UnknownFieldPolicy.KEEP)
    body = client_for(source).get(VERSIONS).json()
    assert [v["version"] for v in body["versions"]] == list(BUILT_IN)
    assert body["newest_live"] == "2"
    assert body["source"] == {"name": source.name, "default_version": "1", "unknown_fields": "keep"}
    second = body["versions"][1]
    assert "enrichment_refs" in second["fields"] and second["live"] and second["kept_under_attributes"] == []


def test_admins_register_versions_in_the_admin_and_bad_ones_say_what_is_wrong():
    admin = UserFactory(is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(admin)
    start = timezone.now() + dt.timedelta(hours=1)
    form = {"version": "2", "fields": '["email"]', "effective_from_0": start.date(), "effective_from_1": "23:59:00"}
    bad = client.post("/admin/routing/schemaversion/add/", form)
    assert bad.status_code == 200
    assert "Version &#x27;2&#x27; is registered already." in bad.content.decode()
    assert "Every version carries lead_id." in bad.content.decode()
    good = {**form, "version": "3", "fields": '["lead_id", "email", "utm_source"]', "notes": "UTM"}
    good["effective_from_0"], good["effective_from_1"] = start.strftime("%Y-%m-%d"), start.strftime("%H:%M:%S")
    assert client.post("/admin/routing/schemaversion/add/", good).status_code == 302
    registered = SchemaVersion.objects.get(version="3")
    assert registered.created_by == admin
    assert AuditEvent.objects.get(action=AuditAction.SCHEMA_VERSION_REGISTERED).data["version"] == "3"
    listed = next(v for v in client_for(SourceFactory()).get(VERSIONS).json()["versions"] if v["version"] == "3")
    assert listed["kept_under_attributes"] == ["utm_source"] and listed["live"] is False


def test_a_version_may_not_take_effect_in_the_past():
    with pytest.raises(SchemaVersionRefused) as refused:
        schema_version_register(version="3", fields=["lead_id"], effective_from=timezone.now() - dt.timedelta(days=1))
    assert refused.value.errors == {"effective_from": ["It may take effect now or later, not in the past."]}


def test_a_retired_default_refuses_leads_saying_whose_default_it_is():
    admin = UserFactory(is_superuser=True, is_staff=True)
    now = timezone.now()
    schema_version_register(
        version="old", fields=["lead_id", "email"], effective_from=now, retires_at=now + dt.timedelta(hours=1), by=admin
    )
    source = SourceFactory(schema_version="old")
    with time_machine.travel(now + dt.timedelta(hours=2)):
        response = post_json(client_for(source), INTAKE, {"lead_id": "z", "email": "z@example.com"})
    assert response.status_code == 400
    message = response.json()[VERSION_FIELD][0]
    assert message.startswith("This source's default capture schema version 'old' was retired at")
    assert RejectedPost.objects.get().reason == "schema_version"


def test_a_version_leaving_out_fields_is_refused_while_sources_without_a_default_would_switch_to_it():
    web = SourceFactory(name="web")
    start = timezone.now() + dt.timedelta(hours=1)
    with pytest.raises(SchemaVersionRefused) as refused:
        schema_version_register(version="3", fields=["lead_id", "email", "attributes"], effective_from=start)
    message = refused.value.errors["fields"][0]
    assert "company, company_size" in message and "(web)" in message and "pin them to version 2" in message
    web.schema_version = "2"
    web.save()
    assert schema_version_register(version="3", fields=["lead_id", "email", "attributes"], effective_from=start)


def test_retiring_a_version_is_checked_and_audited():
    from routing.capture.services import schema_version_retire

    admin = UserFactory(is_superuser=True, is_staff=True)
    now = timezone.now()
    version = schema_version_register(version="3", fields=[*BUILT_IN["2"][0], "utm_source"], effective_from=now)
    source = SourceFactory(schema_version="3")
    with pytest.raises(SchemaVersionRefused) as pinned:
        schema_version_retire(version=version, retires_at=now + dt.timedelta(days=1), by=admin)
    assert pinned.value.errors["retires_at"] == [
        f"Sources read their leads as this version by default: {source.name}. Move them first."
    ]
    with pytest.raises(SchemaVersionRefused) as past:
        schema_version_retire(version=version, retires_at=now - dt.timedelta(days=1), by=admin)
    assert past.value.errors["retires_at"] == ["Retire it after it takes effect."]
    source.schema_version = ""
    source.save()
    schema_version_retire(version=version, retires_at=now + dt.timedelta(days=1), by=admin)
    event = AuditEvent.objects.get(action=AuditAction.CONFIG_CHANGED)
    assert (event.actor, event.outcome, event.data["schema_version"]) == (admin, "schema version retirement set", "3")


def test_enrichment_ref_errors_name_the_item_and_its_field():
    payload = LeadPayloadFactory(enrichment_refs=["x", {"provider": "cb"}, {"provider": "cb", "ref": "1", "extra": 1}])
    response = post_json(client_for(SourceFactory()), INTAKE, payload)
    assert response.status_code == 400
    assert response.json() == {
        "enrichment_refs": [
            "[0]: Must be a JSON object.",
            "[1].ref: This field is required.",
            "[2].extra: Unknown field.",
        ]
    }


def test_a_duplicate_is_answered_with_the_version_it_was_stored_under():
    source = SourceFactory()
    client = client_for(source)
    assert post_json(client, INTAKE, LeadPayloadFactory(lead_id="same", schema_version="1")).status_code == 202
    again = post_json(client, INTAKE, LeadPayloadFactory(lead_id="same", schema_version="2"))
    assert (again.status_code, again.json()["schema_version"]) == (200, "1")
