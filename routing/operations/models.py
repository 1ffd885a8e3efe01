"""Stored operating reports: the daily anomaly report (yesterday against the trailing 14 days)."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AnomalyReport(models.Model):
    day = models.DateField(unique=True, help_text="The UTC day examined (yesterday, when beat runs it).")
    created_at = models.DateTimeField()
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    flagged = models.PositiveIntegerField(default=0, help_text="How many measures moved beyond the band.")

    class Meta:
        ordering = ["-day"]

    def __str__(self):
        return f"Anomaly report {self.day:%Y-%m-%d} ({self.flagged} flagged)"
