from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from routing.erasure import ErasureError, person_erase


class Command(BaseCommand):
    help = (
        "Erase a person's personal data (email, phone, names, attributes) from their leads, the leads' history, "
        "the audit trail, exception notes, delivery payloads and rejected posts: hashes take the values' place, "
        "the rows stay. Recorded as a person.erased event by the person named by --as."
    )

    def add_arguments(self, parser):
        parser.add_argument("email", help="The person's email address (any case).")
        parser.add_argument("--phone", help="Also the leads with this phone number (the same digits).")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be erased; write nothing.")
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            required=True,
            help="Who is honouring the request (recorded as the erasure event's actor).",
        )

    def handle(self, *args, **options):
        by = get_user_model().objects.filter(username=options["as_user"], is_active=True).first()
        if by is None:
            raise CommandError(f"--as {options['as_user']!r}: no active account has that username.")
        try:
            erasure = person_erase(email=options["email"], phone=options["phone"], by=by, dry_run=options["dry_run"])
        except ErasureError as exc:
            raise CommandError(str(exc)) from None
        if not erasure.lead_ids:
            self.stdout.write("No lead holds that email or phone.")
        else:
            self.stdout.write(f"Leads: {', '.join(str(pk) for pk in erasure.lead_ids)}")
        verb = "Would change" if erasure.dry_run else "Changed"
        for table, count in erasure.rows.items():
            if count:
                self.stdout.write(f"  {table}: {count} rows")
        if erasure.dry_run:
            self.stdout.write(f"Dry run: {verb.lower()} {erasure.total} rows; nothing written.")
        else:
            self.stdout.write(
                self.style.SUCCESS(f"{verb} {erasure.total} rows; recorded as audit event {erasure.event.pk}.")
            )
