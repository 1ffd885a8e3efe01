import functools

from django.conf import settings
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from exceptions.filters import saved_view_counts
from routing.queue_owners import queues_without_owner


def console(request):
    """Settings the console's pages show or act on (no queries), and the person's saved views for the
    navigation: read only when a full page's navigation shows them (lazily, so a partial or a page outside the
    console costs nothing), and only for a person with console access. For staff, how many queues lack an
    owner or escalation contact (one count, read only by the base template's banner)."""
    return {
        "reminder_minutes": settings.HANDOFF["REMINDER_MINUTES"],
        "nav_saved_views": SimpleLazyObject(lambda: _nav_saved_views(request)),
        # A callable the template calls (cached: one query however often the page reads it), not a lazy object:
        # the count is an int for `pluralize`.
        "queues_without_owner": functools.cache(lambda: queues_without_owner().count()),
    }


def _nav_saved_views(request) -> list[dict]:
    # console_groups is set by the console's access check; anyone else (or an htmx partial) sees none.
    # The item list's own refresh (htmx) takes the band along, with fresh counts; other partials skip it.
    partial = getattr(request, "htmx", False) and request.path != reverse("console:items")
    if partial or not getattr(request.user, "console_groups", None):
        return []
    here = None  # the list's filters when this page is the item list: that view is the current one
    if request.path == reverse("console:items"):
        query = request.GET.copy()
        query.pop("page", None)
        here = query.urlencode()
    return [{**saved, "current": saved["view"].query == here} for saved in saved_view_counts(request.user)]
