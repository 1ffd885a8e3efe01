"""GET /metrics: Prometheus text format, for a bearer token or a scraper on an allowed network."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import generate_latest

from routing.reports.metrics import REGISTRY

# Metric names here are plain ASCII, so the text is the classic 0.0.4 format: say so (prometheus-client's
# latest content type, 1.0.0, is unknown to Prometheus 2 and other scrapers).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_allowed(request) -> bool:
    """`Authorization: Bearer <HANDOFF_METRICS_TOKEN>` (when a token is set), or a direct connection from an
    address in HANDOFF_METRICS_ALLOW. A request that came through a proxy (X-Forwarded-For or Forwarded) is
    judged by its token only: the address we see is the proxy's, which says nothing about the client."""
    token = settings.HANDOFF["METRICS_TOKEN"]
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    return any(address in network for network in settings.HANDOFF["METRICS_ALLOW"])


@never_cache
@require_GET
def metrics(request):
    if not metrics_allowed(request):
        return HttpResponseForbidden(
            "Metrics need 'Authorization: Bearer <HANDOFF_METRICS_TOKEN>' or an address in HANDOFF_METRICS_ALLOW.\n",
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE)
