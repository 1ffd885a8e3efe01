import json
import sys

from django.core.management.base import BaseCommand, CommandError

from routing.dateranges import range_bound
from routing.governance.replay import ReplayError, replay_execute, replay_request
from routing.governance.selectors import candidate_rules


def _when(value: str | None, *, end: bool):
    """A --since/--until value as the instant the range starts or (exclusively) ends: a date is its whole day."""
    if value is None:
        return None
    try:
        return range_bound(value, end=end)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Replay the candidate rule set (staging versions in place of production) against real leads and print "
        "the difference from what production decided. The run is stored: it counts as promotion evidence."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, help="The last N routed leads (default 10,000 without a range).")
        parser.add_argument(
            "--since", help="Leads received from this day (YYYY-MM-DD, UTC) or date-time (e.g. 2026-11-01T09:00Z)."
        )
        parser.add_argument(
            "--until", help="... up to this day, inclusive (YYYY-MM-DD), or before this date-time (exclusive)."
        )
        parser.add_argument("--json", action="store_true", help="Print the stored result as JSON.")

    def handle(self, *args, **options):
        try:
            run = replay_request(
                by=None,
                limit=options["limit"],
                since=_when(options["since"], end=False),
                until=_when(options["until"], end=True),
            )
        except ReplayError as exc:
            raise CommandError(str(exc)) from None
        for candidate in candidate_rules(run):
            marker = " (staging)" if candidate.staged else ""
            self.stderr.write(f"  {candidate.rule.name} v{candidate.version}{marker}")
        run = replay_execute(run_id=run.pk, on_progress=self._progress)
        self.stderr.write("")
        result = run.result
        if options["json"]:
            self.stdout.write(json.dumps({"replay": run.pk, "total": run.total, **result}, indent=2))
            return
        self.stdout.write(f"Replay #{run.pk}: {run.total} leads, {result['moved_count']} would move.")
        width = max([len(q) for q, _, _ in run.result_rows] + [5])
        self.stdout.write(f"  {'Queue'.ljust(width)}  {'before':>8}  {'after':>8}")
        for queue, before, after in run.result_rows:
            self.stdout.write(f"  {queue.ljust(width)}  {before:>8}  {after:>8}")
        for move in result["moved"][:50]:
            self.stdout.write(f"  lead {move['lead_id']} (#{move['id']}): {move['from']} → {move['to']}")
        if result["moved_count"] > 50:
            self.stdout.write(f"  … and {result['moved_count'] - 50} more (see the console or --json).")

    def _progress(self, done: int, total: int) -> None:
        filled = 30 * done // total if total else 30
        bar = "#" * filled + "-" * (30 - filled)
        self.stderr.write(f"\r[{bar}] {done}/{total}", ending="")
        sys.stderr.flush()
