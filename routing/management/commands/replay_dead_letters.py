from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from routing.integrations.deadletter import dead_letters, dead_letters_replay
from routing.integrations.models import DeliveryTarget


class Command(BaseCommand):
    help = "Send dead-lettered events again (same idempotency key, fresh attempts); filter by target, error, age."

    def add_arguments(self, parser):
        parser.add_argument("--target", help="Only this target (by name).")
        parser.add_argument("--error", default="", help="Only events whose last error contains this text.")
        parser.add_argument("--older-than-hours", type=float, help="Only events dead for at least this long.")
        parser.add_argument("--id", type=int, action="append", dest="ids", help="Only this event (repeatable).")
        parser.add_argument("--dry-run", action="store_true", help="List what would be replayed; change nothing.")
        parser.add_argument("--by", help="Your username, recorded in the audit trail (default: the system).")

    def handle(self, *args, **options):
        by = None
        if options["by"]:
            by = get_user_model().objects.filter(username=options["by"], is_active=True).first()
            if by is None:
                raise CommandError(f"No active user {options['by']!r}.")
        target_id = None
        if options["target"]:
            target = DeliveryTarget.objects.filter(name=options["target"]).first()
            if target is None:
                names = ", ".join(DeliveryTarget.objects.order_by("name").values_list("name", flat=True)) or "none"
                raise CommandError(f"No target {options['target']!r}; targets: {names}.")
            target_id = target.pk
        events = dead_letters(target_id=target_id, error=options["error"], older_than_hours=options["older_than_hours"])
        if options["ids"]:
            events = events.filter(pk__in=options["ids"])
        rows = list(events.values_list("id", "event_type", "target__name", "last_error"))
        for event_id, event_type, target_name, error in rows:
            self.stdout.write(f"  #{event_id} {event_type} → {target_name}: {error[:100]}")
        if options["dry_run"]:
            self.stdout.write(f"{len(rows)} dead letter(s) would be replayed (dry run).")
            return
        replayed = dead_letters_replay(event_ids=[row[0] for row in rows], by=by)
        self.stdout.write(self.style.SUCCESS(f"Replaying {len(replayed)} dead letter(s)."))
