"""The probes answer whatever the Host header says: a load balancer or Kubernetes asks by the pod's IP
address, which is not in DJANGO_ALLOWED_HOSTS. Every other path still refuses a Host it does not serve."""

import pytest
from django.test import Client

POD_IP = "10.42.7.19:8000"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_probes_answer_a_host_not_in_allowed_hosts(path, settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["handoff.example.com"]
    response = Client().get(path, HTTP_HOST=POD_IP)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/metrics", "/", "/console/", "/api/v1/leads/", "/healthz/", "/healthzz"])
def test_every_other_path_still_refuses_a_host_not_in_allowed_hosts(path, settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["handoff.example.com"]
    assert Client().get(path, HTTP_HOST=POD_IP).status_code == 400


def test_the_probes_answer_plain_http_with_any_host_when_https_is_enforced(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["handoff.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/healthz", HTTP_HOST=POD_IP).status_code == 200
    redirected = client.get("/console/", HTTP_HOST="handoff.example.com")
    assert redirected.status_code == 301 and redirected["Location"] == "https://handoff.example.com/console/"
