"""Finding 11 (docs/security.md): every page works under the Content-Security-Policy, which refuses inline
script and style. The `page` fixture fails a test on any CSP violation; this visits the pages the other
browser tests do not: the admin, the API docs, the lockout page and a password change."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from tests.browser.helpers import log_in
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_admin_and_the_api_docs_work_without_inline_script(page):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    admin.groups.add(Group.objects.get_or_create(name="ops")[0])
    log_in(page, admin)

    page.goto("/admin/routing/queue/add/")
    expect(page.get_by_role("heading", name="Add queue")).to_be_visible()

    page.goto("/api/docs/")
    expect(page.get_by_text("Handoff API").first).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()  # Swagger UI ran: its script is a file now


def test_the_lockout_page_shows_under_the_policy(page, ops_person):
    for attempt in range(5):
        log_in(page, ops_person, password=f"wrong-{attempt}")

    expect(page.get_by_role("heading", name="Locked out")).to_be_visible()
    expect(page.get_by_text(re.compile("Too many failed sign-ins"))).to_be_visible()
