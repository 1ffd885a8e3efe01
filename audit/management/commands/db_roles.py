from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from audit.db_roles import adopt_statements, grant_statements, role_statements, schema_tables


class Command(BaseCommand):
    help = (
        "Create (or put back) the database's owner and application roles, as a superuser: connect with "
        "DATABASE_URL=postgres://<superuser>@host/<database>. Idempotent. docs/security.md, 4."
    )

    def add_arguments(self, parser):
        parser.add_argument("--owner", default="handoff_owner", help="Owns the schema, runs migrate.")
        parser.add_argument("--app", default="handoff_app", help="The application's role: rows only.")
        parser.add_argument(
            "--createdb", action="store_true", help="Let the owner create databases (the test suite's test_<name>)."
        )
        parser.add_argument(
            "--adopt",
            action="store_true",
            help="Also hand the connected database, its public schema and all in it to the owner, and grant the "
            "application its share of the tables (an existing deployment that used one role).",
        )
        parser.add_argument("--print", action="store_true", dest="print_only", help="Print the SQL; run nothing.")

    def handle(self, *args, owner, app, createdb, adopt, print_only, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Database roles are for PostgreSQL; this database is " + connection.vendor + ".")
        statements = role_statements(owner_role=owner, app_role=app, createdb=createdb)
        if adopt:
            statements += [
                *adopt_statements(connection, owner_role=owner),
                f"SET LOCAL ROLE {owner}",  # the grants are the owner's, as migrate's re-grant makes them
                *grant_statements(app_role=app, owner_role=owner, tables=schema_tables(connection)),
            ]
        if print_only:
            self.stdout.write(";\n".join(statements) + ";")
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if not cursor.fetchone()[0]:
                raise CommandError("Run it as a superuser (DATABASE_URL=postgres://postgres@…).")
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(f"Roles {owner} (owner) and {app} (application) are in place.")
