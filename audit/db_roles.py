"""Least privilege in the database (docs/security.md, 4): which tables the application's role may write, and the
SQL that makes it so.

Two roles: the owner (DATABASE_MIGRATE_URL) owns the schema and runs `manage.py migrate`; the application
(DATABASE_URL) only reads and writes rows. It may not TRUNCATE, ALTER, control triggers or set
`session_replication_role` (PostgreSQL gives those to the owner and superusers alone), and on the append-only
tables (the audit trail, overrides, rule versions and promotions, every django-simple-history table) it may
only SELECT and INSERT, so even a compromised application cannot rewrite what routing ran and why.

Every migrate re-grants (`grant_after_migrate`, a post_migrate handler); `manage.py db_roles` creates the roles."""

import re
from contextlib import contextmanager, nullcontext

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from simple_history.models import HistoricalChanges

# What routing ran and why, and who changed what by hand: the application may add rows, never change them.
# django-simple-history's tables are added by `append_only_tables` (a new history is covered at once).
APPEND_ONLY_TABLES = frozenset(
    {
        "audit_auditevent",
        "audit_override",
        "routing_ruleversion",
        "routing_rulepromotion",
    }
)
# Written by `migrate` alone.
READ_ONLY_TABLES = frozenset({"django_migrations"})
# Tables the application reads and writes. A new table must be named here (or above): until it is, it keeps
# what the default privileges give a new table, SELECT and INSERT, and tests/audit/test_db_roles.py names it.
ORDINARY_TABLES = frozenset(
    {
        # Django and DRF: people, groups, permissions, sessions, tokens, the admin's log.
        "auth_group",
        "auth_group_permissions",
        "auth_permission",
        "auth_user",
        "auth_user_groups",
        "auth_user_user_permissions",
        "django_admin_log",
        "django_content_type",
        "django_session",
        # django-axes: failed sign-ins and lockouts (cleared when they expire or are lifted), the access log.
        "axes_accessattempt",
        "axes_accessattemptexpiration",
        "axes_accessfailurelog",
        "axes_accesslog",
        # Exception queues.
        "exceptions_exceptionitem",
        "exceptions_exceptionincident",
        "exceptions_playbook",
        "exceptions_notification",
        "exceptions_savedview",
        "exceptions_slaevent",
        "exceptions_exceptionitem_held_leads",
        "exceptions_sweepbatch",
        "exceptions_alertchannel",
        "exceptions_alertmessage",
        # Routing: sources, queues, rules (the editable draft), leads and their accounts.
        "routing_source",
        "routing_queue",
        "routing_queuemembership",
        "routing_rule",
        "routing_rulesetgeneration",
        "routing_lead",
        "routing_leadidentity",
        "routing_account",
        "routing_accountdomain",
        "routing_accountmatch",
        "routing_accountnamekey",
        "routing_personaltoken",
        "routing_openleadcount",
        # Availability: working hours, time off, and the distribution ledger (upserted under the queue lock).
        "routing_workinghours",
        "routing_timeoff",
        "routing_distributionday",
        # Governance beside the frozen versions: shadow decisions, replays, sign-offs and their reminders.
        "routing_shadowdecision",
        "routing_replayrun",
        "routing_rulenotice",
        "routing_rulesignoff",
        "routing_rulechangeview",
        "routing_ruleapproval",  # append-only in code (AppendOnlyModel); no database trigger yet
        "routing_signoffreminder",
        # Routing experiments and the leads each enrolled.
        "routing_experiment",
        "routing_experimentlead",
        # Delivery and enrichment.
        "routing_outboxevent",
        "routing_deliveryattempt",
        "routing_deliverytarget",
        "routing_enrichmentprovider",
        "routing_enrichmentreceipt",
        # The capture edge: schema versions, and the posts intake refused (trimmed) with their daily counts.
        "routing_schemaversion",
        "routing_rejectedpost",
        "routing_rejectionday",
        # Reports and dashboard roll-ups (recomputed in place).
        "routing_reconciliationreport",
        "routing_incident",
        "routing_anomalyreport",
        "routing_rollupday",
        "routing_dailyleadstat",
        "routing_dailyqueuestat",
        "routing_dailydeliverystat",
        "routing_latencybucket",
    }
)

ORDINARY_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APPEND_ONLY_PRIVILEGES = "SELECT, INSERT"
READ_ONLY_PRIVILEGES = "SELECT"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def history_tables() -> set[str]:
    """Every django-simple-history table of the installed models."""
    return {model._meta.db_table for model in apps.get_models() if issubclass(model, HistoricalChanges)}


def append_only_tables() -> set[str]:
    return set(APPEND_ONLY_TABLES) | history_tables()


def role_name(name: str) -> str:
    """A role name, refused unless it is a plain lower-case identifier (it is written into SQL)."""
    if not _ROLE_NAME.fullmatch(name or ""):
        raise ImproperlyConfigured(f"{name!r} is not a usable role name: lower-case letters, digits and _.")
    return name


def grant_statements(*, app_role: str, owner_role: str, tables: set[str]) -> list[str]:
    """What the owner runs (in one transaction) so that `app_role` may do exactly its share to the existing
    `tables` of the current schema, and to those later migrations create."""
    app, owner = role_name(app_role), role_name(owner_role)
    protected = append_only_tables()
    groups = [
        (ORDINARY_PRIVILEGES, sorted(tables & (ORDINARY_TABLES - protected - READ_ONLY_TABLES))),
        (APPEND_ONLY_PRIVILEGES, sorted(tables & protected)),
        (READ_ONLY_PRIVILEGES, sorted(tables & READ_ONLY_TABLES)),
    ]
    statements = [
        # The schema: the application uses it and creates nothing in it (PostgreSQL < 15 let everyone create).
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {app}",
        # A table a later migration creates is append-only for the application until the next re-grant.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT {APPEND_ONLY_PRIVILEGES} ON TABLES TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE ON SEQUENCES TO {app}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app}",
    ]
    classified = [table for _, names in groups for table in names]
    if classified:
        statements.append(f"REVOKE ALL ON TABLE {', '.join(classified)} FROM {app}")
    statements += [f"GRANT {privileges} ON TABLE {', '.join(names)} TO {app}" for privileges, names in groups if names]
    return statements


def schema_tables(connection) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in cursor.fetchall()}


def unclassified_tables(connection) -> set[str]:
    return schema_tables(connection) - ORDINARY_TABLES - READ_ONLY_TABLES - append_only_tables()


def apply_grants(connection, *, app_role: str) -> list[str]:
    """Run `grant_statements` as the connection's role (the owner); returns the tables no list names."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()
    statements = grant_statements(app_role=app_role, owner_role=owner, tables=schema_tables(connection))
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return sorted(unclassified_tables(connection))


def grant_after_migrate(sender, using, plan=None, **kwargs):
    """post_migrate: after every `migrate` (not after a flush, which sends no plan) run by the owner, give the
    application role its privileges on every table, the new ones included."""
    connection = connections[using]
    app_role = settings.HANDOFF_DATABASE_APP_ROLE
    if plan is None or connection.vendor != "postgresql" or not app_role:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        if cursor.fetchone()[0] == app_role:
            return  # one role for everything (or migrate run as the application by mistake: it fails earlier)
    with transaction.atomic(using=using):
        unclassified = apply_grants(connection, app_role=app_role)
    if unclassified and kwargs.get("verbosity", 1):
        print(
            "  These tables are in no list of audit/db_roles.py, so the application may only SELECT and INSERT "
            f"them: {', '.join(unclassified)}"
        )


@contextmanager
def _with_credentials(connection, credentials: dict):
    previous = {key: connection.settings_dict[key] for key in credentials}
    connection.close()
    connection.settings_dict.update(credentials)
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict.update(previous)


def as_owner(connection):
    """The connection, reconnected with the owner's credentials (DATABASE_MIGRATE_URL) for a while, to the same
    database; as it is when no owner is configured. For the test harness: creating the test database."""
    owner = settings.HANDOFF_DATABASE_OWNER
    if not owner or connection.settings_dict["USER"] == owner["USER"]:
        return nullcontext(connection)
    return _with_credentials(connection, owner)


def owner_connection(connection):
    """A separate connection to the same database as the owner, or None when no owner is configured (or the
    connection already is the owner). The caller closes it."""
    owner = settings.HANDOFF_DATABASE_OWNER
    if not owner or connection.vendor != "postgresql" or connection.settings_dict["USER"] == owner["USER"]:
        return None
    wrapper = type(connections[connection.alias])  # `connection` may be django.db's proxy
    return wrapper({**connection.settings_dict, **owner}, alias=f"{connection.alias}-owner")


def role_statements(*, owner_role: str, app_role: str, createdb: bool = False) -> list[str]:
    """What a superuser runs, once per cluster and again at will, to create (or put back) the two roles."""
    owner, app = role_name(owner_role), role_name(app_role)
    if owner == app:
        raise ImproperlyConfigured("The owner and the application need two different roles.")
    # No superuser, no role or database creation, no replication, no row-security bypass; the owner may create
    # databases only where the test suite runs (pytest-django creates test_<name>).
    limits = "LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
    return [
        "DO $$ BEGIN "
        + " ".join(
            f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role}; END IF;"
            for role in (owner, app)
        )
        + " END $$",
        f"ALTER ROLE {owner} {limits} {'CREATEDB' if createdb else 'NOCREATEDB'}",
        f"ALTER ROLE {app} {limits} NOCREATEDB",
        # The application holds no other role's privileges (the owner's, or pg_write_all_data and the like).
        "DO $$ DECLARE granted record; BEGIN FOR granted IN SELECT roleid::regrole AS role FROM pg_auth_members "
        f"WHERE member = '{app}'::regrole LOOP EXECUTE format('REVOKE %s FROM {app}', granted.role); END LOOP; END $$",
    ]


def adopt_statements(connection, *, owner_role: str) -> list[str]:
    """What a superuser runs in an existing database (created by another role, one role for everything) to hand
    it, its public schema and everything in that schema to the owner."""
    owner = role_name(owner_role)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' "
            "ELSE 'TABLE' END, quote_ident(c.relname) FROM pg_class c "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
            "AND c.relowner <> %s::regrole AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d "
            "WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))) ORDER BY 2",  # owned sequences follow their table
            [owner],
        )
        relations = cursor.fetchall()
        cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
            "AND p.proowner <> %s::regrole ORDER BY 1",
            [owner],
        )
        functions = [name for (name,) in cursor.fetchall()]
        cursor.execute("SELECT quote_ident(current_database())")
        (database,) = cursor.fetchone()
    return [
        f"ALTER DATABASE {database} OWNER TO {owner}",
        f"ALTER SCHEMA public OWNER TO {owner}",
        *(f"ALTER {kind} {name} OWNER TO {owner}" for kind, name in relations),
        *(f"ALTER FUNCTION {signature} OWNER TO {owner}" for signature in functions),
    ]
