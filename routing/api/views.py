"""Intake and lead API: authenticate, parse, call the intake service, render."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, Throttled, UnsupportedMediaType, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent
from config.logs import log_context
from routing.api import schema  # noqa: F401  (registers the token scheme for the OpenAPI docs)
from routing.api.auth import IsCaptureSource, IsSourceOrStaff
from routing.api.serializers import AcceptedLeadSerializer, BatchResponseSerializer, LeadDetailSerializer
from routing.dispatch import Lane, routing_enqueue_on_commit
from routing.intake import IntakeStatus, LeadIn, leads_intake, leads_waiting_for_routing
from routing.jsonbounds import JSONInputError, loads_bounded
from routing.models import Lead, Source

logger = logging.getLogger(__name__)


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


BULK_RETRY_AFTER_SECONDS = 30


class BulkBacklogFull(Throttled):
    """429 with Retry-After: the bulk lane is this far behind, so take nothing more from imports for now."""

    def __init__(self, waiting: int, limit: int):
        super().__init__(
            wait=BULK_RETRY_AFTER_SECONDS,
            detail=(
                f"{waiting:,} leads are waiting for routing (limit {limit:,}); nothing from this batch was stored. "
                f"Send it again in {BULK_RETRY_AFTER_SECONDS} s. Single leads are still accepted."
            ),
        )


def read_json_body(request, *, limit: int):
    """The request body parsed as JSON, with the size limit checked before and after reading."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(
            request.content_type or "(none)", detail="Send JSON with 'Content-Type: application/json'."
        )
    declared = request.META.get("CONTENT_LENGTH") or "0"
    too_large = PayloadTooLarge(f"The body is larger than {limit} bytes; send less per request.")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    try:
        return loads_bounded(body)
    except JSONInputError as exc:
        raise ParseError(str(exc)) from None


def log_intake(source: Source, results) -> None:
    """One line per stored lead, with its ids in the log context (ours as lead_pk, the capture system's as
    lead_id): where a lead's trail in the logs begins."""
    for result in results:
        if result.id is not None:
            with log_context(lead_pk=result.id, lead_id=result.lead_id):
                logger.info("Lead %s from %s: %s.", result.lead_id, source, result.status)


def lead_url(request, pk: int) -> str:
    """The lead's URL, from the intake's own: a lead lives under the collection it was posted to. Cheaper than
    reverse(), which was a tenth of a single-lead request (tests pin it to the lead-detail route)."""
    return f"{request.scheme}://{request.get_host()}{request.path}{pk}/"


class LeadIntakeView(APIView):
    permission_classes = [IsCaptureSource]

    @extend_schema(
        operation_id="leads_create",
        summary="Post one lead",
        request=LeadIn,
        responses={
            202: OpenApiResponse(AcceptedLeadSerializer, description="Accepted; routing is queued."),
            200: OpenApiResponse(AcceptedLeadSerializer, description="Already received from this source."),
            400: OpenApiResponse(description='Field errors, e.g. {"email": ["Enter a valid email address."]}'),
            401: OpenApiResponse(description="No or bad token."),
            413: OpenApiResponse(description="Body over 64 KiB."),
        },
    )
    def post(self, request):
        payload = read_json_body(request, limit=settings.HANDOFF["MAX_BODY_BYTES"])
        if not isinstance(payload, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object with the lead's fields."]})
        (result,), created = leads_intake(source=request.auth, payloads=[payload])
        if result.status == IntakeStatus.INVALID:
            raise ValidationError(result.errors)
        routing_enqueue_on_commit(created, lane=Lane.LIVE)
        log_intake(request.auth, [result])
        body = {
            "id": result.id,
            "lead_id": result.lead_id,
            "status": result.lead_status,
            "url": lead_url(request, result.id),
        }
        code = status.HTTP_202_ACCEPTED if result.status == IntakeStatus.ACCEPTED else status.HTTP_200_OK
        return Response(body, status=code)


class LeadBatchIntakeView(APIView):
    permission_classes = [IsCaptureSource]

    @extend_schema(
        operation_id="leads_batch_create",
        summary="Post up to 500 leads",
        request={
            "application/json": {"type": "array", "maxItems": 500, "items": {"$ref": "#/components/schemas/LeadIn"}}
        },
        responses={
            200: OpenApiResponse(BatchResponseSerializer, description="One result per item, in input order."),
            400: OpenApiResponse(description="Not a JSON list, or more than 500 items."),
            401: OpenApiResponse(description="No or bad token."),
            413: OpenApiResponse(description="Body too large."),
            429: OpenApiResponse(
                description="Too many leads wait for routing (HANDOFF_BULK_BACKLOG_LIMIT); nothing was stored. "
                "Send the batch again after Retry-After seconds."
            ),
        },
    )
    def post(self, request):
        limit = settings.HANDOFF["BULK_BACKLOG_LIMIT"]
        waiting = leads_waiting_for_routing()
        if waiting > limit:
            raise BulkBacklogFull(waiting, limit)
        payload = read_json_body(request, limit=settings.HANDOFF["MAX_BATCH_BODY_BYTES"])
        limit = settings.HANDOFF["MAX_BATCH_ITEMS"]
        if not isinstance(payload, list):
            raise ValidationError({"non_field_errors": ["Expected a JSON list of lead objects."]})
        if len(payload) > limit:
            raise ValidationError({"non_field_errors": [f"{len(payload)} items; send at most {limit} per batch."]})
        results, created = leads_intake(source=request.auth, payloads=payload)
        routing_enqueue_on_commit(created, lane=Lane.BULK)
        log_intake(request.auth, results)
        return Response(
            {"results": [{"lead_id": r.lead_id, "status": r.status, "id": r.id, "errors": r.errors} for r in results]}
        )


class LeadDetailView(APIView):
    permission_classes = [IsSourceOrStaff]

    @extend_schema(
        operation_id="leads_retrieve",
        summary="A lead with its routing decisions and exceptions",
        responses={200: LeadDetailSerializer, 404: OpenApiResponse(description="No such lead.")},
    )
    def get(self, request, pk: int):
        leads = Lead.objects.select_related("origin", "queue", "assignee", "account_match").prefetch_related(
            Prefetch("audit_events", queryset=AuditEvent.objects.select_related("rule")),
            "exceptions",
            "held_by_items",
        )
        source = request.auth if isinstance(request.auth, Source) else None
        if source is not None:
            leads = leads.filter(origin=source)  # a source sees only its own leads
        return Response(LeadDetailSerializer(get_object_or_404(leads, pk=pk), context={"source": source}).data)
