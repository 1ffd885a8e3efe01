"""Intake and lead API: authenticate, parse, call the intake service, render."""

import contextlib
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import Prefetch
from django.http.request import RawPostDataException
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
from routing.capture.models import RejectionReason
from routing.capture.rejections import Rejection, reason_of, rejections_record
from routing.dispatch import Lane, routing_enqueue_on_commit
from routing.intake import IntakeStatus, LeadIn, leads_intake, leads_waiting_for_routing
from routing.integrations.handoff import lead_deliveries
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


class LeadRefused(ValidationError):
    """A single lead intake refused: its field errors, with the schema version it was read as."""

    def __init__(self, result):
        super().__init__(result.errors)
        self.result = result


class TooManyItems(ValidationError):
    pass


def _body_of(request) -> bytes | None:
    """The raw body, when it was or can still be read within Django's limit."""
    django_request = request._request
    if hasattr(django_request, "_body"):
        return django_request._body
    try:
        return django_request.body
    except (RequestDataTooBig, RawPostDataException):
        return None


def _rejection_of(exc: APIException, request, *, batch: bool) -> Rejection | None:
    """What to keep of a refused post, or None for refusals that are not about what was sent."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    size = int(declared) if declared.isdigit() else 0
    common = {"status_code": exc.status_code, "batch": batch, "size": size}
    if isinstance(exc, PayloadTooLarge):  # the body was not read: only its declared size is known
        return Rejection(reason=RejectionReason.TOO_LARGE, errors={"detail": [str(exc.detail)]}, **common)
    body = _body_of(request)
    common.update(body=body, size=len(body) if body is not None else size)
    if isinstance(exc, UnsupportedMediaType):
        return Rejection(reason=RejectionReason.UNSUPPORTED_MEDIA_TYPE, errors={"detail": [str(exc.detail)]}, **common)
    if isinstance(exc, ParseError):
        return Rejection(reason=RejectionReason.UNREADABLE, errors={"detail": [str(exc.detail)]}, **common)
    if isinstance(exc, LeadRefused):
        result = exc.result
        return Rejection(
            reason=reason_of(result.errors),
            errors=result.errors,
            lead_id=result.lead_id or "",
            schema_version=result.schema_version,
            **common,
        )
    if isinstance(exc, TooManyItems):
        return Rejection(reason=RejectionReason.TOO_MANY_ITEMS, errors=exc.detail, **common)
    if isinstance(exc, ValidationError):
        return Rejection(reason=RejectionReason.NOT_AN_OBJECT, errors=exc.detail, **common)
    return None


@contextlib.contextmanager
def rejections_kept(request, *, batch: bool = False):
    """Keep what a capture source sent when intake refuses it (400, 413, 415), then let the refusal answer."""
    try:
        yield
    except APIException as exc:
        rejection = _rejection_of(exc, request, batch=batch)
        if rejection is not None and isinstance(request.auth, Source):
            _keep(request.auth, [rejection])
        raise


def _keep(source: Source, rejections: list[Rejection]) -> None:
    # Keeping a refusal must never turn the sender's 400 into a 500: if it cannot be kept, the log says so.
    try:
        rejections_record(source, rejections)
    except Exception:
        logger.exception("Could not keep %d rejected post(s) from %s.", len(rejections), source)


def batch_items_keep(source: Source, items: list, results) -> None:
    """Keep each refused item of an accepted batch (the batch answers 200 with per-item errors)."""
    rejections = [
        Rejection(
            reason=reason_of(result.errors),
            status_code=400,
            errors=result.errors,
            item=item,
            batch=True,
            batch_index=index,
            lead_id=result.lead_id or "",
            schema_version=result.schema_version,
        )
        for index, (item, result) in enumerate(zip(items, results, strict=True))
        if result.status == IntakeStatus.INVALID
    ]
    if rejections:
        _keep(source, rejections)


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
        with rejections_kept(request):
            payload = read_json_body(request, limit=settings.HANDOFF["MAX_BODY_BYTES"])
            if not isinstance(payload, dict):
                raise ValidationError({"non_field_errors": ["Expected a JSON object with the lead's fields."]})
            (result,), created = leads_intake(source=request.auth, payloads=[payload])
            if result.status == IntakeStatus.INVALID:
                raise LeadRefused(result)
        routing_enqueue_on_commit(created, lane=Lane.LIVE)
        log_intake(request.auth, [result])
        body = {
            "id": result.id,
            "lead_id": result.lead_id,
            "status": result.lead_status,
            "url": lead_url(request, result.id),
            "schema_version": result.schema_version,
            "warnings": result.warnings or {},
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
        with rejections_kept(request, batch=True):
            payload = read_json_body(request, limit=settings.HANDOFF["MAX_BATCH_BODY_BYTES"])
            limit = settings.HANDOFF["MAX_BATCH_ITEMS"]
            if not isinstance(payload, list):
                raise ValidationError({"non_field_errors": ["Expected a JSON list of lead objects."]})
            if len(payload) > limit:
                raise TooManyItems({"non_field_errors": [f"{len(payload)} items; send at most {limit} per batch."]})
        results, created = leads_intake(source=request.auth, payloads=payload)
        routing_enqueue_on_commit(created, lane=Lane.BULK)
        log_intake(request.auth, results)
        batch_items_keep(request.auth, payload, results)
        return Response(
            {
                "results": [
                    {
                        "lead_id": r.lead_id,
                        "status": r.status,
                        "id": r.id,
                        "errors": r.errors,
                        "schema_version": r.schema_version,
                        "warnings": r.warnings or {},
                    }
                    for r in results
                ]
            }
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
        lead = get_object_or_404(leads, pk=pk)
        lead.delivery_list = lead_deliveries(lead_id=lead.pk)  # outbox events have no relation to prefetch
        return Response(LeadDetailSerializer(lead, context={"source": source}).data)
