"""The rules API's success metrics: a rule's targets and source of truth (read and set on the draft, like any
contract field: live once promoted), with its production version's actuals over the last seven days."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions.permissions import IsConsoleUser
from routing.governance.metrics import TARGET_FIELDS, MetricStatus, success_metrics, target_problem
from routing.governance.services import RuleDraftError, rule_draft_save
from routing.models import Rule


class MetricSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The target's field, e.g. target_sla_adherence.")
    label = serializers.CharField()
    target = serializers.FloatField(allow_null=True, help_text="The production version's target; null: none.")
    actual = serializers.FloatField(allow_null=True, help_text="Over the last 7 days; null with no leads.")
    unit = serializers.CharField()
    status = serializers.ChoiceField(choices=MetricStatus.choices)


def _float(value):
    return None if value is None else float(value)


class TargetsSerializer(serializers.Serializer):
    target_exception_rate = serializers.DecimalField(
        max_digits=5, decimal_places=2, allow_null=True, required=False, help_text="Percent, 0–100; null: none."
    )
    target_latency_p95_minutes = serializers.DecimalField(
        max_digits=7, decimal_places=2, allow_null=True, required=False, help_text="Minutes, above 0; null: none."
    )
    target_overrides_per_week = serializers.IntegerField(
        min_value=0, max_value=2_147_483_647, allow_null=True, required=False, help_text="Null: none."
    )
    target_sla_adherence = serializers.DecimalField(
        max_digits=5, decimal_places=2, allow_null=True, required=False, help_text="Percent, 0–100; null: none."
    )
    source_of_truth = serializers.CharField(
        max_length=100, allow_blank=True, required=False, help_text="The system that owns the lead state on this route."
    )

    def validate(self, data):
        problems = {
            name: [target_problem(name, data[name])] for name in TARGET_FIELDS if target_problem(name, data.get(name))
        }
        if problems:
            raise ValidationError(problems)
        return data


class RuleTargetsSerializer(TargetsSerializer):
    rule = serializers.IntegerField()
    actuals = MetricSerializer(
        many=True, help_text="The production version's targets against the last 7 days; empty before production."
    )


def _body(rule: Rule) -> dict:
    result = success_metrics(rule_ids=[rule.pk]).get(rule.pk)
    actuals = []
    if result is not None:
        actuals = [
            {
                "key": m.key,
                "label": m.label,
                "target": None if m.target is None else float(m.target),
                "actual": _float(m.actual),
                "unit": m.unit,
                "status": m.status,
            }
            for m in result.metrics
        ]
    return {
        "rule": rule.pk,
        **{name: getattr(rule, name) for name in (*TARGET_FIELDS, "source_of_truth")},
        "actuals": actuals,
    }


class RuleTargetsView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="rules_targets",
        summary="A rule's success-metric targets (draft) and its production actuals over the last 7 days",
        responses={200: RuleTargetsSerializer},
    )
    def get(self, request, pk):
        rule = get_object_or_404(Rule, pk=pk)
        return Response(RuleTargetsSerializer(_body(rule)).data)

    @extend_schema(
        operation_id="rules_set_targets",
        summary="Set a rule's success-metric targets and source of truth on its draft (live once promoted)",
        request=TargetsSerializer,
        responses={
            200: RuleTargetsSerializer,
            400: OpenApiResponse(description="A target out of range, or a draft that cannot be saved as it is."),
            403: OpenApiResponse(description="Only the rule's owner or an admin edits it."),
        },
    )
    def patch(self, request, pk):
        rule = get_object_or_404(Rule, pk=pk)
        body = TargetsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        for name, value in body.validated_data.items():
            setattr(rule, name, value)
        try:
            rule_draft_save(rule=rule, by=request.user)
        except RuleDraftError as exc:
            raise ValidationError(
                {"draft": [f"The draft cannot be saved as it is: {p}" for p in exc.problems]}
            ) from None
        return Response(RuleTargetsSerializer(_body(rule)).data)
