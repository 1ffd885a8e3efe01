"""Who may read /metrics: a bearer token, or a direct connection from an allowed network; 403 otherwise."""

import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_networks

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.9"


@pytest.fixture
def token(settings):
    settings.HANDOFF = {**settings.HANDOFF, "METRICS_TOKEN": "s3cret-metrics-token"}
    return "s3cret-metrics-token"


def test_an_outside_address_without_a_token_is_refused(client):
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE)

    assert response.status_code == 403
    assert b"handoff_" not in response.content


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_the_local_host_is_allowed_by_default(client, address):
    assert client.get("/metrics", REMOTE_ADDR=address).status_code == 200


def test_the_right_token_is_enough_from_anywhere(client, token):
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert b"handoff_leads_accepted_total" in response.content


@pytest.mark.parametrize("header", ["Bearer wrong-token", "Token s3cret-metrics-token", "Bearer", ""])
def test_a_wrong_token_is_refused(client, token, header):
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=header).status_code == 403


def test_no_token_configured_means_no_token_accepted(client):
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_a_proxied_request_needs_the_token_even_from_an_allowed_address(client, token):
    """Behind a reverse proxy on the same host every request comes from 127.0.0.1: the address proves nothing."""
    proxied = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": OUTSIDE}

    assert client.get("/metrics", **proxied).status_code == 403
    assert client.get("/metrics", **proxied, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_the_allow_list_takes_networks(client, settings):
    settings.HANDOFF = {**settings.HANDOFF, "METRICS_ALLOW": [ipaddress.ip_network("10.0.0.0/8")]}

    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_only_get_is_answered(client):
    assert client.post("/metrics").status_code == 405


def test_the_allow_list_setting_is_parsed_and_checked(monkeypatch):
    monkeypatch.setenv("HANDOFF_METRICS_ALLOW", "10.0.0.0/8, 192.168.1.7 ,::1")
    assert env_networks("HANDOFF_METRICS_ALLOW") == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("::1/128"),
    ]
    monkeypatch.setenv("HANDOFF_METRICS_ALLOW", "")
    assert env_networks("HANDOFF_METRICS_ALLOW", "127.0.0.1") == []  # set but empty: no network, token only

    for bad in ("10.0.0.1/8", "localhost", "10.0.0.0/33"):
        monkeypatch.setenv("HANDOFF_METRICS_ALLOW", bad)
        with pytest.raises(ImproperlyConfigured, match="HANDOFF_METRICS_ALLOW"):
            env_networks("HANDOFF_METRICS_ALLOW")
