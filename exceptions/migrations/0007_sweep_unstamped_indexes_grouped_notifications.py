"""The burst sweep: partial indexes on items whose clocks are not stamped breached (the sweep's stamp
statement finds due rows without reading the breached ones), sweep batches (what each stamp statement
stamped, recorded into SLA events and notifications afterwards), and grouped notifications (a queue and a
list of items; `item` only when the notification is about one). Existing notifications get their item's queue."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def fill_notification_queue(apps, schema_editor):
    Notification = apps.get_model("exceptions", "Notification")
    ExceptionItem = apps.get_model("exceptions", "ExceptionItem")
    Notification.objects.filter(queue__isnull=True).update(
        queue=models.Subquery(ExceptionItem.objects.filter(pk=models.OuterRef("item_id")).values("queue_id")[:1])
    )


class Migration(migrations.Migration):

    dependencies = [
        ('exceptions', '0006_item_held_leads'),
        ('routing', '0015_dashboard_account_figures'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='SweepBatch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(help_text="The sweep's instant, the value of the stamps.")),
                ('stamps', models.JSONField(default=dict)),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.RemoveIndex(
            model_name='exceptionitem',
            name='exception_open_ack_due_idx',
        ),
        migrations.RemoveIndex(
            model_name='exceptionitem',
            name='exception_running_resolve_idx',
        ),
        migrations.AddField(
            model_name='notification',
            name='item_count',
            field=models.PositiveIntegerField(default=1, help_text='How many items this is about.'),
        ),
        migrations.AddField(
            model_name='notification',
            name='item_ids',
            field=models.JSONField(blank=True, default=list, help_text='The items listed (the first few of a group).'),
        ),
        migrations.AddField(
            model_name='notification',
            name='queue',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='routing.queue'),
        ),
        migrations.RunPython(fill_notification_queue, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='notification',
            name='queue',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='routing.queue'),
        ),
        migrations.AlterField(
            model_name='notification',
            name='item',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='exceptions.exceptionitem'),
        ),
        migrations.AlterField(
            model_name='notification',
            name='key',
            field=models.CharField(help_text='What this is about, e.g. escalation_1:<sweep>:<recipient>.', max_length=64),
        ),
        migrations.AddIndex(
            model_name='exceptionitem',
            index=models.Index(condition=models.Q(('ack_breached_at__isnull', True), ('status', 'open')), fields=['queue', 'ack_due_at'], name='exception_ack_unstamped_idx'),
        ),
        migrations.AddIndex(
            model_name='exceptionitem',
            index=models.Index(condition=models.Q(('resolve_breached_at__isnull', True), ('status__in', ['open', 'acknowledged'])), fields=['queue', 'resolve_due_at'], name='exception_res_unstamped_idx'),
        ),
        migrations.AddIndex(
            model_name='exceptionitem',
            index=models.Index(condition=models.Q(('escalation_level', 0), models.Q(models.Q(('ack_breached_at__isnull', False), ('status', 'open')), models.Q(('resolve_breached_at__isnull', False), ('status__in', ['open', 'acknowledged'])), _connector='OR')), fields=['queue'], name='exception_unescalated_idx'),
        ),
        migrations.AddConstraint(
            model_name='notification',
            constraint=models.UniqueConstraint(condition=models.Q(('item__isnull', True)), fields=('queue', 'key'), name='notification_once_per_queue_key'),
        ),
        migrations.AddField(
            model_name='sweepbatch',
            name='queue',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='routing.queue'),
        ),
    ]
