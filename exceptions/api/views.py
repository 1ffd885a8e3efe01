"""The exceptions API: the console's work for people with API tokens or sessions (never capture sources)."""

from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions import services, triage
from exceptions.api.serializers import (
    BulkResultSerializer,
    BulkSerializer,
    ConflictSerializer,
    ExceptionItemSerializer,
    RerouteSerializer,
    ResolveSerializer,
)
from exceptions.bulk import exceptions_bulk, filtered_item_ids
from exceptions.filters import ExceptionFilter
from exceptions.models import ExceptionItem
from exceptions.permissions import IsConsoleUser
from exceptions.selectors import exception_api_queryset

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
