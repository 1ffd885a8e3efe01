"""Latency buckets gain a 1-second tier under 10 s (routing/dashboard/buckets.py): every stored bucket index
moves up by 9. Its bounds stay what they were; the old first bucket (0 to 10 s) becomes the new 9 to 10 s one,
which reads "< 10 s" as before."""

from django.db import migrations
from django.db.models import F

SHIFT = 9


def shift(apps, schema_editor, by=SHIFT):
    apps.get_model("routing", "LatencyBucket").objects.update(bucket=F("bucket") + by)


def unshift(apps, schema_editor):
    buckets = apps.get_model("routing", "LatencyBucket").objects
    buckets.filter(bucket__lt=SHIFT).delete()  # under 9 s: no bucket of the old tiers holds them alone
    shift(apps, schema_editor, by=-SHIFT)


class Migration(migrations.Migration):
    dependencies = [("routing", "0024_attribution_crm_export")]

    operations = [migrations.RunPython(shift, unshift)]
