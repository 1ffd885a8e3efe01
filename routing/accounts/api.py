"""The accounts API: put and delete one account (CRM sync), list and read them, and match a lead without writing
anything. Console people only (a session, or a personal token); capture sources get 403."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import ValidationError as PydanticValidationError
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions.permissions import IsConsoleUser
from routing.accounts.leads import sample_account
from routing.accounts.models import Account
from routing.accounts.selectors import account_list
from routing.accounts.services import AccountError, account_delete, account_errors, account_upsert
from routing.intake import LeadIn, validation_errors


class AccountSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", allow_null=True, default=None)

    class Meta:
        model = Account
        fields = ["account_id", "name", "domains", "phone", "country", "owner", "territory", "attributes", "updated_at"]


class SavedAccountSerializer(AccountSerializer):
    notes = serializers.ListField(
        child=serializers.CharField(),
        help_text="What was kept off the account (a free-mail domain) or will not match as you may expect (a "
        "domain another account has).",
    )

    class Meta(AccountSerializer.Meta):
        fields = [*AccountSerializer.Meta.fields, "notes"]


class AccountInSerializer(serializers.Serializer):
    """What a PUT sends: the whole account (a field left out is emptied). `domains` is a list, or one string
    separated by `;` as in the CSV file; `owner` a username or an email address. Only the shape is checked
    here; the values (lengths, ISO country, domains, owner) by the service, so one answer names every problem."""

    name = serializers.CharField(help_text="At most 300 characters.")
    domains = serializers.JSONField(required=False, help_text='["acme.com", "acme.co.uk"] or "acme.com;acme.co.uk"')
    phone = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="At most 32.")
    country = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="ISO 3166-1 alpha-2 (US, DE)."
    )
    owner = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    territory = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="At most 200.")
    attributes = serializers.DictField(required=False)

    def to_internal_value(self, data):
        # A misspelt field ("domain", "ownr") would otherwise be dropped, and a PUT empties what it leaves out.
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        problems = {name: [f"Unknown field. Allowed fields: {', '.join(self.fields)}."] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({**exc.detail, **problems}) from None
        if problems:
            raise serializers.ValidationError(problems)
        return value


class MatchedAccountSerializer(serializers.Serializer):
    account_id = serializers.CharField()
    name = serializers.CharField()
    owner = serializers.CharField(allow_null=True)
    territory = serializers.CharField(allow_blank=True)


class CandidateSerializer(serializers.Serializer):
    account_id = serializers.CharField()
    name = serializers.CharField()
    domain = serializers.CharField(allow_null=True, help_text="The account domain the email matched.")
    name_match = serializers.CharField(allow_null=True, help_text="exact, close, or null")
    phone = serializers.BooleanField()
    country = serializers.BooleanField()
    eligible = serializers.BooleanField(help_text="Whether these signals are enough for a match.")
    note = serializers.CharField()


class MatchSerializer(serializers.Serializer):
    account = MatchedAccountSerializer(allow_null=True)
    method = serializers.CharField(help_text="domain, name, close_name, phone, ambiguous or none")
    confidence = serializers.FloatField()
    candidates = CandidateSerializer(many=True)
    why = serializers.CharField()


class Pages(PageNumberPagination):
    page_size = 50


class AccountListView(ListAPIView):
    permission_classes = [IsConsoleUser]
    serializer_class = AccountSerializer
    pagination_class = Pages

    @extend_schema(
        operation_id="accounts_list",
        summary="Accounts, by name, CRM id or domain",
        parameters=[OpenApiParameter("q", str, description="Search: part of the name, a CRM id or a domain.")],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return account_list(search=self.request.query_params.get("q", ""))


def _no_such_account(account_id: str) -> Response:
    return Response({"detail": f"No account {account_id!r}."}, status=status.HTTP_404_NOT_FOUND)


class AccountDetailView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(operation_id="accounts_retrieve", summary="One account", responses={200: AccountSerializer})
    def get(self, request, account_id):
        account = Account.objects.select_related("owner").filter(account_id=account_id).first()
        if account is None:
            return _no_such_account(account_id)
        return Response(AccountSerializer(account).data)

    @extend_schema(
        operation_id="accounts_put",
        summary="Create or replace the account with this CRM id",
        request=AccountInSerializer,
        responses={
            200: SavedAccountSerializer,
            201: SavedAccountSerializer,
            400: OpenApiResponse(description='Field errors, e.g. {"domains": ["\'co.uk\' is a public suffix…"]}'),
        },
    )
    def put(self, request, account_id):
        body = AccountInSerializer(data=request.data)
        if not body.is_valid():
            # Every problem at once: the fields of the wrong shape, and what the service finds in the others.
            given = request.data if isinstance(request.data, dict) else {}
            rest = {k: v for k, v in given.items() if k not in body.errors and k in body.fields}
            raise ValidationError({**account_errors(account_id=account_id, data=rest), **body.errors})
        try:
            account, created, notes = account_upsert(account_id=account_id, data=body.validated_data, by=request.user)
        except AccountError as exc:
            raise ValidationError(exc.errors) from None
        account = Account.objects.select_related("owner").get(pk=account.pk)
        account.notes = notes
        return Response(
            SavedAccountSerializer(account).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(
        operation_id="accounts_delete",
        summary="Delete the account (past matches keep what routing saw)",
        responses={204: None, 404: OpenApiResponse(description="No such account.")},
    )
    def delete(self, request, account_id):
        if not account_delete(account_id=account_id, by=request.user):
            return _no_such_account(account_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccountMatchView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="accounts_match",
        summary="Which account a lead would match, and why (writes nothing)",
        request={"application/json": {"$ref": "#/components/schemas/LeadIn"}},
        responses={200: MatchSerializer, 400: OpenApiResponse(description="Invalid lead fields.")},
    )
    def post(self, request):
        if not isinstance(request.data, dict):
            raise ValidationError({"lead": ["Expected a JSON object with the lead's fields."]})
        try:  # validated as intake validates, lead_id optional
            lead = LeadIn.model_validate({"lead_id": "match", **request.data})
        except PydanticValidationError as exc:
            raise ValidationError(validation_errors(exc)) from None
        return Response(MatchSerializer(sample_account(lead.model_dump()).as_body()).data)
