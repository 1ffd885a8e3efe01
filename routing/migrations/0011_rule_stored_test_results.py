"""Each rule stores its draft's test results (computed when the draft is saved or its tests are run, never
by a page view); existing rules get theirs here. Live versions whose `matches` pattern RE2 cannot run stop
the migration: routing would fail to compile them."""

from django.db import migrations, models
from django.utils import timezone


def refuse_live_patterns_re2_cannot_run(apps, schema_editor):
    from routing.conditions import ConditionError, validate_condition

    Rule = apps.get_model("routing", "Rule")
    problems = []
    for rule in Rule.objects.select_related("staging_version", "production_version"):
        for stage, version in (("production", rule.production_version), ("staging", rule.staging_version)):
            if version is None:
                continue
            try:
                validate_condition(version.condition)
            except ConditionError as exc:
                problems.append(f"{rule.name!r} {stage} v{version.number}: {exc}")
    if problems:
        raise RuntimeError(
            "These live rule versions have a condition the new `matches` engine (RE2) refuses, so no rule would "
            "route:\n  " + "\n  ".join(problems) + "\nPromote (or force) a version without it, then migrate again."
        )


def store_test_results(apps, schema_editor):
    """Run each rule's test cases once. Bounded: over MAX_TEST_CASES or MAX_CASE_CHARS, or with a condition
    RE2 refuses, a rule stores "cannot run" without running anything."""
    from routing.governance.gates import cases_fingerprint, cases_outcome, cases_status

    Rule = apps.get_model("routing", "Rule")
    now = timezone.now()
    for rule in Rule.objects.select_related("queue").iterator(chunk_size=100):
        queue_name = rule.queue.name
        results = cases_outcome(condition=rule.condition, queue_name=queue_name, test_cases=rule.test_cases)
        Rule.objects.filter(pk=rule.pk).update(
            test_results=None if results is None else [r.as_dict() for r in results],
            test_status=cases_status(results),
            test_run_at=now,
            test_fingerprint=cases_fingerprint(
                condition=rule.condition, queue_name=queue_name, test_cases=rule.test_cases
            ),
        )


class Migration(migrations.Migration):

    dependencies = [
        ('routing', '0010_metrics_indexes'),
    ]

    operations = [
        migrations.RunPython(refuse_live_patterns_re2_cannot_run, migrations.RunPython.noop),
        migrations.AddField(
            model_name='rule',
            name='test_fingerprint',
            field=models.CharField(blank=True, default='', editable=False, help_text='Of the condition, queue and cases run.', max_length=64),
        ),
        migrations.AddField(
            model_name='rule',
            name='test_results',
            field=models.JSONField(blank=True, editable=False, help_text='[{name, passed, expected, got, why}]; null: cannot run.', null=True),
        ),
        migrations.AddField(
            model_name='rule',
            name='test_run_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='rule',
            name='test_status',
            field=models.CharField(blank=True, default='', editable=False, max_length=32),
        ),
        migrations.RunPython(store_test_results, migrations.RunPython.noop),
    ]
