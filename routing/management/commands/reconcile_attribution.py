import datetime as dt
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from routing.days import day_or_moment
from routing.reports.attribution import AttributionFileError, attribution_period, attribution_reconcile

LABELS = {
    "misrouted": "Misrouted (the CRM owner differs from our assignee)",
    "missing_in_crm": "Missing in the CRM (we assigned them)",
    "unknown_to_us": "Unknown to us (the CRM has them, we never saw them)",
    "outside_period": "Received outside the period (not counted)",
}


def _day_or_moment(value: str) -> dt.date | dt.datetime:
    """A day (the whole UTC day) or a date-time (an instant), as every --since/--until reads (routing.days)."""
    try:
        return day_or_moment(value)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Reconcile a CRM attribution export (CSV: lead_id, origin, owner[, stage, amount]) with the leads we "
        "received in the period (default: the last 7 days); stores the report and prints it."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV exported from the CRM (UTF-8).")
        parser.add_argument(
            "--since", type=_day_or_moment, help="First day of the period (YYYY-MM-DD, UTC), or a date-time."
        )
        parser.add_argument(
            "--until",
            type=_day_or_moment,
            help="Last day of the period, inclusive (YYYY-MM-DD), or a date-time (not included).",
        )
        parser.add_argument("--by", help="Username to record as the report's author (default: none).")

    def handle(self, *args, **options):
        try:
            since, until = attribution_period(since=options["since"], until=options["until"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        by = None
        if options["by"]:
            by = get_user_model().objects.filter(username=options["by"]).first()
            if by is None:
                raise CommandError(f"No user {options['by']!r}.")
        path = Path(options["file"])
        try:
            with path.open("rb") as file:
                report = attribution_reconcile(file=file, name=path.name, by=by, since=since, until=until)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        except AttributionFileError as exc:
            raise CommandError(f"{path.name}: {exc.message}") from None
        self.print_report(report)

    def print_report(self, report):
        data, totals = report.data, report.data["totals"]
        self.stdout.write(
            f"Attribution report #{report.pk}: {report.source_name}, leads received "
            f"{report.period_start:%Y-%m-%d %H:%M} to {report.period_end:%Y-%m-%d %H:%M} (UTC)"
        )
        self.stdout.write(
            f"CRM rows {totals['crm_rows']}, our leads {totals['our_leads']}: matched {totals['matched']}, "
            f"misrouted {totals['misrouted']}, missing in CRM {totals['missing_in_crm']}, "
            f"unknown to us {totals['unknown_to_us']}; outside the period {totals['outside_period']}, "
            f"never assigned here {totals['unassigned_here']}"
        )
        if "amounts" in data:
            amounts = data["amounts"]
            self.stdout.write(
                f"Amounts: CRM {amounts['crm']}, misrouted {amounts['misrouted']}, "
                f"unknown to us {amounts['unknown_to_us']}"
            )
        verdict = f"Variance {report.variance:.2%} (threshold {data['threshold']:.2%})"
        if report.flagged:
            self.stdout.write(self.style.WARNING(f"{verdict}: FLAGGED"))
        else:
            self.stdout.write(self.style.SUCCESS(f"{verdict}: within the threshold"))
        for name, label in LABELS.items():
            entries = data[name]
            if not entries:
                continue
            shown = f", first {len(entries)} listed" if name in data["truncated"] else ""
            self.stdout.write(f"{label} ({totals[name]}{shown}):")
            for e in entries:
                lead = f"{e['origin']} {e['lead_id']}" + (f" (#{e['pk']})" if e.get("pk") else "")
                owners = []
                if "ours" in e:
                    owners.append(f"ours {e['ours'] or '—'}")
                if "crm" in e:
                    owners.append(f"CRM {e['crm'] or '—'}")
                where = f" [line {e['line']}]" if e.get("line") else ""
                self.stdout.write(f"  {lead}: {', '.join(owners)}{where}")
