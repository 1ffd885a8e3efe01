"""Rule governance records: frozen versions, promotions, shadow decisions, replays and weekly sign-offs.

Versions and promotions are append-only: a version is what routing ran, so it must never change after the
fact (a database trigger enforces it too, migration 0004)."""

import datetime as dt

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class ImmutableError(Exception):
    pass


class AppendOnlyModel(models.Model):
    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ImmutableError(f"{type(self).__name__} rows are immutable; write a new one instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError(f"{type(self).__name__} rows are immutable.")


class RuleVersion(AppendOnlyModel):
    """A rule's contract, condition and action frozen at promotion to staging, numbered 1, 2, … per rule."""

    rule = models.ForeignKey("routing.Rule", on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=150)
    description = models.TextField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    priority = models.IntegerField()
    condition = models.JSONField()
    queue = models.ForeignKey("routing.Queue", on_delete=models.PROTECT, related_name="+")
    sla_minutes = models.PositiveIntegerField()
    # routing.models.AssignTo; db_default: versions written by code that predates it (migration 0004) get "".
    assign_to = models.CharField(max_length=16, blank=True, default="", db_default="")
    inputs = models.TextField()
    outputs = models.TextField()
    rollback_plan = models.TextField()
    test_cases = models.JSONField(default=list)
    # Success metrics (routing.models.Rule); versions frozen before they existed have none.
    target_exception_rate = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    target_latency_p95_minutes = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    target_overrides_per_week = models.PositiveIntegerField(null=True, blank=True)
    target_sla_adherence = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    source_of_truth = models.CharField(max_length=100, blank=True, default="", db_default="")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Frozen straight into production by an admin, past the gates: unsigned until its owner signs off.
    forced = models.BooleanField(default=False)

    class Meta:
        ordering = ["rule", "-number"]
        constraints = [models.UniqueConstraint(fields=["rule", "number"], name="rule_version_unique_number")]

    def __str__(self):
        return f"{self.name} v{self.number}"


class PromotionKind(models.TextChoices):
    STAGING = "staging", "Promoted to staging"
    PRODUCTION = "production", "Promoted to production"
    ROLLBACK = "rollback", "Rolled back"
    FORCED = "forced", "Forced into production by an admin"


# Promotions that change what the shadow/candidate set holds, and so make earlier replays stale.
CANDIDATE_CHANGES = (PromotionKind.STAGING, PromotionKind.ROLLBACK, PromotionKind.FORCED)
# Promotions that put a version into production.
PRODUCTION_KINDS = (PromotionKind.PRODUCTION, PromotionKind.ROLLBACK, PromotionKind.FORCED)


class RulePromotion(AppendOnlyModel):
    """One stage change of a rule, with the gate results and the replay it was granted on."""

    rule = models.ForeignKey("routing.Rule", on_delete=models.PROTECT, related_name="promotions")
    version = models.ForeignKey(RuleVersion, on_delete=models.PROTECT, related_name="promotions")
    kind = models.CharField(max_length=16, choices=PromotionKind.choices)
    # The version that stood in the target stage before (None for a first promotion).
    replaced = models.ForeignKey(RuleVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(db_index=True)
    gate_results = models.JSONField(default=list, encoder=DjangoJSONEncoder)
    replay = models.ForeignKey("routing.ReplayRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.version} {self.get_kind_display().lower()} at {self.at:%Y-%m-%d %H:%M}"


class ShadowDecision(models.Model):
    """What the staging candidate set would have decided for a real lead, next to what production did.
    Recorded only while some rule has a staging version; never acted on."""

    lead = models.ForeignKey("routing.Lead", on_delete=models.CASCADE, related_name="shadow_decisions")
    at = models.DateTimeField()
    production_rule = models.ForeignKey(
        "routing.Rule", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    production_version = models.PositiveIntegerField(null=True, blank=True)
    production_queue = models.ForeignKey(
        "routing.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    candidate_rule = models.ForeignKey(
        "routing.Rule", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    candidate_version = models.PositiveIntegerField(null=True, blank=True)
    candidate_queue = models.ForeignKey(
        "routing.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    differs = models.BooleanField()

    class Meta:
        indexes = [
            # Shadow results on a rule's pages: decisions its staging version made, or took from it.
            models.Index(fields=["candidate_rule", "at"], name="shadow_candidate_at_idx"),
            models.Index(fields=["production_rule", "at"], name="shadow_production_at_idx"),
        ]

    def __str__(self):
        return f"Shadow decision for lead {self.lead_id} at {self.at:%Y-%m-%d %H:%M}"


class ReplayStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ReplayRun(models.Model):
    """A candidate rule set replayed against real leads: counts per queue before and after, and the leads
    that would move. Kept as the evidence a promotion to production is granted on."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    # {rule id: version number} the replay evaluated: production versions with staging ones in their place.
    candidate = models.JSONField(default=dict)
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="The last N routed leads.")
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ReplayStatus.choices, default=ReplayStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # {"before": {queue: n}, "after": {queue: n}, "moved": [{lead, from, to}, ...], "moved_count": n}
    result = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self):
        return f"Replay #{self.pk} ({self.status})"

    @property
    def result_rows(self) -> list[tuple[str, int, int]]:
        """(queue, leads before, leads after) for every queue either side names."""
        before, after = self.result.get("before", {}), self.result.get("after", {})
        return [(queue, before.get(queue, 0), after.get(queue, 0)) for queue in sorted(before.keys() | after.keys())]

    @property
    def progress_percent(self) -> int:
        return 100 if self.status == ReplayStatus.DONE else (100 * self.done // self.total if self.total else 0)


def iso_week_start(moment: dt.datetime | dt.date) -> dt.date:
    day = moment.date() if isinstance(moment, dt.datetime) else moment
    return day - dt.timedelta(days=day.weekday())


class RuleSignOff(models.Model):
    """The owner's weekly sign-off of a rule: one per rule per ISO week (the week's Monday)."""

    rule = models.ForeignKey("routing.Rule", on_delete=models.PROTECT, related_name="sign_offs")
    week = models.DateField(help_text="Monday of the ISO week signed for.")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    production_version = models.PositiveIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    # The change set signed (routing/governance/sign_offs.py ChangeSet.as_record): the version numbers, draft
    # history ids and promotions changed since the sign-off before, each with when the signer viewed its diff.
    covers = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-week", "rule"]
        constraints = [models.UniqueConstraint(fields=["rule", "week"], name="sign_off_unique_rule_week")]

    def __str__(self):
        return f"{self.rule} signed for week of {self.week} by {self.by}"

    @property
    def iso_week_label(self) -> str:
        year, week, _ = self.week.isocalendar()
        return f"{year}-W{week:02d}"


class RuleChangeView(models.Model):
    """Someone opened the diff of one change of a rule: written by the server when it sent them that diff, so
    a sign-off can require that its signer saw every change it covers. The first view is kept."""

    rule = models.ForeignKey("routing.Rule", on_delete=models.CASCADE, related_name="change_views")
    # sign_offs.change_key: "version-<RuleVersion id>", "edit-<history id>" or "promotion-<RulePromotion id>".
    change = models.CharField(max_length=40)
    viewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "change", "viewer"], name="rule_change_view_once"),
        ]

    def __str__(self):
        return f"{self.viewer} viewed {self.change} of {self.rule} at {self.at:%Y-%m-%d %H:%M}"


class RuleApproval(AppendOnlyModel):
    """A second person's approval of one staging version for production (HANDOFF_PRODUCTION_APPROVAL): the
    promotion needs one by someone other than the person promoting. Tied to the frozen version, so a new
    staging version needs a new approval."""

    rule = models.ForeignKey("routing.Rule", on_delete=models.PROTECT, related_name="approvals")
    version = models.ForeignKey(RuleVersion, on_delete=models.PROTECT, related_name="approvals")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [models.UniqueConstraint(fields=["version", "by"], name="rule_approval_once_per_person")]

    def __str__(self):
        return f"{self.version} approved for production by {self.by}"


class SignOffReminder(models.Model):
    """The Monday reminder sent to an owner for a week: at most one, however often beat fires."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    week = models.DateField()
    sent_at = models.DateTimeField()
    rules = models.JSONField(default=list, help_text="Names of the rules that were unsigned.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "week"], name="sign_off_reminder_unique_week")]

    def __str__(self):
        return f"Sign-off reminder to {self.owner} for week of {self.week}"


class RuleNoticeKind(models.TextChoices):
    PROMOTED = "promoted", "Promoted by someone else"
    FORCED = "forced", "Forced into production"
    ROLLED_BACK = "rolled_back", "Rolled back by someone else"
    SLA_BELOW_TARGET = "sla_below_target", "SLA adherence below target"
    OWNER_DEACTIVATED = "owner_deactivated", "Owner deactivated"


class RuleNotice(models.Model):
    """A message to a rule's owner or backup owner about their rule: emailed, and listed in "My rules" until
    read. `key` makes each one once per recipient (a promotion's id, a week's SLA check)."""

    rule = models.ForeignKey("routing.Rule", on_delete=models.CASCADE, related_name="notices")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rule_notices")
    kind = models.CharField(max_length=24, choices=RuleNoticeKind.choices)
    key = models.CharField(max_length=100)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.TextField()
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["recipient", "key"], name="rule_notice_once_per_key")]
        indexes = [
            # The mail task: unsent notices in order.
            models.Index(
                fields=["created_at", "id"], condition=models.Q(sent_at__isnull=True), name="rule_notice_unsent_idx"
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} for {self.recipient} about {self.rule}"
