import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from routing.days import yesterday
from routing.reports.parity import parity_reconcile


class Command(BaseCommand):
    help = (
        "Daily parity: per origin, leads accepted vs routed vs delivered to each target for one UTC day "
        "(default yesterday); stores the report, opens an incident above the threshold, re-sends stuck work."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="The UTC day, YYYY-MM-DD (default: yesterday).")

    def handle(self, *args, **options):
        if options["date"]:
            try:
                day = dt.date.fromisoformat(options["date"])
            except ValueError:
                raise CommandError(f"{options['date']!r} is not a date; use YYYY-MM-DD.") from None
        else:
            day = yesterday()
        report = parity_reconcile(day=day)
        data = report.data
        self.stdout.write(f"Parity for {day:%Y-%m-%d} (report #{report.pk}):")
        for row in data["origins"]:
            deliveries = ", ".join(
                f"{name} {d['delivered']}/{d['expected']}" for name, d in sorted(row["deliveries"].items())
            )
            self.stdout.write(
                f"  {row['origin']}: accepted {row['accepted']}, routed {row['routed']}, "
                f"still waiting {row['waiting']}" + (f"; delivered {deliveries}" if deliveries else "")
            )
        leads, events = data["stuck_leads"]["count"], data["stuck_events"]["count"]
        self.stdout.write(f"Stuck: {leads} lead(s) re-queued, {events} event(s) re-sent.")
        if report.flagged:
            self.stdout.write(self.style.WARNING("Discrepancies above the threshold (an incident is open):"))
            for gap in data["gaps"]:
                self.stdout.write(f"  {gap}")
        else:
            self.stdout.write(self.style.SUCCESS("No discrepancy above the threshold."))
