from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from routing.governance.models import RuleVersion
from routing.governance.remediate import leads_reroute
from routing.models import Rule


def _version(spec: str) -> RuleVersion:
    """RULE:N, RULE a rule's name or id, N its version number."""
    name, colon, number = spec.rpartition(":")
    if not colon or not name or not number.isdigit():
        raise CommandError(
            f"--version {spec!r}: write RULE:N, the rule's name or id and a version number, e.g. 'MQL to sales:2'."
        )
    rule = Rule.objects.filter(name=name).first()
    if rule is None and name.isdigit():
        rule = Rule.objects.filter(pk=int(name)).first()
    if rule is None:
        raise CommandError(f"No rule is named {name!r} (or has that id); `export_rules` lists them.")
    version = RuleVersion.objects.select_related("rule__owner").filter(rule=rule, number=int(number)).first()
    if version is None:
        numbers = ", ".join(f"v{n}" for n in rule.versions.order_by("number").values_list("number", flat=True))
        raise CommandError(f"{rule.name!r} has no version {number}; its versions: {numbers or 'none yet'}.")
    return version


class Command(BaseCommand):
    help = (
        "Re-route the leads a rule version decided that the live production rules now route elsewhere (after a "
        "rollback, say): new owners in the live rules' queues, both owners notified, lead.reassigned delivered, "
        "audited as the person named by --as."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names the rule version here (the brief's interface), not Django's own version flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--version", required=True, metavar="RULE:N", help="The rule (name or id) and version.")
        parser.add_argument("--dry-run", action="store_true", help="List what would move; write nothing.")
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            help="Who is doing this (recorded as the actor; the rule's owner or an admin). Required unless --dry-run.",
        )

    def handle(self, *args, **options):
        version = _version(options["version"])
        by = None
        if options["as_user"]:
            by = get_user_model().objects.filter(username=options["as_user"], is_active=True).first()
            if by is None:
                raise CommandError(f"--as {options['as_user']!r}: no active account has that username.")
        elif not options["dry_run"]:
            raise CommandError(
                "Name who is re-routing with --as USERNAME (recorded in the audit trail), or use --dry-run."
            )
        try:
            result = leads_reroute(version=version, by=by, dry_run=options["dry_run"])
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None
        for row in result.moved:
            self.stdout.write(
                f"  lead {row.id} ({row.lead_id}): {row.queue or '—'} / {row.assignee or '—'} → "
                f"{row.new_queue} (by {row.new_rule} v{row.new_version})"
            )
        self.stdout.write(f"{version}: {result.summary()}")
