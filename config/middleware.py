"""Requests refused before any view runs."""

from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import resolve

NUL_MESSAGE = "The address contains a NUL (%00) character; remove it."


class RefuseNulMiddleware:
    """A NUL in the path or the query string is refused with a 400: PostgreSQL cannot hold one in text, so a
    search, filter or id carrying it would otherwise end as a 500 wherever a view forgot to check."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.GET
        if "\x00" in request.path or any("\x00" in key or "\x00" in "".join(query.getlist(key)) for key in query):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": NUL_MESSAGE}, status=400)
            return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


# The probes' paths (config/urls.py): liveness and readiness. Not /metrics, which has its own access rules.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class AnswerProbesMiddleware:
    """First in MIDDLEWARE: /healthz and /readyz are answered before anything reads the Host header. A load
    balancer or Kubernetes probe asks by the pod's IP address, which is not in DJANGO_ALLOWED_HOSTS: Django
    would answer 400 and the pod would be taken out of service. The probes read nothing from the request, so
    any Host will do; every other path is still validated against ALLOWED_HOSTS."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info in PROBE_PATHS:
            return resolve(request.path_info).func(request)
        return self.get_response(request)
