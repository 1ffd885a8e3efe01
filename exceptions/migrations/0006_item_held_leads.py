from django.db import migrations, models


def hold_the_leads_already_waiting(apps, schema_editor):
    """Leads that joined a person's open item before the hold existed are found by their decision's audit event
    (`exception_of_same_person`), so resolving that item settles them too."""
    AuditEvent = apps.get_model("audit", "AuditEvent")
    Held = apps.get_model("exceptions", "ExceptionItem").held_leads.through
    waiting = (
        AuditEvent.objects.filter(
            action="routing.decision", data__exception_of_same_person=True, lead__status="exception"
        )
        .values_list("data__exception_id", "lead_id")
        .iterator(chunk_size=2000)
    )
    batch = []
    for item_id, lead_id in waiting:
        batch.append(Held(exceptionitem_id=item_id, lead_id=lead_id))
        if len(batch) == 2000:
            Held.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    Held.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("exceptions", "0005_exceptionitem_fillfactor"),
        ("routing", "0015_dashboard_account_figures"),
        ("audit", "0005_account_actions"),
    ]

    operations = [
        migrations.AddField(
            model_name="exceptionitem",
            name="held_leads",
            field=models.ManyToManyField(blank=True, related_name="held_by_items", to="routing.lead"),
        ),
        migrations.RunPython(hold_the_leads_already_waiting, migrations.RunPython.noop, elidable=True),
    ]
