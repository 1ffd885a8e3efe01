"""The exceptions API: the console's work for people with API tokens or sessions (never capture sources)."""

from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions import services, triage
from exceptions.api.serializers import (
    BulkResultSerializer,
    BulkSerializer,
    ConflictSerializer,
    ExceptionItemSerializer,
    IncidentActionResultSerializer,
    IncidentAssignSerializer,
    IncidentConflictSerializer,
    IncidentResolveSerializer,
    IncidentSerializer,
    RerouteSerializer,
    ResolveSerializer,
)
from exceptions.bulk import exceptions_bulk, filtered_item_ids
from exceptions.filters import ExceptionFilter, IncidentFilter
from exceptions.incident_actions import IncidentConflict, incident_acknowledge, incident_assign, incident_resolve
from exceptions.models import ExceptionItem
from exceptions.permissions import IsConsoleUser
from exceptions.selectors import exception_api_queryset, incident_list

CONFLICT = OpenApiResponse(ConflictSerializer, description="The item's state forbids it; says who did what.")


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class ExceptionListView(generics.ListAPIView):
    permission_classes = [IsConsoleUser]
    serializer_class = ExceptionItemSerializer
    pagination_class = Pages
    filter_backends = [DjangoFilterBackend]
    filterset_class = ExceptionFilter

    def get_queryset(self):
        return exception_api_queryset()

    def filter_queryset(self, queryset):
        filters = ExceptionFilter(self.request.query_params, queryset=queryset, request=self.request)
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        return filters.ordered()


class ExceptionDetailView(generics.RetrieveAPIView):
    permission_classes = [IsConsoleUser]
    serializer_class = ExceptionItemSerializer

    def get_queryset(self):
        return exception_api_queryset()


class ItemAction(APIView):
    permission_classes = [IsConsoleUser]

    def item(self, pk) -> ExceptionItem:
        return get_object_or_404(ExceptionItem.objects.select_related("lead", "queue", "assignee"), pk=pk)

    def respond(self, action):
        """Run the action; a conflict or a refusal becomes its documented error (routing/api/errors.py)."""
        item = action()
        return Response(ExceptionItemSerializer(exception_api_queryset().get(pk=item.pk)).data)


class AcknowledgeView(ItemAction):
    @extend_schema(request=None, responses={200: ExceptionItemSerializer, 409: CONFLICT}, summary="Acknowledge")
    def post(self, request, pk):
        item = self.item(pk)
        return self.respond(lambda: services.exception_acknowledge(item=item, by=request.user))


class ResolveView(ItemAction):
    @extend_schema(
        request=ResolveSerializer,
        responses={200: ExceptionItemSerializer, 409: CONFLICT},
        summary="Resolve with a resolution code and a note",
    )
    def post(self, request, pk):
        item = self.item(pk)
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self.respond(lambda: services.exception_resolve(item=item, by=request.user, **body.validated_data))


class RerouteView(ItemAction):
    @extend_schema(
        request=RerouteSerializer,
        responses={200: ExceptionItemSerializer, 409: CONFLICT},
        summary="Correct the lead's data and route it again through the engine",
    )
    def post(self, request, pk):
        item = self.item(pk)
        body = RerouteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self.respond(
            lambda: triage.lead_edit_and_reroute(
                item=item,
                by=request.user,
                changes=body.validated_data["lead"],
                expected_version=body.validated_data.get("version"),
            )[1]
        )


class BulkView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        request=BulkSerializer,
        responses={200: BulkResultSerializer},
        summary="One action over many items: a list of ids, or every item a filter selects",
    )
    def post(self, request):
        body = BulkSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "filter" in data:
            ids, errors = filtered_item_ids(data["filter"])
            if errors:
                raise ValidationError({"filter": errors})
        else:
            ids = data["ids"]
        try:
            outcome = exceptions_bulk(
                action=data["action"],
                item_ids=ids,
                by=request.user,
                assignee=data.get("assignee"),
                resolution=data.get("code", ""),
                note=data["note"],
            )
        except services.InvalidAction as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response({"done": len(outcome.done), "skipped": outcome.skipped})


class IncidentListView(generics.ListAPIView):
    """Incidents, newest first; `?status=open` (repeatable: open, acknowledged, resolved) narrows them, and
    `?queue=` and `?assignee=` take an id or the name the rows show."""

    permission_classes = [IsConsoleUser]
    serializer_class = IncidentSerializer
    pagination_class = Pages
    filter_backends = [DjangoFilterBackend]
    filterset_class = IncidentFilter

    def filter_queryset(self, queryset):
        filters = IncidentFilter(self.request.query_params, queryset=queryset, request=self.request)
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        return filters.qs

    def get_queryset(self):
        incidents = incident_list().order_by("-opened_at", "-id")
        statuses = self.request.query_params.getlist("status")
        unknown = sorted(set(statuses) - {"open", "acknowledged", "resolved"})
        if unknown:
            raise ValidationError(
                {"status": [f"Unknown status {', '.join(unknown)}: use open, acknowledged or resolved."]}
            )
        return incidents.filter(status__in=statuses) if statuses else incidents


class IncidentDetailView(generics.RetrieveAPIView):
    """One incident; its items are `GET /api/v1/exceptions/?incident=<id>` (add `status` to see resolved ones)."""

    permission_classes = [IsConsoleUser]
    serializer_class = IncidentSerializer

    def get_queryset(self):
        return incident_list()

    def get_object(self):
        incident = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if incident is None:
            raise NotFound(f"No incident #{self.kwargs['pk']}.")
        return incident


INCIDENT_CONFLICT = OpenApiResponse(IncidentConflictSerializer, description="The incident's state forbids it.")


class IncidentAction(APIView):
    permission_classes = [IsConsoleUser]

    def run(self, pk, action):
        incident = incident_list().filter(pk=pk).first()
        if incident is None:
            raise NotFound(f"No incident #{pk}.")
        try:
            fresh, outcome = action(incident)
        except IncidentConflict as conflict:
            body = IncidentSerializer(incident_list().get(pk=pk)).data
            return Response({"detail": conflict.message, "incident": body}, status=409)
        body = IncidentSerializer(incident_list().get(pk=fresh.pk)).data
        return Response({"incident": body, "done": len(outcome.done), "skipped": outcome.skipped})


class IncidentAcknowledgeView(IncidentAction):
    @extend_schema(
        request=None,
        responses={200: IncidentActionResultSerializer, 409: INCIDENT_CONFLICT},
        summary="Acknowledge the incident and its open items",
    )
    def post(self, request, pk):
        return self.run(pk, lambda incident: incident_acknowledge(incident=incident, by=request.user))


class IncidentAssignView(IncidentAction):
    @extend_schema(
        request=IncidentAssignSerializer,
        responses={200: IncidentActionResultSerializer, 409: INCIDENT_CONFLICT},
        summary="Assign the incident and its unresolved items",
    )
    def post(self, request, pk):
        body = IncidentAssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        to = body.validated_data["assignee"]
        return self.run(pk, lambda incident: incident_assign(incident=incident, to=to, by=request.user))


class IncidentResolveView(IncidentAction):
    @extend_schema(
        request=IncidentResolveSerializer,
        responses={200: IncidentActionResultSerializer, 409: INCIDENT_CONFLICT},
        summary="Resolve the incident and every unresolved item of it with one code and note",
    )
    def post(self, request, pk):
        body = IncidentResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        return self.run(
            pk,
            lambda incident: incident_resolve(
                incident=incident, by=request.user, resolution=data["code"], note=data["note"]
            ),
        )
