"""The condition builder's endpoint: a live check of a condition as it is typed."""

from django.http import JsonResponse
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from routing.governance import services
from routing.governance.builder import condition_check
from routing.jsonbounds import JSONInputError, loads_bounded

MAX_BODY_BYTES = 100_000


class ConditionCheckView(ConsoleAccessMixin, View):
    """POST /console/rules/condition/check/ with {"condition": {...}}: valid, located errors, the condition in
    words, and how many of the newest 1,000 leads it matches. Rule owners and admins only (it reads leads in bulk
    for a rule someone is writing)."""

    def post(self, request):
        if not services.may_author_rules(request.user):
            return JsonResponse({"detail": "Only rule owners and admins check rule conditions."}, status=403)
        if len(request.body) > MAX_BODY_BYTES:
            return JsonResponse({"detail": f"Send at most {MAX_BODY_BYTES:,} bytes."}, status=400)
        try:
            payload = loads_bounded(request.body or b"{}")
        except JSONInputError as exc:
            return JsonResponse({"detail": f'Send JSON like {{"condition": {{...}}}}: {exc}'}, status=400)
        if not isinstance(payload, dict):
            return JsonResponse({"detail": 'Send an object like {"condition": {...}}.'}, status=400)
        return JsonResponse(condition_check(condition=payload.get("condition")).as_dict())
