"""Browser fixtures: one headless Chromium (Debian's, never downloaded) for the session, a fresh context per test.

The pages are served by pytest-django's `live_server` (a real WSGI server in a thread, static files included),
so every test here is transactional: data the test builds is committed and the server thread sees it.

They run with the rest of the suite (`make test`). `make screenshots` runs them with
HANDOFF_UPDATE_SCREENSHOTS=1 to refresh the pictures in docs/screenshots that the README shows.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.helpers import log_in

# Playwright's sync API runs an asyncio event loop in the test thread. Django sees that running loop and
# refuses ORM calls from the test ("SynchronousOnlyOperation: You cannot call this from an async context"),
# although nothing here is actually async: the ORM and the browser take turns in the one thread. This lets
# the tests build data with the factories and check the database between browser steps. It is set at import
# time, for the whole process: the session-scoped browser keeps that loop registered until the session ends,
# so the database setup and any tests that run after these in the same pytest session need it too.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

expect.set_options(timeout=10_000)  # generous for a loaded machine; passing steps take well under 1 s


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Browser tests drive Debian's Chromium at {CHROMIUM}; install the chromium package.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(browser, live_server):
    """A fresh browser profile (no cookies, no storage) pointed at the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    yield context
    context.close()


@pytest.fixture
def page(context) -> Page:
    """A tab that fails the test on any uncaught JavaScript error (a broken console.js or htmx), and on anything
    the Content-Security-Policy refused (an inline script or style that no longer runs)."""
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield page
    assert not errors, f"JavaScript errors or CSP violations on the page: {errors}"


@pytest.fixture
def ops_page(page, ops_person) -> Page:
    """A tab logged in as Olga from ops, on the queue overview (where logging in lands)."""
    log_in(page, ops_person)
    expect(page).to_have_url(re.compile(r"/console/$"))
    expect(page.get_by_role("heading", name="Exception queues")).to_be_visible()
    return page


@pytest.fixture
def screenshots_dir(tmp_path_factory) -> Path:
    """docs/screenshots (linked from the README) when HANDOFF_UPDATE_SCREENSHOTS=1, else a scratch folder,
    so an ordinary test run does not rewrite tracked files."""
    if os.environ.get("HANDOFF_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")
