import pytest
import yaml
from django.test import Client


def test_healthz_answers_without_a_database():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_and_broker():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_openapi_schema_documents_the_intake_contract():
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    intake = schema["paths"]["/api/v1/leads/"]["post"]
    assert {"200", "202", "400", "401", "413"} <= set(intake["responses"])
    assert "/api/v1/leads/batch/" in schema["paths"] and "/api/v1/leads/{id}/" in schema["paths"]
    assert set(schema["components"]["schemas"]["LeadIn"]["properties"]) >= {"lead_id", "email", "attributes"}
    assert "tokenAuth" in schema["components"]["securitySchemes"]


@pytest.mark.django_db
def test_api_docs_page_serves_without_a_cdn():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in response.content
