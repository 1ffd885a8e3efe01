"""Capture schema versions and inbound dead letters (README: Capture schema, Rejected posts)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class SchemaVersion(models.Model):
    """One version of the canonical lead event a capture system may post: the top-level fields it accepts and
    when it takes effect. Fields the lead model has are stored as themselves; any other field a version lists
    is kept under `attributes`. Once in effect a version's fields never change: register a new version."""

    version = models.CharField(max_length=32, unique=True, help_text="e.g. 2 or 2027-01.")
    fields = models.JSONField(help_text="Top-level field names a lead of this version may carry.")
    effective_from = models.DateTimeField(help_text="Leads may be posted with it from this instant.")
    retires_at = models.DateTimeField(null=True, blank=True, help_text="Refused from this instant, if set.")
    notes = models.TextField(blank=True, help_text="What changed against the version before.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["effective_from", "id"]

    def __str__(self):
        return f"capture schema {self.version}"


class UnknownFieldPolicy(models.TextChoices):
    REJECT = "reject", "Reject the lead (400 naming the field)"
    KEEP = "keep", "Keep it under attributes, with a warning in the answer"


class RejectionReason(models.TextChoices):
    UNREADABLE = "unreadable", "Not readable JSON"
    NOT_AN_OBJECT = "not_an_object", "Not a JSON object (or list, for a batch)"
    INVALID_FIELDS = "invalid_fields", "Invalid field values"
    UNKNOWN_FIELDS = "unknown_fields", "Fields outside the capture schema"
    SCHEMA_VERSION = "schema_version", "Unknown, future or retired schema version"
    TOO_LARGE = "too_large", "Body too large"
    TOO_MANY_ITEMS = "too_many_items", "Batch over the item limit"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", "Not sent as application/json"


class RejectedPostStatus(models.TextChoices):
    OPEN = "open", "Open"
    REPLAYED = "replayed", "Fixed and replayed"
    DISMISSED = "dismissed", "Dismissed"


class RejectedPost(models.Model):
    """A post (or one item of a batch) intake refused, kept so nothing a capture system sent is lost unseen:
    what was wrong, a hash and the size of what came, and its first HANDOFF_REJECTED_EXCERPT_BYTES with
    secret-looking values redacted. Bounded per source (HANDOFF_REJECTED_POSTS_PER_SOURCE, trimmed by beat)."""

    source = models.ForeignKey("routing.Source", on_delete=models.CASCADE, related_name="rejected_posts")
    received_at = models.DateTimeField()
    batch = models.BooleanField(default=False, help_text="Posted to /batch/.")
    batch_index = models.PositiveIntegerField(null=True, blank=True, help_text="Its place in the batch, from 0.")
    status_code = models.PositiveSmallIntegerField(help_text="What intake answered: 400, 413 or 415.")
    reason = models.CharField(max_length=32, choices=RejectionReason.choices)
    errors = models.JSONField(default=dict, help_text="What intake answered, field by field.")
    lead_id = models.CharField(max_length=128, blank=True, help_text="Its lead_id, when one could be read.")
    schema_version = models.CharField(max_length=32, blank=True)
    payload_sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.PositiveIntegerField()
    excerpt = models.TextField(blank=True)
    truncated = models.BooleanField(default=False, help_text="The excerpt is not the whole payload.")
    status = models.CharField(max_length=16, choices=RejectedPostStatus.choices, default=RejectedPostStatus.OPEN)
    settled_at = models.DateTimeField(null=True, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    replayed_lead = models.ForeignKey(
        "routing.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="replayed_from"
    )

    class Meta:
        indexes = [
            models.Index(fields=["source", "-received_at"], name="rejected_by_source_idx"),
            models.Index(
                fields=["-received_at"], condition=Q(status=RejectedPostStatus.OPEN), name="rejected_open_idx"
            ),
        ]

    def __str__(self):
        return f"{self.source} {self.reason} at {self.received_at:%Y-%m-%d %H:%M}"


class RejectionDay(models.Model):
    """Rejections per source, day and reason: the counter /metrics and the anomaly report read. Kept apart
    from the rows, which are trimmed, so the counts never go down."""

    source = models.ForeignKey("routing.Source", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    reason = models.CharField(max_length=32, choices=RejectionReason.choices)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "day", "reason"], name="rejection_day_unique"),
        ]

    def __str__(self):
        return f"{self.source} {self.day} {self.reason}: {self.count}"
