"""PagerDuty's webhooks (v3) call back here when an incident is acknowledged or resolved there
(exceptions.alert_inbound). Not a console endpoint: the request is authenticated by its signature alone."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions.alert_inbound import SIGNATURE_HEADER, SignatureRefused, pagerduty_webhook


class PagerDutyIncidentSerializer(serializers.Serializer):
    id = serializers.CharField(required=False)
    incident_key = serializers.CharField(
        help_text="The dedup key Handoff sent: handoff-exception-<id> or …-incident-<id>."
    )


class PagerDutyEventSerializer(serializers.Serializer):
    event_type = serializers.CharField(help_text="incident.acknowledged and incident.resolved act; others are ignored.")
    agent = serializers.DictField(required=False, help_text="Who acted in PagerDuty (its `summary` is audited).")
    data = PagerDutyIncidentSerializer()


class PagerDutyWebhookSerializer(serializers.Serializer):
    event = PagerDutyEventSerializer()


class PagerDutyOutcomeSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["acknowledged", "resolved", "ignored"])
    detail = serializers.CharField()


class PagerDutyWebhookView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=PagerDutyWebhookSerializer,
        responses={
            200: OpenApiResponse(
                PagerDutyOutcomeSerializer, description="Acted on, or ignored with the reason (never retried)."
            ),
            # Bodies {"detail": …}: the API's shared Error schema (routing.api.schema).
            400: OpenApiResponse(description="Signed, but not a PagerDuty v3 webhook body."),
            401: OpenApiResponse(description=f"{SIGNATURE_HEADER} missing or not matching."),
        },
        summary="PagerDuty webhook (v3): an incident acknowledged or resolved there",
        auth=[],
    )
    def post(self, request):
        body = request._request.body  # the raw bytes: the signature covers them exactly
        try:
            outcome = pagerduty_webhook(body=body, signature=request.headers.get(SIGNATURE_HEADER, ""))
        except SignatureRefused as exc:
            return Response({"detail": str(exc)}, status=401)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=400)
        return Response({"outcome": outcome.outcome, "detail": outcome.detail})
