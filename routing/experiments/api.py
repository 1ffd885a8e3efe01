"""The experiments API (README: Experiments): start one on a rule's staging version, list and read them with
each arm's figures, stop one, decide one. Console people read them; the rule's owner or an admin acts."""

import django_filters
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions.permissions import IsConsoleUser
from routing.experiments import services
from routing.experiments.figures import CRITERIA, Verdict, experiment_figures
from routing.experiments.models import Experiment, ExperimentStatus
from routing.experiments.selectors import experiment_list
from routing.experiments.services import MAX_LEADS_LIMIT
from routing.models import Rule


class ExperimentStartRequest(serializers.Serializer):
    percent = serializers.IntegerField(min_value=1, max_value=99, help_text="The candidate's share of the leads.")
    max_leads = serializers.IntegerField(
        min_value=1,
        max_value=MAX_LEADS_LIMIT,
        required=False,
        allow_null=True,
        default=None,
        help_text="Ends once this many are enrolled.",
    )
    ends_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Ends then (ISO 8601). Give this, max_leads or both."
    )
    criteria = serializers.DictField(
        child=serializers.FloatField(),
        required=False,
        default=dict,
        help_text="Success, declared up front: the candidate's relative change against production in percent, by "
        f'criterion ({", ".join(CRITERIA)}), e.g. {{"route_latency": -50, "manual_touches": -70}}.',
    )


def _interval(help_text: str):
    return serializers.ListField(
        child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True, help_text=help_text
    )


class ExperimentArmSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=["production", "candidate"])
    leads = serializers.IntegerField(help_text="Enrolled leads this arm routed.")
    assigned = serializers.IntegerField(help_text="Of them, assigned (the route latency's sample).")
    route_latency_p50_ms = serializers.FloatField(allow_null=True, help_text="Median of assigned_at - received_at.")
    route_latency_ci_ms = _interval("95% interval of the median (order statistics); null below 8 assigned leads.")
    exceptions = serializers.IntegerField(help_text="Leads with an exception item opened after enrolment.")
    exception_rate = serializers.FloatField(allow_null=True)
    exception_ci = _interval("Wilson 95% interval of the exception rate.")
    manual_touches = serializers.IntegerField(help_text="Leads a person acted on by hand after enrolment.")
    manual_touch_rate = serializers.FloatField(allow_null=True)
    manual_touch_ci = _interval("Wilson 95% interval of the manual-touch rate.")
    converted = serializers.IntegerField(help_text="Leads the attribution upload marked converted.")
    conversion_rate = serializers.FloatField(allow_null=True)
    conversion_ci = _interval("Wilson 95% interval of the conversion rate.")


class CriterionVerdictSerializer(serializers.Serializer):
    criterion = serializers.ChoiceField(choices=list(CRITERIA))
    label = serializers.CharField()
    target_percent = serializers.FloatField()
    production = serializers.FloatField(allow_null=True)
    candidate = serializers.FloatField(allow_null=True)
    change_percent = serializers.FloatField(allow_null=True, help_text="The candidate against production.")
    verdict = serializers.ChoiceField(choices=[Verdict.MET, Verdict.NOT_MET, Verdict.TOO_EARLY])
    why = serializers.CharField()


class ExperimentSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name")
    candidate_version = serializers.IntegerField(source="candidate.number")
    baseline_version = serializers.IntegerField(
        source="baseline.number", allow_null=True, default=None, help_text="Production's version; null if none."
    )
    started_by = serializers.CharField(source="started_by.username")
    ended_by = serializers.CharField(source="ended_by.username", allow_null=True, default=None)
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "rule",
            "rule_name",
            "status",
            "end_reason",
            "candidate_version",
            "baseline_version",
            "percent",
            "max_leads",
            "ends_at",
            "criteria",
            "enrolled",
            "started_by",
            "started_at",
            "ended_by",
            "ended_at",
            "decided_by",
            "decided_at",
            "decision_note",
        ]


class ExperimentDetailSerializer(ExperimentSerializer):
    arms = serializers.SerializerMethodField()
    verdicts = serializers.SerializerMethodField()
    min_leads_per_arm = serializers.SerializerMethodField()
    final_figures = serializers.JSONField(help_text="The figures and verdicts recorded with the decision.")

    class Meta(ExperimentSerializer.Meta):
        fields = [*ExperimentSerializer.Meta.fields, "arms", "verdicts", "min_leads_per_arm", "final_figures"]

    def _figures(self, experiment):
        if not hasattr(experiment, "_figures"):
            experiment._figures = experiment_figures(experiment)
        return experiment._figures

    @extend_schema_field(ExperimentArmSerializer(many=True))
    def get_arms(self, experiment) -> list[dict]:
        return ExperimentArmSerializer(self._figures(experiment).arms, many=True).data

    @extend_schema_field(CriterionVerdictSerializer(many=True))
    def get_verdicts(self, experiment) -> list[dict]:
        return CriterionVerdictSerializer(self._figures(experiment).verdicts, many=True).data

    def get_min_leads_per_arm(self, experiment) -> int:
        return self._figures(experiment).min_leads_per_arm


class ExperimentConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    experiment = serializers.IntegerField(allow_null=True, help_text="The experiment in the way (or this one).")


CONFLICT = OpenApiResponse(
    ExperimentConflictSerializer, description="Not in a state this applies to: the detail says why."
)
FORBIDDEN = OpenApiResponse(description="Only the rule's owner or an admin.")


def _conflict(exc: services.ExperimentConflict) -> Response:
    body = {"detail": exc.message, "experiment": exc.experiment.pk if exc.experiment else None}
    return Response(body, status=status.HTTP_409_CONFLICT)


def _detail(experiment: Experiment) -> dict:
    return ExperimentDetailSerializer(experiment_list().get(pk=experiment.pk)).data


class StartView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="rules_experiments_start",
        summary="Start an experiment: the rule's staging version against production on a share of its leads",
        request=ExperimentStartRequest,
        responses={201: ExperimentDetailSerializer, 403: FORBIDDEN, 409: CONFLICT},
    )
    def post(self, request, pk):
        rule = get_object_or_404(Rule, pk=pk)
        body = ExperimentStartRequest(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            experiment = services.experiment_start(rule=rule, by=request.user, **body.validated_data)
        except services.ExperimentInputError as exc:
            raise ValidationError(exc.problems) from None
        except services.ExperimentConflict as exc:
            return _conflict(exc)
        return Response(_detail(experiment), status=status.HTTP_201_CREATED)


class ExperimentFilter(django_filters.FilterSet):
    rule = django_filters.NumberFilter(field_name="rule_id", min_value=1, help_text="Only this rule's.")
    status = django_filters.MultipleChoiceFilter(
        choices=ExperimentStatus.choices, help_text="Only experiments in these states (repeat it for several)."
    )

    class Meta:
        model = Experiment
        fields = ["rule", "status"]


class ExperimentListView(ListAPIView):
    """Experiments, newest first; `?rule=` and `?status=` narrow them (figures on each one's own page)."""

    permission_classes = [IsConsoleUser]
    serializer_class = ExperimentSerializer
    pagination_class = None  # one runs at a time, for days: a few dozen a year
    filter_backends = [DjangoFilterBackend]
    filterset_class = ExperimentFilter

    def get_queryset(self):
        return experiment_list()

    @extend_schema(operation_id="experiments_list", summary="Experiments, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ExperimentDetailView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="experiments_retrieve",
        summary="One experiment with each arm's figures, their 95% intervals, and the criteria's verdicts",
        responses={200: ExperimentDetailSerializer},
    )
    def get(self, request, pk):
        return Response(ExperimentDetailSerializer(get_object_or_404(experiment_list(), pk=pk)).data)


class StopView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="experiments_stop",
        summary="Stop a running experiment now (its figures stay, for the decision)",
        request=None,
        responses={200: ExperimentDetailSerializer, 403: FORBIDDEN, 409: CONFLICT},
    )
    def post(self, request, pk):
        experiment = get_object_or_404(experiment_list(), pk=pk)
        try:
            experiment = services.experiment_stop(experiment=experiment, by=request.user)
        except services.ExperimentConflict as exc:
            return _conflict(exc)
        return Response(_detail(experiment))


class ExperimentDecideRequest(serializers.Serializer):
    decision = serializers.ChoiceField(
        choices=list(services.Decision.ALL), help_text='"promote" the candidate to production, or "keep" production.'
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class DecideView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="experiments_decide",
        summary="Promote the candidate (through the promotion gates) or keep production, with the figures recorded",
        request=ExperimentDecideRequest,
        responses={
            200: ExperimentDetailSerializer,
            400: OpenApiResponse(description="Bad input, or the promotion gates refused: every failed gate."),
            403: FORBIDDEN,
            409: CONFLICT,
        },
    )
    def post(self, request, pk):
        experiment = get_object_or_404(experiment_list(), pk=pk)
        body = ExperimentDecideRequest(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            experiment = services.experiment_decide(experiment=experiment, by=request.user, **body.validated_data)
        except services.ExperimentConflict as exc:
            return _conflict(exc)
        return Response(_detail(experiment))
