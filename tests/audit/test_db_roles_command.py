"""`manage.py db_roles` as a newcomer first runs it, on a server with no database yet (runs with one role too)."""

import pytest
from django.core.management import CommandError, call_command


def test_an_admin_url_to_a_database_that_does_not_exist_says_what_to_do():
    with pytest.raises(CommandError) as refused:
        call_command("db_roles", admin_url="postgres://postgres@127.0.0.1:5432/handoff_not_created_yet")
    message = str(refused.value)
    assert 'database "handoff_not_created_yet" does not exist' in message
    assert "postgres://postgres@host/postgres" in message and "createdb -O" in message
