"""`manage.py grant_console_access`: how people other than admins get the console (README: People)."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from exceptions.permissions import console_access_grant, has_console_access
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def grant(*args) -> str:
    out = io.StringIO()
    call_command("grant_console_access", *args, stdout=out)
    return out.getvalue()


def test_a_new_person_is_created_in_the_group_without_a_usable_password():
    printed = grant("olga", "--group", "ops", "--email", "olga@example.test")
    olga = get_user_model().objects.get(username="olga")
    assert printed.splitlines() == [
        "Created olga: groups ops.",
        "Set their password: .venv/bin/python manage.py changepassword olga",
    ]
    assert olga.email == "olga@example.test" and not olga.has_usable_password() and not olga.is_staff
    assert has_console_access(olga) and olga.console_groups == {"ops"}


def test_an_existing_person_gains_a_second_group_and_keeps_their_password():
    rowan = UserFactory(username="rowan", email="rowan@example.test")
    grant("rowan", "--group", "ops")
    printed = grant("rowan", "--group", "rule_owners", "--group", "ops")
    assert printed.strip() == "Updated rowan: groups ops, rule_owners."
    rowan.refresh_from_db()
    assert rowan.check_password("pw-for-tests") and rowan.email == "rowan@example.test"


def test_an_unknown_group_is_refused_naming_the_ones_there_are():
    with pytest.raises(CommandError, match="invalid choice: 'admins'"):
        grant("olga", "--group", "admins")
    with pytest.raises(ValueError, match="No console group admins; use ops or rule_owners."):
        console_access_grant(username="olga", groups=["admins"])
    assert not get_user_model().objects.filter(username="olga").exists()
