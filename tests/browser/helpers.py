"""Steps the browser tests share."""

from playwright.sync_api import Page

PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's password


def log_in(page: Page, user, password: str = PASSWORD) -> None:
    """Through the real login form, as a person would; the caller checks where it lands."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.get_username())
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():  # the form posts, then the response (a redirect or the form again) loads
        page.get_by_role("button", name="Log in").click()
