"""Least privilege (docs/security.md, 4): the suite connects as the application role, which may read and write
rows and nothing more. It may not TRUNCATE, disable triggers or switch to replica mode (which skips triggers),
and the append-only tables refuse its UPDATE and DELETE; the owner's triggers stay as a second line.

Runs when DATABASE_MIGRATE_URL names an owner role (as CI does, .ci/run); with one role for everything there
is nothing to test, and the module says so."""

import io

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.db_roles import (
    APPEND_ONLY_TABLES,
    ORDINARY_TABLES,
    READ_ONLY_TABLES,
    append_only_tables,
    as_owner,
    history_tables,
    owner_connection,
)
from exceptions.triage import lead_assign_manually
from routing.models import Lead, LeadStatus, QueueMembership
from routing.services import lead_route
from tests.conftest import database_url_for_tests, queue_drained, service_env, wait_until
from tests.factories import (
    LeadFactory,
    LeadPayloadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
)
from tests.faults.helpers import Processes, post_lead

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not settings.HANDOFF_DATABASE_OWNER,
        reason="one database role for everything: set DATABASE_MIGRATE_URL to an owner role (README, Database roles)",
    ),
]

APP_ROLE = settings.HANDOFF_DATABASE_APP_ROLE
PROTECTED = sorted(APPEND_ONLY_TABLES | {"routing_historicallead", "routing_historicalrule", "routing_historicaluser"})


@pytest.fixture
def routed_world(rule_owner, ops_person):
    """A rule in production (a version, a promotion, history), a lead it routed (audit events, the lead's
    history) and a manual override of it: a row in every kind of protected table."""
    sales = QueueFactory(name="Sales")
    MembershipFactory(queue=sales, user=UserFactory(username="sam"))
    RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales, priority=10)
    lead = LeadFactory()
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    lead_assign_manually(lead=lead, queue=sales, assignee=ops_person, reason="Asked for by name.", by=ops_person)
    return lead


def refused(statement: str, match: str = "permission denied") -> str:
    with pytest.raises(DatabaseError, match=match) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    return str(caught.value)


def counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        result = {}
        for table in PROTECTED:
            cursor.execute(f"SELECT count(*) FROM {table}")
            result[table] = cursor.fetchone()[0]
        return result


def test_the_suite_connects_as_the_application_role():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == APP_ROLE != settings.HANDOFF_DATABASE_OWNER["USER"]


def test_the_application_role_has_no_power_beyond_rows():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        )
        assert cursor.fetchone() == (False, False, False, False, False)
        cursor.execute("SELECT count(*) FROM pg_auth_members WHERE member = current_user::regrole")
        assert cursor.fetchone()[0] == 0  # member of no other role: not the owner's, not pg_write_all_data
        cursor.execute("SELECT count(*) FROM pg_class WHERE relowner = current_user::regrole")
        assert cursor.fetchone()[0] == 0  # owns nothing, so no ALTER, no DROP, no trigger control
        cursor.execute("SELECT has_schema_privilege('public', 'CREATE')")
        assert cursor.fetchone()[0] is False


@pytest.mark.parametrize("table", [*PROTECTED, "routing_lead"])
def test_the_application_cannot_truncate(routed_world, table):
    before = counts()
    refused(f"TRUNCATE {table} CASCADE")
    assert counts() == before


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        "ALTER TABLE routing_ruleversion DISABLE TRIGGER routing_ruleversion_append_only",
        "DROP TRIGGER audit_event_append_only ON audit_auditevent",
        "DROP TABLE audit_override",
    ],
)
def test_the_application_cannot_disable_drop_or_alter(statement):
    refused(statement, match="must be owner")


def test_the_application_cannot_switch_to_replica_mode_which_skips_triggers():
    refused("SET session_replication_role = replica", match="permission denied to set parameter")


@pytest.mark.parametrize("table", PROTECTED)
@pytest.mark.parametrize("verb", ["UPDATE {table} SET id = id", "DELETE FROM {table}"])
def test_the_append_only_tables_refuse_update_and_delete(routed_world, table, verb):
    before = counts()
    assert before[table] > 0
    refused(verb.format(table=table), match=f"permission denied for table {table}")
    assert counts() == before


def test_ordinary_routing_writes_work_as_the_application(routed_world, ops_person):
    """Routing, a person's change and a delete of an ordinary row all go through as the application role."""
    lead = LeadFactory(lead_id="second")
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    assert lead.status == LeadStatus.ASSIGNED
    assert lead.assignee.username == "sam"
    Lead.objects.filter(pk=lead.pk).update(company="Acme Ltd")
    QueueMembership.objects.filter(user__username="sam").delete()
    assert not QueueMembership.objects.exists()


def test_every_table_is_listed_and_granted_as_listed():
    """No table forgotten: every table in the schema is ordinary, append-only or read-only for the application,
    and the application holds exactly that share of it (never TRUNCATE, REFERENCES or TRIGGER)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, "
            + ", ".join(
                f"has_table_privilege(tablename, '{privilege}')"
                for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
            )
            + " FROM pg_tables WHERE schemaname = 'public'"
        )
        granted = {table: privileges for table, *privileges in cursor.fetchall()}
    protected = append_only_tables()
    expected = {}
    for table in granted:
        if table in protected:
            expected[table] = [True, True, False, False, False, False, False]
        elif table in READ_ONLY_TABLES:
            expected[table] = [True, False, False, False, False, False, False]
        elif table in ORDINARY_TABLES:
            expected[table] = [True, True, True, True, False, False, False]
        else:
            expected[table] = "in no list of audit/db_roles.py"
    assert granted == expected
    assert history_tables() == {
        "routing_historicaldeliverytarget",
        "routing_historicalenrichmentprovider",
        "routing_historicallead",
        "routing_historicalqueue",
        "routing_historicalqueuemembership",
        "routing_historicalrule",
        "routing_historicalsource",
        "routing_historicaltimeoff",
        "routing_historicaluser",
        "routing_historicalworkinghours",
    }


@pytest.mark.django_db(transaction=True)
def test_a_table_a_later_migration_creates_is_append_only_until_migrate_grants_again():
    """The default privileges: a new table is SELECT and INSERT for the application, nothing more."""
    owner = owner_connection(connection)
    try:
        with owner.cursor() as cursor:
            cursor.execute("CREATE TABLE routing_newthing (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)")
        try:
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO routing_newthing DEFAULT VALUES")
                cursor.execute("SELECT count(*) FROM routing_newthing")
                assert cursor.fetchone()[0] == 1
            refused("DELETE FROM routing_newthing")
            refused("TRUNCATE routing_newthing")
        finally:
            with owner.cursor() as cursor:
                cursor.execute("DROP TABLE routing_newthing")
    finally:
        owner.close()


@pytest.mark.django_db(transaction=True)
def test_migrate_as_the_owner_grants_the_application_its_share_again():
    owner = owner_connection(connection)
    try:
        with owner.cursor() as cursor:
            cursor.execute(f"REVOKE ALL ON routing_lead FROM {APP_ROLE}")
            cursor.execute(f"GRANT ALL ON audit_override TO {APP_ROLE}")  # as a careless hand would
    finally:
        owner.close()
    refused("SELECT count(*) FROM routing_lead")
    with as_owner(connection):
        call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege('routing_lead', 'UPDATE'), has_table_privilege('audit_override', 'UPDATE')"
        )
        assert cursor.fetchone() == (True, False)


@pytest.mark.django_db(transaction=True)
def test_the_owner_is_still_refused_by_the_triggers(routed_world):
    """Defence in depth: the owner can change grants, but the triggers refuse its UPDATE and DELETE too."""
    owner = owner_connection(connection)
    try:
        with owner.cursor() as cursor:
            for statement in ("UPDATE audit_auditevent SET outcome = 'x'", "DELETE FROM routing_rulepromotion"):
                with pytest.raises(DatabaseError, match="append-only|immutable"):
                    cursor.execute(statement)
    finally:
        owner.close()


def test_workers_and_servers_the_tests_start_are_not_given_the_owners_url():
    env = service_env()
    assert env["DATABASE_URL"].startswith(f"postgres://{APP_ROLE}@")
    assert "DATABASE_MIGRATE_URL" not in env


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_lead_posted_to_gunicorn_and_routed_by_a_worker_touches_the_database_only_as_the_application(
    tmp_path, source
):
    started = Processes(tmp_path)
    try:
        keep = {"TEST_CONN_MAX_AGE": "60"}  # as production: connections stay open, so they can be seen
        base = started.web(workers=1, threads=2, **keep)
        started.worker(**keep)
        response = post_lead(base, source.token, LeadPayloadFactory(lead_id="seen-by-role"))
        assert response.status_code == 202, response.text
        wait_until(
            lambda: Lead.objects.exclude(status=LeadStatus.RECEIVED).filter(lead_id="seen-by-role").exists(),
            what="the worker to route the lead",
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT usename, count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() GROUP BY usename"
            )
            sessions = dict(cursor.fetchall())
        assert set(sessions) == {APP_ROLE}, sessions
        assert sessions[APP_ROLE] >= 2  # the web server's and the worker's
    finally:
        started.stop_all()
        wait_until(queue_drained, what="the broker to be empty")


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_tables_through_the_owner_and_leaves_the_application_without_truncate(routed_world):
    """How transactional tests are emptied (audit/management/commands/flush.py): the owner TRUNCATEs, the
    connection stays the application's, which still may not."""
    call_command("flush", interactive=False, verbosity=0)
    assert counts() == dict.fromkeys(PROTECTED, 0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, has_table_privilege('audit_auditevent', 'TRUNCATE')")
        assert cursor.fetchone() == (APP_ROLE, False)


def test_db_roles_prints_roles_without_powers_and_the_applications_share():
    owner, out = settings.HANDOFF_DATABASE_OWNER["USER"], io.StringIO()
    roles = ["--owner", owner, "--app", APP_ROLE]
    call_command("db_roles", "--print", "--adopt", *roles, "--admin-url", database_url_for_tests(), stdout=out)
    sql = out.getvalue()
    limits = "LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT NOCREATEDB;"
    assert f"ALTER ROLE {APP_ROLE} {limits}" in sql and f"ALTER ROLE {owner} {limits}" in sql
    (revoke,) = [line for line in sql.splitlines() if line.startswith("REVOKE ALL ON TABLE")]
    assert "audit_auditevent" in revoke and "routing_lead," in revoke and revoke.endswith(f"FROM {APP_ROLE};")
    (append_only,) = [line for line in sql.splitlines() if line.startswith("GRANT SELECT, INSERT ON TABLE")]
    assert "audit_auditevent" in append_only and "routing_historicallead" in append_only
    assert "routing_lead," not in append_only
    assert f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT, INSERT ON TABLES" in sql
