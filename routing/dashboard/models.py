"""Daily rollups behind the dashboard (routing app; imported at the end of routing/models.py).

Rows are derived data: `routing/dashboard/rollups.py` recomputes whole days (delete and insert under the
day's RollupDay row lock), so they can be dropped and rebuilt at any time. Days are UTC calendar days.

Lead figures describe a cohort: the leads *received* on the day, whatever happened to them later (their
assignment latency, their exception items, the human actions on them). Queue backlog is a point in time
(unresolved items at the end of the day); delivery figures count audit events of the day."""

from django.db import models


class RollupDay(models.Model):
    """One row per rolled-up day: its lock (a recompute holds it) and when it was last computed."""

    day = models.DateField(unique=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["day"]

    def __str__(self):
        return f"rollup {self.day} at {self.computed_at:%Y-%m-%d %H:%M}"


class DailyLeadStat(models.Model):
    """Leads received on `day` from one origin, decided by one rule (None: no rule decided)."""

    day = models.DateField()
    origin = models.ForeignKey("routing.Source", on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey("routing.Rule", null=True, on_delete=models.CASCADE, related_name="+")
    received = models.PositiveIntegerField(default=0)
    assigned = models.PositiveIntegerField(default=0, help_text="Received that day and assigned since.")
    sla_leads = models.PositiveIntegerField(default=0, help_text="Assigned, under a rule version with an SLA.")
    sla_met = models.PositiveIntegerField(default=0, help_text="… of which assigned within that SLA.")
    exceptions = models.PositiveIntegerField(default=0, help_text="Exception items opened on these leads.")
    touches = models.PositiveIntegerField(default=0, help_text="Human actions on these leads (MANUAL_TOUCHES).")
    touched_leads = models.PositiveIntegerField(default=0, help_text="Leads with at least one human action.")
    enrich_tried = models.PositiveIntegerField(default=0)
    enrich_ok = models.PositiveIntegerField(default=0)
    # Accounts and identity (routing/accounts): leads matched before routing, to an account, ambiguously, and
    # leads of a person seen before.
    account_checked = models.PositiveIntegerField(default=0)
    account_matched = models.PositiveIntegerField(default=0)
    account_ambiguous = models.PositiveIntegerField(default=0)
    known_person = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day"], name="dash_lead_day_idx")]  # every dashboard read: a day range

    def __str__(self):
        return f"{self.day} origin {self.origin_id} rule {self.rule_id}: {self.received} leads"


class LatencyBucket(models.Model):
    """How many leads of a DailyLeadStat cohort were assigned with a latency in `bucket` (see buckets.py)."""

    day = models.DateField()
    origin = models.ForeignKey("routing.Source", on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey("routing.Rule", null=True, on_delete=models.CASCADE, related_name="+")
    bucket = models.PositiveSmallIntegerField()
    leads = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["day"], name="dash_latency_day_idx")]

    def __str__(self):
        return f"{self.day} bucket {self.bucket}: {self.leads}"


class DailyQueueStat(models.Model):
    """Exception items of one queue on leads received on `day`, and the queue's backlog at the day's end."""

    day = models.DateField()
    queue = models.ForeignKey("routing.Queue", on_delete=models.CASCADE, related_name="+")
    items = models.PositiveIntegerField(default=0)
    ack_done = models.PositiveIntegerField(default=0)
    ack_met = models.PositiveIntegerField(default=0, help_text="Acknowledged, and the sweep never stamped a breach.")
    resolve_done = models.PositiveIntegerField(default=0)
    resolve_met = models.PositiveIntegerField(default=0)
    breached = models.PositiveIntegerField(default=0, help_text="Items with either clock breached.")
    backlog = models.PositiveIntegerField(default=0, help_text="Unresolved items of the queue at the day's end.")

    class Meta:
        indexes = [models.Index(fields=["day"], name="dash_queue_day_idx")]

    def __str__(self):
        return f"{self.day} queue {self.queue_id}: {self.items} items, backlog {self.backlog}"


class DailyDeliveryStat(models.Model):
    """Dead letters of the day, and the dead letters people replayed that day with what became of them."""

    day = models.DateField(unique=True)
    dead_lettered = models.PositiveIntegerField(default=0)
    replayed = models.PositiveIntegerField(default=0)
    replay_delivered = models.PositiveIntegerField(default=0)
    replay_dead = models.PositiveIntegerField(default=0, help_text="Replayed, and dead-lettered again.")

    def __str__(self):
        return f"{self.day}: {self.dead_lettered} dead letters"
