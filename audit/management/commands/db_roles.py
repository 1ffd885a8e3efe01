import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.db_roles import adopt_statements, grant_statements, role_statements, schema_tables


class Command(BaseCommand):
    help = (
        "Create (or put back) the database's owner and application roles, connected as a superuser. Idempotent. "
        "docs/security.md, 4."
    )

    def add_arguments(self, parser):
        parser.add_argument("--owner", default="handoff_owner", help="Owns the schema, runs migrate.")
        parser.add_argument("--app", default="handoff_app", help="The application's role: rows only.")
        parser.add_argument(
            "--admin-url",
            help="A superuser's connection, e.g. postgres://postgres@127.0.0.1:5432/handoff (default: DATABASE_URL).",
        )
        parser.add_argument(
            "--createdb", action="store_true", help="Let the owner create databases (the test suite's test_<name>)."
        )
        parser.add_argument(
            "--adopt",
            action="store_true",
            help="Also hand the database of --admin-url, its public schema and all in it to the owner, and grant "
            "the application its share of the tables (an existing deployment that used one role).",
        )
        parser.add_argument("--print", action="store_true", dest="print_only", help="Print the SQL; run nothing.")

    def handle(self, *args, owner, app, admin_url, createdb, adopt, print_only, **options):
        url = admin_url or settings.DATABASE_URL
        if not url.startswith(("postgres://", "postgresql://")):
            raise CommandError("Database roles are for PostgreSQL: give --admin-url postgres://<superuser>@host/db.")
        try:
            admin = psycopg.connect(url)
        except psycopg.OperationalError as exc:
            raise CommandError(
                f"Could not connect with --admin-url ({str(exc).strip().splitlines()[-1]}). Connect to a database that "
                "exists (on a new server, postgres://postgres@host/postgres), then `createdb -O <owner> <name>`."
            ) from None
        with admin:
            statements = role_statements(owner_role=owner, app_role=app, createdb=createdb)
            if adopt:
                statements += [
                    *adopt_statements(admin, owner_role=owner),
                    f"SET LOCAL ROLE {owner}",  # the grants are the owner's, as migrate's re-grant makes them
                    *grant_statements(app_role=app, owner_role=owner, tables=schema_tables(admin)),
                ]
            if print_only:
                self.stdout.write(";\n".join(statements) + ";")
                return
            if not admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
                raise CommandError("Connect as a superuser (--admin-url postgres://postgres@…).")
            for statement in statements:
                admin.execute(statement)
        self.stdout.write(f"Roles {owner} (owner) and {app} (application) are in place.")
