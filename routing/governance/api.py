"""The rules API: list and read rules, run their test cases, promote, roll back, replay, preview, and assign
a lead by hand (an override). Console people only (sessions or personal tokens); capture sources get 403.
The services' refusals become their documented 400/409 bodies in routing/api/errors.py."""

import django_filters
from django.contrib.auth import get_user_model
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions.filters import IdOrNameFilter
from exceptions.models import ExceptionStatus
from exceptions.permissions import IsConsoleUser
from exceptions.triage import lead_assign_manually
from routing.accounts.api import MatchSerializer
from routing.conditions import ConditionError, validate_condition
from routing.dateranges import RangeBoundSerializerField
from routing.governance import services
from routing.governance.backup_owner import rule_backup_owner_set
from routing.governance.diffs import DiffKind, FieldDiff, contract_diff
from routing.governance.explain import condition_text
from routing.governance.gates import cases_problems, cases_run
from routing.governance.models import ReplayRun
from routing.governance.preview import routing_preview
from routing.governance.replay import replay_start
from routing.governance.selectors import rule_rows, this_week
from routing.models import Lead, Queue, Rule, RuleStage


class GateSerializer(serializers.Serializer):
    gate = serializers.CharField()
    passed = serializers.BooleanField()
    message = serializers.CharField()
    not_applicable = serializers.BooleanField(
        required=False,
        help_text="True when the gate has nothing to judge (nothing to promote, nothing staged): it still stops "
        "the promotion (passed is false) but is no fault to fix. Absent (or false) otherwise.",
    )


class RuleChangeSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField(help_text='"draft edit", or the promotion: staging, production, rollback, forced.')
    change = serializers.CharField(source="label", help_text="What changed: the fields edited, or the version.")
    by = serializers.CharField(allow_blank=True, help_text="Username; empty when unknown.")


class RuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="rule.pk")
    name = serializers.CharField(source="rule.name")
    stage = serializers.CharField(source="rule.stage")
    owner = serializers.CharField(source="rule.owner.username", allow_null=True, default=None)
    owner_active = serializers.SerializerMethodField(
        help_text="False when the owner was deactivated: the rule moves no stage until an admin reassigns it."
    )
    backup_owner = serializers.CharField(
        source="rule.backup_owner.username",
        allow_null=True,
        default=None,
        help_text="Who else may sign the rule off and is told of changes; set it with PATCH.",
    )
    priority = serializers.IntegerField(source="rule.priority")
    queue = serializers.CharField(source="rule.queue.name")
    assignee = serializers.CharField(
        source="rule.assign_to", help_text='then.assignee: "account_owner", "queue", or "" (sticky, else the queue)'
    )
    sla_minutes = serializers.IntegerField(source="rule.sla_minutes", allow_null=True)
    production_version = serializers.IntegerField(
        source="rule.production_version.number", allow_null=True, default=None
    )
    staging_version = serializers.IntegerField(source="rule.staging_version.number", allow_null=True, default=None)
    test_status = serializers.CharField(
        help_text="The stored results of the draft's test cases: passing, N failing, none, cannot run, or not run."
    )
    tests_run_at = serializers.DateTimeField(allow_null=True, help_text="When the stored results were computed.")
    tests_stale = serializers.BooleanField(
        help_text="The condition, test cases or queue (or, for a rule reading account fields, an account) changed"
        " since the stored results were computed."
    )
    overrides_this_week = serializers.IntegerField()
    flagged = serializers.BooleanField(help_text="Overrides this week at or above the flag threshold.")
    signed_this_week = serializers.BooleanField(
        help_text="Signed off this ISO week with no change since (a later change reopens the sign-off)."
    )
    changed_since_sign_off = RuleChangeSerializer(
        many=True, help_text="Changes after this week's sign-off, which reopen it; oldest first."
    )
    last_sign_off = serializers.SerializerMethodField()

    def get_owner_active(self, row) -> bool:
        return not row.owner_inactive

    def get_last_sign_off(self, row) -> dict | None:
        sign_off = row.last_sign_off
        if sign_off is None:
            return None
        return {"week": sign_off.iso_week_label, "by": sign_off.by.username, "at": sign_off.at}


class VersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    priority = serializers.IntegerField()
    queue = serializers.CharField(source="queue.name")
    owner = serializers.CharField(source="owner.username")
    condition = serializers.JSONField()
    created_at = serializers.DateTimeField()
    forced = serializers.BooleanField()


class DiffLineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=DiffKind.choices, help_text="Unchanged, added (+) or removed (−) on the newer side."
    )
    text = serializers.CharField()


class FieldDiffSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The contract field, e.g. condition, test_cases, sla_minutes.")
    label = serializers.CharField(help_text="The field as the console names it, e.g. When (condition).")
    lines = DiffLineSerializer(
        many=True,
        help_text="The field line by line: the condition one line per leaf indented by group, each test case on a"
        " line, texts by their lines, a single value as the old line removed and the new one added.",
    )


class RuleDetailSerializer(RuleSerializer):
    description = serializers.CharField(source="rule.description")
    inputs = serializers.CharField(source="rule.inputs")
    outputs = serializers.CharField(source="rule.outputs")
    rollback_plan = serializers.CharField(source="rule.rollback_plan")
    condition = serializers.JSONField(source="rule.condition")
    condition_text = serializers.SerializerMethodField()
    test_cases = serializers.JSONField(source="rule.test_cases")
    source_of_truth = serializers.CharField(
        source="rule.source_of_truth", help_text="The system that owns the lead state on this route (draft)."
    )
    target_exception_rate = serializers.DecimalField(
        source="rule.target_exception_rate", max_digits=5, decimal_places=2, allow_null=True
    )
    target_latency_p95_minutes = serializers.DecimalField(
        source="rule.target_latency_p95_minutes", max_digits=7, decimal_places=2, allow_null=True
    )
    target_overrides_per_week = serializers.IntegerField(source="rule.target_overrides_per_week", allow_null=True)
    target_sla_adherence = serializers.DecimalField(
        source="rule.target_sla_adherence", max_digits=5, decimal_places=2, allow_null=True
    )
    versions = serializers.SerializerMethodField()
    live_version = serializers.IntegerField(
        source="rule.production_version.number",
        allow_null=True,
        default=None,
        help_text="The version live in production; null when nothing is in production yet.",
    )
    draft_differs = serializers.SerializerMethodField(
        help_text="The draft is not what production runs: some contract field differs, or nothing is in production."
    )
    diff = serializers.SerializerMethodField(
        help_text="The draft against the production version, field by field (every field with a value when nothing"
        " is in production); empty when they are the same."
    )

    def get_condition_text(self, row) -> str:
        return condition_text(row.rule.condition)

    def _draft_diff(self, row) -> list[FieldDiff]:
        if not hasattr(row, "draft_diff"):
            row.draft_diff = contract_diff(row.rule.production_version, row.rule)
        return row.draft_diff

    def get_draft_differs(self, row) -> bool:
        return row.rule.production_version_id is None or bool(self._draft_diff(row))

    @extend_schema_field(FieldDiffSerializer(many=True))
    def get_diff(self, row) -> list[dict]:
        return [change.as_json() for change in self._draft_diff(row)]

    def get_versions(self, row) -> list[dict]:
        versions = row.rule.versions.select_related("queue", "owner").order_by("-number")
        return VersionSerializer(versions, many=True).data


class RuleFilter(django_filters.FilterSet):
    """The rule list narrowed by queue or owner, each by id or by the name its rows show."""

    queue = IdOrNameFilter(
        queryset=Queue.objects.order_by("name"),
        name_field="name",
        help_text="The queue's id or its name, as the rows show it (e.g. Sales).",
    )
    owner = IdOrNameFilter(
        queryset=get_user_model().objects.order_by("username"),
        name_field="username",
        help_text="The owner's id or username, as the rows show it (e.g. ada).",
    )

    class Meta:
        model = Rule
        fields = ["queue", "owner"]


class RuleListView(ListAPIView):
    """Every rule, by priority; `?queue=` and `?owner=` take an id or the name the rows show."""

    permission_classes = [IsConsoleUser]
    serializer_class = RuleSerializer
    pagination_class = None
    filter_backends = [DjangoFilterBackend]
    filterset_class = RuleFilter

    def get_queryset(self):
        return Rule.objects.none()  # for the filter's schema only: the rows are read in `filter_queryset`

    def filter_queryset(self, queryset):
        filters = RuleFilter(self.request.query_params, queryset=queryset, request=self.request)
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        queue, owner = filters.form.cleaned_data.get("queue"), filters.form.cleaned_data.get("owner")
        rows = rule_rows(owner=owner)
        return [row for row in rows if row.rule.queue_id == queue.pk] if queue else rows


class BackupOwnerRequest(serializers.Serializer):
    backup_owner = serializers.CharField(
        allow_null=True,
        allow_blank=True,
        max_length=150,
        help_text="Username of an active rule owner or admin, not the owner; null or empty clears it.",
    )


class RuleDetailView(RetrieveAPIView):
    permission_classes = [IsConsoleUser]
    serializer_class = RuleDetailSerializer

    def get_object(self):
        rows = rule_rows(rule_id=self.kwargs["pk"])
        if not rows:
            raise Http404("No such rule.")
        return rows[0]

    @extend_schema(
        operation_id="rules_set_backup_owner",
        summary="Set or clear a rule's backup owner (the owner or an admin)",
        request=BackupOwnerRequest,
        responses={
            200: RuleDetailSerializer,
            400: OpenApiResponse(description="No such user, the owner themselves, or not an active rule owner."),
            403: OpenApiResponse(description="Only the rule's owner or an admin changes its backup owner."),
        },
    )
    def patch(self, request, pk):
        rule = get_object_or_404(Rule.objects.select_related("owner"), pk=pk)
        body = BackupOwnerRequest(data=request.data)
        body.is_valid(raise_exception=True)
        username, backup = body.validated_data["backup_owner"], None
        if username:
            backup = get_user_model().objects.filter(username=username).first()
            if backup is None:
                raise ValidationError(
                    {"backup_owner": [f"No user {username!r}: give an existing username, or null to clear it."]}
                )
        rule_backup_owner_set(rule=rule, backup_owner=backup, by=request.user)
        return Response(RuleDetailSerializer(self.get_object()).data)


class CaseResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    passed = serializers.BooleanField()
    expected = serializers.CharField()
    got = serializers.CharField()
    why = serializers.CharField()


class RunTestsRequest(serializers.Serializer):
    test_cases = serializers.JSONField(
        required=False,
        help_text="Cases to try instead of the draft's own (not stored); without it the draft's "
        "own cases run and their results are stored on the rule.",
    )


class RunTestsView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="rules_test",
        summary="Run a rule's test cases against its draft condition (the draft's own: results stored on the rule)",
        request=RunTestsRequest,
        responses={
            200: CaseResultSerializer(many=True),
            400: OpenApiResponse(description="Malformed or too many test cases, or a condition that does not compile."),
        },
    )
    def post(self, request, pk):
        rule = get_object_or_404(Rule.objects.select_related("queue"), pk=pk)
        body = RunTestsRequest(data=request.data)
        body.is_valid(raise_exception=True)
        given = "test_cases" in body.validated_data
        cases = body.validated_data["test_cases"] if given else rule.test_cases
        problems = cases_problems(cases)
        if problems:
            raise ValidationError({"test_cases": problems})
        try:
            validate_condition(rule.condition)
        except ConditionError as exc:
            raise ValidationError({"condition": [str(exc)]}) from None
        if given:
            results = cases_run(condition=rule.condition, queue_name=rule.queue.name, test_cases=cases)
        else:
            results = services.rule_tests_record(rule=rule)
        return Response(CaseResultSerializer([r.as_dict() for r in results], many=True).data)


class PromoteRequest(serializers.Serializer):
    to = serializers.ChoiceField(choices=[RuleStage.STAGING, RuleStage.PRODUCTION])
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class PromotionSerializer(serializers.Serializer):
    rule = serializers.IntegerField(source="rule_id")
    version = serializers.IntegerField(source="version.number")
    kind = serializers.CharField()
    replay = serializers.IntegerField(source="replay_id", allow_null=True)
    at = serializers.DateTimeField()
    gate_results = GateSerializer(many=True)


class BlockedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    failures = GateSerializer(many=True)
    gates = GateSerializer(many=True)


class PromoteView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="rules_promote",
        summary="Promote a rule one stage: draft → staging, or staging → production",
        request=PromoteRequest,
        responses={
            200: PromotionSerializer,
            400: OpenApiResponse(BlockedSerializer, description="Blocked: every failed gate with its message."),
            403: OpenApiResponse(description="Only the rule's owner or an admin promotes."),
        },
    )
    def post(self, request, pk):
        rule = get_object_or_404(Rule, pk=pk)
        body = PromoteRequest(data=request.data)
        body.is_valid(raise_exception=True)
        promotion = services.rule_promote(rule=rule, by=request.user, **body.validated_data)
        return Response(PromotionSerializer(promotion).data)


class ApproveRequest(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ApprovalSerializer(serializers.Serializer):
    rule = serializers.IntegerField(source="rule_id")
    version = serializers.IntegerField(source="version.number", help_text="The staging version approved.")
    by = serializers.CharField(source="by.username")
    at = serializers.DateTimeField()
    comment = serializers.CharField(allow_blank=True)


class ApproveView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="rules_approve",
        summary="Approve the rule's staging version for production (second-person approval)",
        description="With HANDOFF_PRODUCTION_APPROVAL on, a staging version is promoted to production only once "
        "someone other than the promoter approved it: the rule's owner, its backup owner or an admin.",
        request=ApproveRequest,
        responses={
            200: ApprovalSerializer,
            400: OpenApiResponse(
                description="Approval is off, the rule has no staging version, or you already approved it."
            ),
            403: OpenApiResponse(description="Only the rule's owner, backup owner or an admin approves."),
        },
    )
    def post(self, request, pk):
        rule = get_object_or_404(Rule.objects.select_related("owner", "backup_owner"), pk=pk)
        body = ApproveRequest(data=request.data)
        body.is_valid(raise_exception=True)
        approval = services.rule_approve(rule=rule, by=request.user, **body.validated_data)
        return Response(ApprovalSerializer(approval).data)


class RollbackRequest(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RollbackView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="rules_rollback",
        summary="Re-promote the previous production version",
        request=RollbackRequest,
        responses={200: PromotionSerializer, 400: OpenApiResponse(description="Nothing to roll back to.")},
    )
    def post(self, request, pk):
        rule = get_object_or_404(Rule, pk=pk)
        body = RollbackRequest(data=request.data)
        body.is_valid(raise_exception=True)
        promotion = services.rule_rollback(rule=rule, by=request.user, **body.validated_data)
        return Response(PromotionSerializer(promotion).data)


class ReplayRequestSerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000, help_text="Default 10,000.")
    since = RangeBoundSerializerField(
        end=False, required=False, help_text="Leads received from this day (YYYY-MM-DD, UTC) or date-time."
    )
    until = RangeBoundSerializerField(
        end=True, required=False, help_text="... to this day, inclusive, or before this date-time (exclusive)."
    )


class ReplaySerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ReplayRun
        fields = ["id", "status", "candidate", "limit", "since", "until", "total", "done", "result", "error", "url"]
        extra_kwargs = {
            "result": {
                "help_text": "Once done: `before` and `after` ({queue: leads}), `moved_count`, `moved` (up to 5,000:"
                " [{id, lead_id, from, to, from_rule, to_rule, cause}], each rule {id, name, version} or null:"
                " the rules that decided the old and new queue, and the one the move is put down to),"
                " `moved_truncated`, and `by_rule` ([{id, name, version, moved, flows: [{from, to, count}]}])."
                " Replays stored before attribution have no rules in `moved` and no `by_rule`."
            }
        }

    def get_url(self, run) -> str:
        return self.context["request"].build_absolute_uri(reverse("rule-replay-detail", args=[run.pk]))


class ReplayView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="rules_replay",
        summary="Replay the candidate rule set (staging versions in place of production) against real leads",
        request=ReplayRequestSerializer,
        responses={
            202: ReplaySerializer,
            400: OpenApiResponse(description="Bad range or limit."),
            429: OpenApiResponse(
                description="Your replay, or three replays, still queued or running: start it once one has "
                "finished (`Retry-After`, seconds). Also a sign-in lockout, as on every operation."
            ),
        },
    )
    def post(self, request):
        body = ReplayRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = replay_start(by=request.user, **body.validated_data)
        return Response(ReplaySerializer(run, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class ReplayDetailView(RetrieveAPIView):
    permission_classes = [IsConsoleUser]
    serializer_class = ReplaySerializer
    queryset = ReplayRun.objects.all()


class PreviewRequest(serializers.Serializer):
    lead = serializers.DictField(help_text="A lead as a capture system posts it; validated like intake.")
    candidate = serializers.BooleanField(required=False, default=False, help_text="Use staging versions.")


class FailedConditionSerializer(serializers.Serializer):
    at = serializers.CharField(help_text="Where in the condition, e.g. when.all[1].")
    condition = serializers.CharField(help_text="The part that failed, readable.")
    saw = serializers.DictField(child=serializers.JSONField(), help_text="Field → the value the engine saw.")


class VerdictSerializer(serializers.Serializer):
    rule = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    failed = FailedConditionSerializer(allow_null=True, help_text="None for the rule that matched.")


class PreviewSerializer(serializers.Serializer):
    missing_contact = serializers.BooleanField()
    rule = VerdictSerializer(allow_null=True, help_text="The rule that would decide; None when none matches.")
    queue = serializers.CharField(allow_null=True)
    assignee = serializers.CharField(allow_null=True, help_text="Who would get it next; None when nobody is eligible.")
    not_matched = VerdictSerializer(many=True, help_text="Each rule tried before, with why it did not match.")
    account = MatchSerializer(help_text="The account the lead matches, as the accounts stand.")
    assigned_by = serializers.CharField(help_text="account_owner, sticky or queue (the queue's strategy).")
    assignee_note = serializers.CharField(allow_blank=True, help_text="Why, when a rule's choice fell back.")


class PreviewView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="rules_preview",
        summary="Which rule would decide a lead, who would get it, and why each earlier rule did not match",
        request=PreviewRequest,
        responses={200: PreviewSerializer, 400: OpenApiResponse(description="Bad lead.")},
    )
    def post(self, request):
        body = PreviewRequest(data=request.data)
        body.is_valid(raise_exception=True)
        preview = routing_preview(sample=body.validated_data["lead"], candidate=body.validated_data["candidate"])
        explanation = preview.explanation
        body = {
            "missing_contact": explanation.missing_contact,
            "rule": _verdict(explanation.decided) if explanation.decided else None,
            "queue": preview.queue,
            "assignee": preview.assignee,
            "not_matched": [_verdict(v) for v in explanation.verdicts if not v.matched],
            "account": preview.account.as_body(),
            "assigned_by": preview.assigned_by,
            "assignee_note": preview.assignee_note,
        }
        return Response(PreviewSerializer(body).data)


def _verdict(verdict) -> dict:
    failure = verdict.failure
    return {
        "rule": verdict.version.rule_id,
        "name": verdict.version.name,
        "version": verdict.version.number,
        "failed": None
        if failure is None
        else {"at": failure.path, "condition": failure.condition, "saw": failure.seen},
    }


class ManualAssignRequest(serializers.Serializer):
    queue = serializers.PrimaryKeyRelatedField(queryset=Queue.objects.all())
    assignee = serializers.CharField(required=False, allow_null=True, help_text="Username; omit to leave unassigned.")
    reason = serializers.CharField(max_length=2000)


class OverrideSerializer(serializers.Serializer):
    override = serializers.IntegerField()
    lead = serializers.IntegerField()
    rule = serializers.IntegerField(allow_null=True, help_text="The rule that had decided; None if none had.")
    rule_version = serializers.IntegerField(allow_null=True)
    queue = serializers.CharField()
    assignee = serializers.CharField(allow_null=True)
    week = serializers.DateField(help_text="The ISO week (its Monday) the override counts in.")


class ManualAssignView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        operation_id="leads_assign",
        summary="Assign a lead by hand; recorded as an override against the rule and version that decided",
        request=ManualAssignRequest,
        responses={200: OverrideSerializer, 400: OpenApiResponse(description="Refused.")},
    )
    def post(self, request, pk):
        lead = get_object_or_404(Lead, pk=pk)
        body = ManualAssignRequest(data=request.data)
        body.is_valid(raise_exception=True)
        username = body.validated_data.get("assignee")
        assignee = None
        if username:
            assignee = get_user_model().objects.filter(username=username).first()
            if assignee is None:
                raise ValidationError({"assignee": [f"No user {username!r}."]})
        item = lead.exceptions.exclude(status=ExceptionStatus.RESOLVED).order_by("-opened_at").first()
        lead, override = lead_assign_manually(
            lead=lead,
            queue=body.validated_data["queue"],
            assignee=assignee,
            reason=body.validated_data["reason"],
            by=request.user,
            item=item,
        )
        body = {
            "override": override.pk,
            "lead": lead.pk,
            "rule": override.rule_id,
            "rule_version": override.rule_version,
            "queue": lead.queue.name,
            "assignee": assignee.get_username() if assignee else None,
            "week": this_week(override.at),
        }
        return Response(OverrideSerializer(body).data)
