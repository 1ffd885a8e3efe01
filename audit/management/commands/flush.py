from django.core.management.color import no_style
from django.core.management.commands import flush
from django.core.management.sql import emit_post_migrate_signal, sql_flush
from django.db import connections

from audit.db_roles import owner_connection


class Command(flush.Command):
    """Django's flush; when the connection is the application's role and the owner's is configured
    (DATABASE_MIGRATE_URL), the TRUNCATE goes through the owner, as the application may not TRUNCATE
    (docs/security.md, 4). This is how the test suite, connected as the application, empties its tables."""

    def handle(self, **options):
        database = options["database"]
        owner = owner_connection(connections[database])
        if owner is None:
            return super().handle(**options)
        name = connections[database].settings_dict["NAME"]
        if options["interactive"] and input(f"Remove ALL DATA from {name!r}, as its owner? Type 'yes': ") != "yes":
            self.stdout.write("Flush cancelled.")
            return
        statements = sql_flush(
            no_style(),
            connections[database],
            reset_sequences=options.get("reset_sequences", True),
            allow_cascade=options.get("allow_cascade", False),
        )
        try:
            with owner.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            owner.close()
        if statements and not options.get("inhibit_post_migrate", False):
            emit_post_migrate_signal(options["verbosity"], False, database)
