"""The audit action choices as they stand after the rules, delivery and reports work (choices only: no
database change). Squashes three auto-named migrations; a database that applied them counts this as applied."""

from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ("audit", "0004_alter_auditevent_action"),
        ("audit", "0005_alter_auditevent_action"),
        ("audit", "0006_alter_auditevent_action"),
    ]

    dependencies = [
        ("audit", "0003_append_only_trigger"),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('routing.decision', 'Routing decision'), ('exception.opened', 'Exception opened'), ('exception.acknowledged', 'Exception acknowledged'), ('exception.assigned', 'Exception assigned'), ('exception.resolved', 'Exception resolved'), ('exception.reopened', 'Exception reopened'), ('exception.waiting', 'Exception set to waiting'), ('exception.resumed', 'Exception resumed'), ('exception.escalated', 'Exception escalated'), ('exception.reassigned', 'Exception reassigned by the SLA sweep'), ('lead.edited', 'Lead data edited'), ('lead.rerouted', 'Lead re-routed'), ('lead.override', 'Lead assigned manually (override)'), ('rule.saved', 'Rule draft saved'), ('rule.promoted', 'Rule promoted'), ('rule.rolled_back', 'Rule rolled back'), ('rule.forced', 'Rule forced into production'), ('rule.signed_off', 'Rule signed off'), ('rules.replayed', 'Rules replayed'), ('delivery.dead_lettered', 'Delivery dead-lettered'), ('delivery.replayed', 'Dead letter replayed'), ('incident.acknowledged', 'Incident acknowledged'), ('incident.resolved', 'Incident resolved'), ('rules.imported', 'Rules imported'), ('source.created', 'Capture source created')], max_length=40),
        ),
    ]
