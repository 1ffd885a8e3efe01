"""The capture schema API: every version a capture system may post under (admins register new ones in the
admin, Capture schema versions)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from routing.api.auth import IsSourceOrStaff
from routing.capture.services import schema_versions_described
from routing.models import Source


class SchemaVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField())
    kept_under_attributes = serializers.ListField(
        child=serializers.CharField(), help_text="Listed fields the lead model has no column for."
    )
    effective_from = serializers.DateTimeField()
    retires_at = serializers.DateTimeField(allow_null=True)
    live = serializers.BooleanField()
    notes = serializers.CharField()


class SchemaVersionSourceSerializer(serializers.Serializer):
    name = serializers.CharField()
    default_version = serializers.CharField(allow_null=True)
    unknown_fields = serializers.ChoiceField(choices=["reject", "keep"])


class SchemaVersionListSerializer(serializers.Serializer):
    versions = SchemaVersionSerializer(many=True)
    newest_live = serializers.CharField(allow_null=True, help_text="What a lead naming no version is read as.")
    source = SchemaVersionSourceSerializer(
        required=False,
        help_text="When a capture source asks: the version its leads are read as, and its unknown-field policy.",
    )


class SchemaVersionsView(APIView):
    permission_classes = [IsSourceOrStaff]

    @extend_schema(
        operation_id="schema_versions_list",
        summary="Capture schema versions: their fields, when each takes effect and retires",
        responses={200: SchemaVersionListSerializer},
    )
    def get(self, request):
        source = request.auth if isinstance(request.auth, Source) else None
        return Response(schema_versions_described(source=source))
