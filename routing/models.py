"""Routing domain: capture sources, queues and their members, rules, and leads."""

import datetime as dt
import hashlib
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from audit.history import history_person
from exceptions.sla import BusinessHours
from routing.capture.models import UnknownFieldPolicy
from routing.conditions import LEAD_FIELDS
from routing.integrations.models import EnrichmentStatus


class Source(models.Model):
    """A capture system (web form, chat widget, marketing tool) that posts leads; the lead's origin."""

    TOKEN_PREFIX_LENGTH = 8

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(
        max_length=TOKEN_PREFIX_LENGTH, editable=False, help_text="First characters of the token, to tell tokens apart."
    )
    is_active = models.BooleanField(default=True)
    # Identity: this source's lead_ids are shared with other such sources (one id, one person, whichever
    # source sends it), so a lead_id seen from another sharing source links the two leads.
    shares_lead_ids = models.BooleanField(
        default=False, db_default=False, help_text="Its lead_ids name the same person in every source that shares ids."
    )
    # The capture schema (routing/capture): who answers for what this source sends, the version its leads
    # are read as when they name none (blank: the newest in effect), and what happens to fields outside it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="owned_sources",
        help_text="Who answers for this capture system's schema and its rejected posts.",
    )
    schema_version = models.CharField(
        max_length=32, blank=True, default="", db_default="", help_text="Blank: the newest version in effect."
    )
    unknown_fields = models.CharField(
        max_length=8,
        choices=UnknownFieldPolicy.choices,
        default=UnknownFieldPolicy.REJECT,
        db_default=UnknownFieldPolicy.REJECT,
        help_text="A top-level field outside the lead's schema version.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_person, excluded_fields=["token_hash"])

    def __str__(self):
        return self.name

    @staticmethod
    def hash_token(token: str) -> str:
        # Tokens are 256 random bits, so a fast hash is safe here and keeps the per-request lookup cheap.
        return hashlib.sha256(token.encode()).hexdigest()

    def set_new_token(self) -> str:
        """Give the source a fresh token; returns it in clear, the only time it is ever seen."""
        token = secrets.token_urlsafe(32)
        self.token_hash = self.hash_token(token)
        self.token_prefix = token[: self.TOKEN_PREFIX_LENGTH]
        return token


class PersonalToken(models.Model):
    """A person's API token for the console's API (`Authorization: Token <key>`). Only its hash is stored, as
    for capture sources: the token is shown once, when it is made. It stops working when it expires or is
    revoked (by its owner on the console's API tokens page, or by an admin)."""

    TOKEN_PREFIX_LENGTH = 8

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What it is for, e.g. 'reporting script'.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(
        max_length=TOKEN_PREFIX_LENGTH, editable=False, help_text="First characters of the token, to tell tokens apart."
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.user} {self.token_prefix}… ({self.name or 'API token'})"

    def set_new_token(self) -> str:
        """Give it a fresh token; returns it in clear, the only time it is ever seen."""
        token = secrets.token_urlsafe(32)
        self.token_hash = Source.hash_token(token)  # 256 random bits: a fast hash is safe, as for sources
        self.token_prefix = token[: self.TOKEN_PREFIX_LENGTH]
        return token

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "active"


class AssignmentStrategy(models.TextChoices):
    ROUND_ROBIN = "round_robin", "Round robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin", "Weighted round robin"
    LEAST_LOADED = "least_loaded", "Least loaded (fewest open leads)"


class ReturnPolicy(models.TextChoices):
    KEEP_PLACE = "keep_place", "Keep place: a returning member resumes the rotation where it is"
    CATCH_UP = "catch_up", "Catch up: a returning member gets more until their share evens out over the period"


class DistributionPeriod(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"


class EveryoneAway(models.TextChoices):
    HOLD = "hold", "Hold the lead until the first member's hours start"
    OVERFLOW = "overflow", "Overflow to the next queue (no overflow queue: an exception)"
    EXCEPTION = "exception", "Open a no-eligible-assignee exception"


class Queue(models.Model):
    name = models.CharField(max_length=100, unique=True)
    ack_sla_minutes = models.PositiveIntegerField(default=30)
    resolve_sla_minutes = models.PositiveIntegerField(default=240)
    strategy = models.CharField(
        max_length=32, choices=AssignmentStrategy.choices, default=AssignmentStrategy.ROUND_ROBIN
    )
    max_open_per_member = models.PositiveIntegerField(
        null=True, blank=True, help_text="Members holding this many open leads are skipped. Empty: no cap."
    )
    overflow_queue = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="overflow_for"
    )
    # Fair-share clock of the rotation (see routing/assignment.py); advanced under the queue's row lock.
    virtual_time = models.FloatField(default=0.0, editable=False)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="QueueMembership", related_name="routing_queues")

    # Escalation: level 1 goes to the owner, level 2 (still breached this much later) to the contact.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_queues"
    )
    escalation_contact = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="escalation_queues"
    )
    escalation_interval_minutes = models.PositiveIntegerField(
        default=30, help_text="Business minutes between escalation level 1 and level 2."
    )
    reassign_unacknowledged = models.BooleanField(
        default=False, help_text="When an item's acknowledge time runs out, hand it to the next available member."
    )
    # Business hours: SLA clocks and notifications run only inside them. No start/end: around the clock.
    business_timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Berlin.")
    business_days = models.CharField(
        max_length=13, default="0,1,2,3,4", help_text="Weekdays the queue works, 0 = Monday … 6 = Sunday."
    )
    business_start = models.TimeField(null=True, blank=True)
    business_end = models.TimeField(null=True, blank=True)
    # Availability (routing/availability): what a returning member gets, and what happens when nobody is in.
    return_policy = models.CharField(
        max_length=16, choices=ReturnPolicy.choices, default=ReturnPolicy.KEEP_PLACE, db_default=ReturnPolicy.KEEP_PLACE
    )
    distribution_period = models.CharField(
        max_length=8,
        choices=DistributionPeriod.choices,
        default=DistributionPeriod.MONTH,
        db_default=DistributionPeriod.MONTH,
        help_text="The period over which 'catch up' evens shares out, and the distribution report's default.",
    )
    when_everyone_away = models.CharField(
        max_length=16, choices=EveryoneAway.choices, default=EveryoneAway.OVERFLOW, db_default=EveryoneAway.OVERFLOW
    )
    credit_back = models.BooleanField(
        default=True,
        db_default=True,
        help_text="A lead taken from its assignee by a reassignment or an override gives them their turn back.",
    )
    # Catch-up's floor: the virtual time when the current distribution period began (written under the lock).
    period_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    period_virtual_time = models.FloatField(default=0.0, db_default=0.0, editable=False)
    # Governed (routing/changes/queues.py): a console change to who gets its leads (members, caps, overflow,
    # strategy, availability policy) is staged with its evidence on recent leads and applies once confirmed.
    governed = models.BooleanField(
        default=False, db_default=False, help_text="Routing changes are staged with evidence and confirmed."
    )
    history = HistoricalRecords(
        get_user=history_person, excluded_fields=["virtual_time", "period_started_at", "period_virtual_time"]
    )

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        _save_without(self, {"virtual_time", "period_started_at", "period_virtual_time"}, args, kwargs)

    def business_hours(self) -> BusinessHours | None:
        if self.business_start is None or self.business_end is None:
            return None
        days = frozenset(int(day) for day in self.business_days.split(",") if day.strip())
        return BusinessHours(ZoneInfo(self.business_timezone), days, self.business_start, self.business_end)

    def clean(self):
        if (self.business_start is None) != (self.business_end is None):
            raise ValidationError("Set both business start and end, or neither (around the clock).")
        # Checked whether or not hours are set: a zone or days kept now are used the day hours are.
        try:
            ZoneInfo(self.business_timezone or "")
        except (ValueError, ZoneInfoNotFoundError):
            raise ValidationError(
                {"business_timezone": f"{self.business_timezone!r} is not an IANA time zone, e.g. Europe/Berlin."}
            ) from None
        days = [day.strip() for day in (self.business_days or "").split(",") if day.strip()]
        if any(not (day.isascii() and day.isdigit()) or int(day) > 6 for day in days):
            raise ValidationError(
                {"business_days": "Days are 0 (Monday) to 6 (Sunday), comma-separated, e.g. 0,1,2,3,4."}
            )
        try:
            self.business_hours()
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise ValidationError(f"Business hours: {exc}") from None


class QueueMembership(models.Model):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_memberships")
    is_available = models.BooleanField(default=True)
    weight = models.PositiveIntegerField(default=1, help_text="Share of leads under weighted round robin.")
    # Where this member stands in the rotation: the lowest pass is served next.
    rotation_pass = models.FloatField(default=0.0, editable=False)
    # Turns owed back: a lead the strategy gave this member was taken by a reassignment or an override
    # (queue.credit_back). Served first at the member's next eligible pick, without moving their pass.
    turn_credits = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    joined_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_person, excluded_fields=["rotation_pass", "turn_credits"])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "user"], name="membership_unique_queue_user"),
            models.CheckConstraint(condition=Q(weight__gte=1), name="membership_weight_positive"),
        ]
        ordering = ["queue", "id"]

    def __str__(self):
        return f"{self.user} in {self.queue}"

    def save(self, *args, **kwargs):
        if self._state.adding and self.queue_id is not None and not self.rotation_pass:
            # A new member starts in the round being served: never owed the turns before they joined.
            self.rotation_pass = (
                Queue.objects.filter(pk=self.queue_id).values_list("virtual_time", flat=True).first() or 0.0
            )
        _save_without(self, {"rotation_pass", "turn_credits"}, args, kwargs)


def _save_without(instance: models.Model, locked_fields: set[str], args, kwargs) -> None:
    """Save an existing row without the fields only a locked service writes (the rotation state, written by
    routing/assignment.py under the queue's row lock; a rule's stage and version pointers, moved by
    promotion): a form or an import saving the copy it read earlier must not put old values back."""
    if not instance._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
        kwargs["update_fields"] = [
            f.name for f in instance._meta.concrete_fields if not f.primary_key and f.name not in locked_fields
        ]
    models.Model.save(instance, *args, **kwargs)


class RuleStage(models.TextChoices):
    DRAFT = "draft", "Draft"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


TEST_RESULT_FIELDS = ("test_results", "test_status", "test_run_at", "test_fingerprint")


class AssignTo(models.TextChoices):
    """Who in the rule's queue gets the lead (a rule's `then.assignee`)."""

    DEFAULT = "", "The person's sticky owner, else the queue's strategy"
    ACCOUNT_OWNER = "account_owner", "The matched account's owner, else the queue's strategy"
    QUEUE = "queue", "The queue's strategy (never sticky)"


class Rule(models.Model):
    """A routing rule: its identity and owner, and the working copy of its contract (the draft).

    Routing never reads these fields. It runs frozen versions (routing/governance/models.py): editing the
    draft changes nothing live until the owner promotes it to staging, then to production."""

    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_rules"
    )
    priority = models.IntegerField(default=100, help_text="Lower numbers are evaluated first.")
    # The furthest stage the rule has reached; moved only by promotion (routing/governance/services.py).
    stage = models.CharField(max_length=16, choices=RuleStage.choices, default=RuleStage.DRAFT, editable=False)
    condition = models.JSONField(help_text="Condition JSON; see the README's rule format.")
    queue = models.ForeignKey(
        Queue, on_delete=models.PROTECT, related_name="rules", help_text="Action: assign matching leads to this queue."
    )
    sla_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Assign within this many minutes.")
    assign_to = models.CharField(
        max_length=16,
        choices=AssignTo.choices,
        default=AssignTo.DEFAULT,
        db_default=AssignTo.DEFAULT,  # rows written by older code (and data migrations) get the default
        blank=True,
        help_text="then.assignee",
    )
    inputs = models.TextField(blank=True)
    outputs = models.TextField(blank=True)
    rollback_plan = models.TextField(blank=True)
    test_cases = models.JSONField(
        default=list, blank=True, help_text='Sample leads with their expected outcome: [{"name", "lead", "expect"}].'
    )
    # Success metrics: targets the rule is judged against (empty: no target), and which system owns the
    # lead's state on this route. Part of the contract, so a version freezes them.
    target_exception_rate = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, help_text="Exception rate at most this percent."
    )
    target_latency_p95_minutes = models.DecimalField(
        max_digits=7, decimal_places=2, null=True, blank=True, help_text="Route latency P95 at most this many minutes."
    )
    target_overrides_per_week = models.PositiveIntegerField(
        null=True, blank=True, help_text="Manual overrides per week at most this many."
    )
    target_sla_adherence = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Leads assigned within the SLA: at least this percent.",
    )
    source_of_truth = models.CharField(
        max_length=100,
        blank=True,
        default="",
        db_default="",
        help_text="The system that owns the lead's state on this route.",
    )
    # Not part of the contract: who else may sign off and is told of changes; changed live, kept in the history.
    backup_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="backup_rules"
    )
    staging_version = models.ForeignKey(
        "routing.RuleVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    production_version = models.ForeignKey(
        "routing.RuleVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    # The draft's test results, stored when the draft is saved or its tests are run (governance services
    # `rule_tests_record`); pages read them and never run cases. Derived data: not in the history.
    test_results = models.JSONField(
        null=True, blank=True, editable=False, help_text="[{name, passed, expected, got, why}]; null: cannot run."
    )
    test_status = models.CharField(max_length=32, blank=True, default="", editable=False)  # "": never run
    test_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    test_fingerprint = models.CharField(
        max_length=64, blank=True, default="", editable=False, help_text="Of the condition, queue and cases run."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_person, excluded_fields=list(TEST_RESULT_FIELDS))

    # The draft as people edit it (forms, diffs between versions).
    DRAFT_FIELDS = (
        "name",
        "description",
        "owner",
        "priority",
        "condition",
        "queue",
        "sla_minutes",
        "inputs",
        "outputs",
        "rollback_plan",
        "test_cases",
        "assign_to",
        "target_exception_rate",
        "target_latency_p95_minutes",
        "target_overrides_per_week",
        "target_sla_adherence",
        "source_of_truth",
    )
    # The same, by column: what a version freezes; a promotion with none of them changed has nothing to promote.
    CONTRACT_FIELDS = (
        "name",
        "description",
        "owner_id",
        "priority",
        "condition",
        "queue_id",
        "sla_minutes",
        "inputs",
        "outputs",
        "rollback_plan",
        "test_cases",
        "assign_to",
        "target_exception_rate",
        "target_latency_p95_minutes",
        "target_overrides_per_week",
        "target_sla_adherence",
        "source_of_truth",
    )

    class Meta:
        ordering = ["priority", "id"]
        indexes = [models.Index(fields=["stage", "priority"], name="rule_stage_priority_idx")]

    def __str__(self):
        return self.name

    # Moved only by promotion, under the rule's row lock (routing/governance/services.py).
    GOVERNED_FIELDS = {"stage", "staging_version", "production_version"}

    def save(self, *args, **kwargs):
        """A draft save never writes the stage or the version pointers: a copy read before a promotion
        committed must not put the old ones back."""
        _save_without(self, self.GOVERNED_FIELDS, args, kwargs)

    @property
    def version(self) -> int | None:
        """The production version's number: what audit events about the rule refer to."""
        return self.production_version.number if self.production_version_id else None


class LeadStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    ASSIGNED = "assigned", "Assigned"
    EXCEPTION = "exception", "Exception"


class Lead(models.Model):
    origin = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="leads")
    lead_id = models.CharField(max_length=128, help_text="The capture system's stable id.")
    email = models.CharField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=32, null=True, blank=True)
    first_name = models.CharField(max_length=150, null=True, blank=True)
    last_name = models.CharField(max_length=150, null=True, blank=True)
    company = models.CharField(max_length=200, null=True, blank=True)
    company_size = models.PositiveIntegerField(null=True, blank=True)
    country = models.CharField(max_length=2, null=True, blank=True)
    lifecycle_stage = models.CharField(max_length=64, null=True, blank=True)
    engagement_score = models.FloatField(null=True, blank=True)
    intent_score = models.FloatField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    attributes = models.JSONField(default=dict, blank=True)
    # The canonical event's references to enrichment records the capture system already holds.
    enrichment_refs = models.JSONField(default=list, db_default=[], blank=True)
    schema_version = models.CharField(max_length=32, blank=True, default="", db_default="")

    received_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=LeadStatus.choices, default=LeadStatus.RECEIVED)
    queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.PROTECT, related_name="leads")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assigned_leads"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.PROTECT, related_name="leads")
    rule_version = models.PositiveIntegerField(null=True, blank=True)
    routed_at = models.DateTimeField(null=True, blank=True)
    # Set by the sweeper each time it publishes the lead again: how often, and when it may do so next
    # (the wait doubles each time, so a long backlog is not flooded with copies).
    requeue_count = models.PositiveIntegerField(default=0)
    requeue_after = models.DateTimeField(null=True, blank=True)
    # Held because everyone in the rule's queue is away (queue.when_everyone_away = hold): routed again at this
    # time (the first member's hours start) by the beat. Stays `received`, so the routing SLA counts it.
    waiting_until = models.DateTimeField(null=True, blank=True)
    # Enrichment before routing (routing/integrations/enrichment.py): None until tried, or with no provider.
    enrichment_status = models.CharField(max_length=16, null=True, blank=True, choices=EnrichmentStatus.choices)
    enrichment_attempts = models.PositiveIntegerField(default=0)
    enrich_after = models.DateTimeField(null=True, blank=True)  # the next attempt's time (and a claim's lease)
    # Set once every delivery target subscribed to its assignment confirmed it (routing/integrations/handoff.py).
    handed_off_at = models.DateTimeField(null=True, blank=True)
    # When the CRM says the lead converted (an attribution upload's stage; routing/reports/attribution.py).
    converted_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(
        get_user=history_person,
        excluded_fields=[
            "requeue_after",
            "requeue_count",
            "enrichment_attempts",
            "enrich_after",
            "handed_off_at",
            "converted_at",
        ],
    )

    # What the rules engine reads: every lead field a condition may name, plus the attributes object.
    ROUTABLE_FIELDS = (*LEAD_FIELDS, "attributes")

    class Meta:
        constraints = [
            # Natural dedup: the same capture-system id from the same source is one lead, even under races.
            models.UniqueConstraint(fields=["origin", "lead_id"], name="lead_unique_origin_lead_id"),
        ]
        indexes = [
            # requeue_stuck_leads: leads still waiting for routing, oldest first.
            models.Index(fields=["received_at"], condition=Q(status=LeadStatus.RECEIVED), name="lead_pending_idx"),
            # least-loaded assignment and per-member caps: open leads per assignee.
            models.Index(
                fields=["assignee"], condition=Q(status=LeadStatus.ASSIGNED), name="lead_open_by_assignee_idx"
            ),
            models.Index(fields=["received_at"], name="lead_received_at_idx"),
            models.Index(
                fields=["waiting_until"], condition=Q(waiting_until__isnull=False), name="lead_waiting_until_idx"
            ),
        ]

    def __str__(self):
        return f"{self.origin}:{self.lead_id}"

    def routing_view(self) -> dict:
        return self.view_from({name: getattr(self, name) for name in self.ROUTABLE_FIELDS})

    @classmethod
    def view_from(cls, values) -> dict:
        """The lead as the rules engine sees it: field name -> value, from anything holding the routable
        fields (a lead, a `.values()` row, a validated sample). occurred_at is an ISO 8601 UTC string, so
        conditions compare it with string values such as "2026-11-01"."""
        view = {name: values[name] for name in cls.ROUTABLE_FIELDS}
        if view["occurred_at"] is not None:
            view["occurred_at"] = view["occurred_at"].astimezone(dt.UTC).isoformat()
        return view


class OpenLeadCount(models.Model):
    """Open (assigned) leads per person, kept by the database itself: a trigger on routing_lead writes a signed
    change for each person a statement gives leads to or takes leads from (routing, reassignment, exceptions,
    erasure, raw SQL alike), and `open_lead_counts` sums a person's changes. Counting the leads instead read
    every lead a person was ever given on every pick (298 ms for two people with 500,000 each).
    `open_lead_counts_fold` folds the changes into one row per person."""

    assignee_id = models.IntegerField()
    change = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["assignee_id"], name="open_lead_count_assignee_idx")]

    def __str__(self):
        return f"person {self.assignee_id}: {self.change:+d}"


class RuleSetGeneration(models.Model):
    """One row whose counter goes up, inside the same transaction, with every change to a rule.

    The engine caches compiled rules by it: an edit that commits late still moves the counter when it
    commits, which a timestamp taken at save time would not (routing/engine.py)."""

    value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"rule set generation {self.value}"


from routing.accounts.models import Account, AccountDomain, AccountMatch, AccountNameKey, LeadIdentity  # noqa: E402,F401
from routing.availability.models import DistributionDay, TimeOff, WorkingHours  # noqa: E402,F401
from routing.capture.models import RejectedPost, RejectionDay, SchemaVersion  # noqa: E402,F401
from routing.dashboard.models import (  # noqa: E402,F401
    DailyDeliveryStat,
    DailyLeadStat,
    DailyQueueStat,
    LatencyBucket,
    RollupDay,
)
from routing.experiments.models import Experiment, ExperimentLead  # noqa: E402,F401
from routing.governance.models import (  # noqa: E402,F401  (models of the routing app kept in their own module)
    ReplayRun,
    RulePromotion,
    RuleSignOff,
    RuleVersion,
    ShadowDecision,
    SignOffReminder,
)
from routing.integrations.models import (  # noqa: E402,F401
    DeliveryAttempt,
    DeliveryTarget,
    EnrichmentProvider,
    EnrichmentReceipt,
    OutboxEvent,
)
from routing.reports.models import AnomalyReport, Incident, ReconciliationReport  # noqa: E402,F401
