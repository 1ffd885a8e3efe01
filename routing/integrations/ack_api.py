"""POST /api/v1/deliveries/{id}/ack/: a receiver that processes asynchronously confirms (or fails) one delivery
(routing/integrations/handoff.py). Not a console endpoint: no token, no session (so no CSRF); the request is
authenticated by its Standard Webhooks signature, made with the delivery target's secret."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from routing.integrations.handoff import (
    AckConflict,
    AckNotAllowed,
    AckOutcome,
    AckRefused,
    DeliveryState,
    ack_event,
    ack_signature_check,
    handoff_ack,
)
from routing.integrations.signing import ID_HEADER, STANDARD_SIGNATURE_HEADER, STANDARD_TIMESTAMP_HEADER
from routing.jsonbounds import JSONInputError, loads_bounded

MAX_ACK_BYTES = 64 * 1024


class DeliveryAckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=AckOutcome.values,
        help_text="processed: the receiver has the lead (the handoff is confirmed); failed: it could not process it "
        "(handoff_unconfirmed opens with `message`).",
    )
    reference = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="The receiver's id for it, e.g. CRM-123."
    )
    message = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="What happened, shown on the lead and the item."
    )


class DeliveryAckResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The delivery (outbox event).")
    state = serializers.ChoiceField(choices=DeliveryState.values)
    confirmed_at = serializers.DateTimeField(allow_null=True)
    repeated = serializers.BooleanField(help_text="This outcome was recorded before: nothing changed.")


class DeliveryAckView(APIView):
    authentication_classes = []  # the signature is the authentication; no session, so no CSRF either
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="v1_deliveries_ack_create",
        request=DeliveryAckSerializer,
        parameters=[
            OpenApiParameter(
                "id",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The delivery's webhook-id (a UUID), or its number.",
            )
        ],
        responses={
            200: DeliveryAckResultSerializer,
            # Bodies {"detail": …}: the API's shared Error schema (routing.api.schema).
            400: OpenApiResponse(description="Signed, but the body is not JSON or not of this shape."),
            401: OpenApiResponse(
                description=f"{ID_HEADER}, {STANDARD_TIMESTAMP_HEADER} or {STANDARD_SIGNATURE_HEADER} missing, "
                "not matching the target's secret, or the timestamp more than 5 minutes off."
            ),
            403: OpenApiResponse(description="The target confirms with its 2xx answer and does not call back."),
            404: OpenApiResponse(description="No delivery with this id."),
            409: OpenApiResponse(description="Already confirmed as processed: it cannot fail afterwards."),
        },
        examples=[
            OpenApiExample("Processed", value={"status": "processed", "reference": "CRM-123"}, request_only=True),
            OpenApiExample(
                "Failed", value={"status": "failed", "message": "Owner not found in CRM"}, request_only=True
            ),
        ],
        summary="A receiver confirms one delivery (signed with the target's secret)",
        description="For delivery targets that confirm by callback: `{id}` is the delivery's `webhook-id` (the "
        "UUID in the delivery's `webhook-id` header and body `id`), or its number (the `id` of the lead API's "
        "`deliveries`). Sign the raw body as Handoff signs its deliveries (Standard Webhooks: "
        "`webhook-id` the delivery's own webhook-id, `webhook-timestamp` now, "
        '`webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`). '
        "Sending the same outcome again answers 200 and changes nothing.",
        auth=[],
    )
    def post(self, request, pk: str):
        event = ack_event(ref=pk)
        if event is None:
            return Response({"detail": f"No delivery {pk[:64]!r}: give its id or its webhook-id."}, status=404)
        body = request._request.body  # the raw bytes: the signature covers them exactly
        try:
            ack_signature_check(event=event, headers=request.headers, body=body)
        except AckRefused as exc:
            return Response({"detail": str(exc)}, status=401)
        except AckNotAllowed as exc:
            return Response({"detail": str(exc)}, status=403)
        if len(body) > MAX_ACK_BYTES:
            return Response({"detail": f"The body is over {MAX_ACK_BYTES // 1024} KiB; send a short message."}, 400)
        try:
            data = loads_bounded(body)
        except JSONInputError as exc:
            return Response({"detail": str(exc)}, status=400)
        given = DeliveryAckSerializer(data=data)
        if not given.is_valid():
            return Response(given.errors, status=400)
        try:
            result = handoff_ack(
                event=event,
                outcome=given.validated_data["status"],
                reference=given.validated_data.get("reference", ""),
                message=given.validated_data.get("message", ""),
            )
        except AckConflict as exc:
            return Response({"detail": str(exc)}, status=409)
        return Response(
            {
                "id": result.event.pk,
                "state": result.state,
                "confirmed_at": result.event.confirmed_at,
                "repeated": result.repeated,
            }
        )
