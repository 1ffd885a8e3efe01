"""The exception console: thin views that read through selectors and act through services."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseBadRequest, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from config.logs import log_context
from exceptions import services, triage
from exceptions.bulk import MAX_BULK_ITEMS, exceptions_bulk, filtered_item_ids
from exceptions.filters import SORTS, ExceptionFilter, console_people, groups_incidents, saved_view_counts
from exceptions.forms import (
    AssignForm,
    BulkForm,
    LeadEditForm,
    ManualAssignForm,
    NotificationFilterForm,
    ResolveForm,
    ThenForm,
    WaitingForm,
)
from exceptions.models import ExceptionItem, Resolution
from exceptions.permissions import ConsoleAccessMixin
from exceptions.playbooks import playbook_for
from exceptions.selectors import (
    exception_list_queryset,
    incident_groups,
    incident_stream_sizes,
    item_timeline,
    latest_per_incident,
    lead_decisions,
    lead_trail,
    notifications_for,
    queue_overview,
)
from routing.accounts.identity import person_leads
from routing.accounts.models import AccountMatch
from routing.governance.preview import lead_explanation

PAGE_SIZE = 50


class OverviewView(ConsoleAccessMixin, View):
    def get(self, request):
        template = "console/_queue_rows.html" if request.htmx else "console/overview.html"
        return render(request, template, {"rows": queue_overview(), "now": timezone.now()})


class ItemListView(ConsoleAccessMixin, View):
    def get(self, request):
        # An incident's items are one group row above the list, not 95 rows in it (exceptions.filters).
        filters = ExceptionFilter(request.GET, queryset=ExceptionItem.objects.all())
        data = request.GET.copy()
        data.pop("page", None)
        groups, ids = [], ExceptionItem.objects.none()
        if filters.is_valid():
            ids = filters.ordered().values_list("pk", flat=True)
            if groups_incidents(data):
                groups = incident_groups(filters.qs)
                ids = ids.filter(incident__isnull=True)
                data["in_incident"] = "false"  # what the list shows, for "all N matching" and saved views
                shown_filters = filters.form.data.copy()  # with the default statuses ticked, as they apply
                shown_filters["in_incident"] = "false"
                filters.form.data = shown_filters  # and the filter reads "In an incident: No", as the rows are
            shown = data.urlencode()
            if request.session.get(LIST_QUERY) != shown:  # (unchanged: no session write)
                request.session[LIST_QUERY] = shown  # the item pages' next and j/k walk this list
        # Page through ids alone (an index-only walk, however deep the page), then load the 50 rows.
        page = Paginator(ids, PAGE_SIZE).get_page(request.GET.get("page"))
        rows = exception_list_queryset().in_bulk(list(page.object_list))
        page.object_list = [rows[pk] for pk in page.object_list if pk in rows]
        return render(
            request,
            "console/item_list.html",
            {
                "filters": filters,
                "page": page,
                "now": timezone.now(),
                "query": data.urlencode(),  # with the grouping: "all N matching" acts on the N shown
                "incident_groups": groups,
                "bulk_form": BulkForm(),
                "resolutions": Resolution.choices,
                "refresh_seconds": settings.HANDOFF["LIST_REFRESH_SECONDS"],
                "saved_views": _saved_views(request.user),
                "undo": _undo_offer(request),
                "bulk_kept": request.session.pop(BULK_KEPT, None) or {"items": []},
                "bulk_cap": MAX_BULK_ITEMS,
                "people": console_people(),
                "items_url": reverse("console:items"),
            },
            status=200 if filters.is_valid() else 400,  # the filters' errors say what to fix
        )


class SavedViewsView(ConsoleAccessMixin, View):
    """Save the list's current filters under a name, or delete a saved view (the person's own only)."""

    def post(self, request):
        if request.POST.get("delete"):
            raw = request.POST["delete"]
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
                return HttpResponseBadRequest("delete must be a saved view's id.", content_type="text/plain")
            if services.saved_view_delete(user=request.user, pk=int(raw)):
                messages.success(request, "Saved view deleted.")
            return HttpResponseRedirect(reverse("console:items"))
        query = request.POST.get("query", "")
        try:
            view = services.saved_view_save(user=request.user, name=request.POST.get("name", ""), query=query)
        except services.InvalidAction as exc:
            messages.error(request, f"The view was not saved: {exc}")
            return HttpResponseRedirect(reverse("console:items") + (f"?{query}" if query else ""))
        messages.success(request, f"Saved the view {view.name!r}.")
        return HttpResponseRedirect(reverse("console:items") + (f"?{view.query}" if view.query else ""))


def _saved_views(user) -> list[dict]:
    """The person's saved views with how many items each matches now: read once a request, for the list and
    the navigation alike (exceptions.filters.saved_view_counts)."""
    return saved_view_counts(user)


class BulkActionView(ConsoleAccessMixin, View):
    def post(self, request):
        form = BulkForm(request.POST)
        if not form.is_valid():
            messages.error(request, " ".join(m for errors in form.errors.values() for m in errors))
            return _back(request, reverse("console:items"))
        data = form.cleaned_data
        ids = data["items"]
        if data["scope"] == "filter":
            ids, errors = filtered_item_ids(QueryDict(data["filter"]))
            if errors:
                messages.error(request, " ".join(f"{key}: {' '.join(m)}" for key, m in errors.items()))
                return _back(request, reverse("console:items"))
        try:
            outcome = exceptions_bulk(
                action=data["action"],
                item_ids=ids,
                by=request.user,
                assignee=data["assignee"],
                resolution=data["resolution"],
                note=data["note"],
            )
        except services.InvalidAction as exc:
            messages.error(request, f"Nothing was changed: {exc}")
            request.session[BULK_KEPT] = {  # the bar as they left it: fix the one thing, not everything
                "action": data["action"],
                "assignee": data["assignee"].pk if data["assignee"] else None,
                "resolution": data["resolution"],
                "note": data["note"],
                "items": [int(pk) for pk in data["items"]] if data["scope"] == "selected" else [],
            }
            return _back(request, reverse("console:items"))
        verb = {
            "acknowledge": "Acknowledged",
            "assign": f"Assigned to {data['assignee'].get_username()}:" if data["assignee"] else "",
            "resolve": "Resolved",
            "reopen": "Reopened",
        }[data["action"]]
        if outcome.done:
            messages.success(request, f"{verb} {len(outcome.done)} item(s).")
        report_skipped(request, outcome)
        return _back(request, reverse("console:items"))


def report_skipped(request, outcome) -> None:
    """The first SKIPPED_SHOWN items a bulk run skipped, each with why, then how many more."""
    for entry in outcome.skipped[:SKIPPED_SHOWN]:
        messages.warning(request, f"Item #{entry['id']} skipped: {entry['reason']}")
    if len(outcome.skipped) > SKIPPED_SHOWN:
        messages.warning(request, f"… and {len(outcome.skipped) - SKIPPED_SHOWN} more item(s) skipped.")


def _assign_form(item) -> AssignForm:
    form = AssignForm(initial={"version": item.version, "assignee": item.assignee_id})
    form.offer_queue_first(item.queue)
    return form


SKIPPED_SHOWN = 10  # a bulk action over hundreds of items lists the first few it skipped, then a count
BULK_KEPT = "bulk_kept"  # session: a refused bulk action's choices, shown again once on the list


class ItemDetailView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        item = get_object_or_404(
            ExceptionItem.objects.select_related(
                "lead",
                "lead__origin",
                "lead__queue",
                "lead__assignee",
                "lead__rule",
                "queue",
                "assignee",
                "acknowledged_by",
                "resolved_by",
                "incident",
            ),
            pk=pk,
        )
        with log_context(lead_pk=item.lead_id, lead_id=item.lead.lead_id, exception_id=item.pk):
            return self._render(request, item)

    def _render(self, request, item):
        trail = lead_trail(item.lead)
        return render(
            request,
            "console/item_detail.html",
            {
                "item": item,
                "lead": item.lead,
                "decisions": lead_decisions(trail),
                "why": lead_explanation(item.lead),
                "trail": trail,
                "timeline": item_timeline(item),
                "playbook": playbook_for(reason=item.reason, queue_id=item.queue_id),
                "now": timezone.now(),
                "account_match": AccountMatch.objects.filter(lead=item.lead).select_related("account__owner").first(),
                "same_person": person_leads(item.lead).select_related("origin", "assignee")[:50],
                "held": list(item.held_leads.select_related("origin", "assignee").order_by("id")[:50]),
                "assign_form": _assign_form(item),
                "resolve_form": ResolveForm(),
                "then": _then_forms(request),
                "undo": _undo_offer(request),
                "waiting_form": WaitingForm(),
                "edit_form": LeadEditForm(
                    initial={
                        "version": item.version,
                        **{name: getattr(item.lead, name) for name in LeadEditForm.LEAD_FIELDS},
                    }
                ),
                "manual_form": ManualAssignForm(initial={"queue": item.lead.queue_id}),
                "neighbours": _neighbours(request, item),
            },
        )


# After an action that finishes the person's part on an item (MOVING_ACTIONS: resolve, mark waiting, assign to
# someone else, a re-route or a hand assignment that resolves it), the queue's next item opens, or the list: each
# of those forms has a "Then" choice, remembered per person in the session. Acknowledge and assign to me stay.
AFTER_ACTION = "after_action"  # session: "next" (default) or "list"
MOVING_ACTIONS = ("resolve", "waiting", "assign", "reroute", "manual_assign")
UNDO = "undo"  # session: what the next page offers to undo for UNDO_SECONDS: {item, until, action, label}
UNDO_ASSIGN = "undo_assign"  # session: whom an assign took the item from: {item, assignee, version, until}
UNDO_SECONDS = 10
UNDO_GRACE_SECONDS = 5  # a click in the button's last second still arrives in time


@dataclass(frozen=True)
class Done:
    """What an action did: its message; whether it finished the person's part (then the next item opens); and
    the action on the same item that reverses it, offered as Undo (reopen, resume, assign_back)."""

    message: str
    finished: bool = False
    undo: str | None = None
    undo_label: str = ""


def _then_forms(request) -> dict[str, ThenForm]:
    """A "Then" choice for each form of the item page that moves on, showing the person's current preference
    (ids apart: one page has five)."""
    chosen = request.session.get(AFTER_ACTION, "next")
    return {name: ThenForm(initial={"then": chosen}, auto_id=f"id_{name}_%s") for name in MOVING_ACTIONS}


def _undo_offer(request) -> dict | None:
    offer = request.session.pop(UNDO, None)
    if offer and offer["until"] > time.time():
        return {
            "item": offer["item"],
            "seconds": max(1, int(offer["until"] - time.time())),
            "action": offer.get("action", "reopen"),
            "label": offer.get("label") or f"reopen item #{offer['item']}",
        }
    return None


def _queue_unresolved(item):
    """The items j/k and "the next item" walk: the queue's unresolved ones as its list shows them, so an
    incident's items (one group on the list, handled on its page) only among themselves."""
    same = ExceptionItem.objects.filter(queue=item.queue_id, status__in=["open", "acknowledged", "waiting"])
    return same.filter(incident=item.incident_id) if item.incident_id else same.filter(incident__isnull=True)


LIST_QUERY = "list_query"  # session: the item list's filters as last shown, so next and j/k walk that list


@dataclass(frozen=True)
class Walk:
    """The items "next" and j/k go through from one item, and their order (the list's sort, then id)."""

    items: object  # a queryset
    field: str  # e.g. "due_at" or "-opened_at"


def _walk(request, item) -> Walk:
    """The list the person came from (its filters and sort) when this item is on it; else the item's queue in
    due order. Read before an action: a resolved item is on no unresolved list afterwards."""
    query = request.session.get(LIST_QUERY)
    if query is not None:
        filters = ExceptionFilter(QueryDict(query), queryset=ExceptionItem.objects.all())
        if filters.is_valid() and filters.qs.filter(pk=item.pk).exists():
            return Walk(filters.qs, SORTS.get(filters.form.cleaned_data.get("sort") or "due", SORTS["due"])[0])
    return Walk(_queue_unresolved(item), "due_at")


def _adjacent(item, walk: Walk, *, later: bool) -> int | None:
    """The item just after (or before) this one in the walk's order, ties broken by id."""
    name = walk.field.lstrip("-")
    value = getattr(item, name)
    if value is None:  # waiting: no due time, no place in a due order
        return None
    ascending = not walk.field.startswith("-")
    forward = ascending == later
    beyond = "gt" if forward else "lt"
    step = Q(**{f"{name}__{beyond}": value}) | Q(**{name: value, f"pk__{beyond}": item.pk})
    order = (name, "id") if forward else (f"-{name}", "-id")
    return walk.items.filter(step).order_by(*order).values_list("pk", flat=True).first()


def _neighbours(request, item):
    """Previous and next item of the list the person came from (or of the queue), for j/k on the detail page."""
    walk = _walk(request, item)
    return {"previous": _adjacent(item, walk, later=False), "next": _adjacent(item, walk, later=True)}


def _move_on(request, item, walk: Walk):
    """The list, or the next item after this one in the walk's order, else its first but this one: acknowledging
    moves an item's due time on to its resolve time, and resolving it then must not skip the items due sooner.
    `item` and `walk` are as they were before the action."""
    if request.session.get(AFTER_ACTION, "next") == "next":
        following = _adjacent(item, walk, later=True)
        if following is None:
            name = walk.field.lstrip("-")
            first = walk.items.filter(**{f"{name}__isnull": False}).exclude(pk=item.pk).order_by(walk.field, "id")
            following = first.values_list("pk", flat=True).first()
        if following:
            return HttpResponseRedirect(reverse("console:item", args=[following]))
    return HttpResponseRedirect(reverse("console:items"))


class ItemActionView(ConsoleAccessMixin, View):
    """POST /console/items/<pk>/<action>/: one form per action; the outcome comes back as a message."""

    def post(self, request, pk, action):
        item = get_object_or_404(ExceptionItem.objects.select_related("lead", "queue", "assignee"), pk=pk)
        with log_context(lead_pk=item.lead_id, lead_id=item.lead.lead_id, exception_id=item.pk):
            return self._act(request, item, action)

    def _act(self, request, item, action):
        pk = item.pk
        handler = getattr(self, f"do_{action}", None)
        if handler is None:
            messages.error(request, f"Unknown action {action!r}.")
        else:
            walk = _walk(request, item)  # before the action: the item is on its list now
            try:
                if action in MOVING_ACTIONS:
                    _remember_then(request)
                done = handler(request, item)
            except MalformedInput as malformed:
                return HttpResponseBadRequest(str(malformed), content_type="text/plain; charset=utf-8")
            except services.ExceptionConflict as conflict:
                messages.error(request, conflict.message)
            except triage.InvalidLeadData as invalid:
                messages.error(request, f"The lead was not changed: {invalid}")
            except services.InvalidAction as invalid:
                messages.error(request, str(invalid))
            else:
                messages.success(request, done.message)  # the action's log line is the service's
                if done.undo:
                    request.session[UNDO] = {
                        "item": pk,
                        "until": time.time() + UNDO_SECONDS,
                        "action": done.undo,
                        "label": done.undo_label,
                    }
                if done.finished:  # triage in a row: the next item, or the list, as the person chose
                    return _move_on(request, item, walk)
        return _back(request, reverse("console:item", args=[pk]))

    def do_acknowledge(self, request, item):
        services.exception_acknowledge(item=item, by=request.user)
        return Done(f"Acknowledged item #{item.pk}.")

    def do_assign_to_me(self, request, item):
        services.exception_assign(item=item, to=request.user, by=request.user, expected_version=_version(request))
        return Done(f"Item #{item.pk} is yours.")

    def do_assign(self, request, item):
        form = AssignForm(request.POST)
        if not form.is_valid():
            raise services.InvalidAction(_form_errors(form))
        to = form.cleaned_data["assignee"]
        before = item.assignee
        assigned = services.exception_assign(
            item=item, to=to, by=request.user, expected_version=form.cleaned_data["version"]
        )
        message = f"Item #{item.pk} assigned to {to.get_username()}." if to else f"Item #{item.pk} is unassigned."
        if to == request.user:
            return Done(message)  # it is the person's now: they stay on it
        # Someone else's (or nobody's) now: the person's part is done, and Undo gives it back.
        request.session[UNDO_ASSIGN] = {
            "item": item.pk,
            "assignee": before.pk if before else None,
            "version": assigned.version,
            "until": time.time() + UNDO_SECONDS,
        }
        back = f"give item #{item.pk} back to {before.get_username()}" if before else f"unassign item #{item.pk} again"
        return Done(message, finished=True, undo="assign_back", undo_label=back)

    def do_assign_back(self, request, item):
        """Undo of an assign: the item goes back to whom this person's assign took it from, within UNDO_SECONDS
        and only if nobody changed it since. What to restore is read from the session, never from the form."""
        record = request.session.get(UNDO_ASSIGN)
        if not record or record["item"] != item.pk or record["until"] + UNDO_GRACE_SECONDS < time.time():
            raise services.InvalidAction(
                f"Nothing to undo on item #{item.pk}: an assignment can be undone for {UNDO_SECONDS} seconds."
            )
        del request.session[UNDO_ASSIGN]
        previous = get_user_model().objects.filter(pk=record["assignee"]).first() if record["assignee"] else None
        services.exception_assign(item=item, to=previous, by=request.user, expected_version=record["version"])
        if previous is None:
            return Done(f"Undone: item #{item.pk} is unassigned again.")
        return Done(f"Undone: item #{item.pk} is back with {previous.get_username()}.")

    def do_resolve(self, request, item):
        form = ResolveForm(request.POST)
        if not form.is_valid():
            raise services.InvalidAction(_form_errors(form))
        data = form.cleaned_data
        resolved = services.exception_resolve(
            item=item, by=request.user, resolution=data["resolution"], note=data["note"]
        )
        message = f"Resolved item #{item.pk} as {resolved.get_resolution_display()}."
        return Done(message, finished=True, undo="reopen", undo_label=f"reopen item #{item.pk}")

    def do_reopen(self, request, item):
        services.exception_reopen(item=item, by=request.user)
        return Done(f"Reopened item #{item.pk}; its clocks start again.")

    def do_waiting(self, request, item):
        form = WaitingForm(request.POST)
        if not form.is_valid():
            raise services.InvalidAction(_form_errors(form))
        services.exception_mark_waiting(item=item, by=request.user, note=form.cleaned_data["note"])
        message = f"Item #{item.pk} is waiting; its resolve clock is paused."
        return Done(message, finished=True, undo="resume", undo_label=f"resume item #{item.pk} (no longer waiting)")

    def do_resume(self, request, item):
        services.exception_resume(item=item, by=request.user)
        return Done(f"Item #{item.pk} resumed; its resolve clock runs again.")

    def do_reroute(self, request, item):
        form = LeadEditForm(request.POST)
        if not form.is_valid():
            raise services.InvalidAction(_form_errors(form))
        lead, after = triage.lead_edit_and_reroute(
            item=item, by=request.user, changes=form.changes(item.lead), expected_version=form.cleaned_data["version"]
        )
        # A re-route that resolves the item moves on; no Undo: the lead was routed (and delivered) again.
        if lead.status == "assigned":
            message = f"Re-routed: assigned to {lead.assignee or 'nobody'} in {lead.queue}. Item #{item.pk} resolved."
            return Done(message, finished=True)
        if after.status == "resolved":
            other = lead.exceptions.filter(status="open").first()
            return Done(f"Data fixed; the lead now needs other attention ({other}).", finished=True)
        return Done(
            f"Re-routed, but the lead is still in exception: {after.get_reason_display()}. The item stays open."
        )

    def do_manual_assign(self, request, item):
        form = ManualAssignForm(request.POST)
        if not form.is_valid():
            raise services.InvalidAction(_form_errors(form))
        lead, _ = triage.lead_assign_manually(lead=item.lead, item=item, by=request.user, **form.cleaned_data)
        # It resolves the item: move on. No Undo: the override is recorded and the lead handed over.
        return Done(f"Assigned by hand to {lead.assignee or lead.queue}; the override is recorded.", finished=True)


def _remember_then(request) -> None:
    """The form's "Then" choice becomes the person's preference (a form without one leaves it as it was)."""
    then = ThenForm(request.POST)
    if not then.is_valid():
        raise services.InvalidAction(_form_errors(then))
    if then.cleaned_data["then"]:
        request.session[AFTER_ACTION] = then.cleaned_data["then"]


class NotificationsView(ConsoleAccessMixin, View):
    def get(self, request):
        filters = NotificationFilterForm(request.GET)
        notes = notifications_for(request.user).select_related("item", "queue", "recipient", "incident")
        if filters.is_valid():
            notes = filters.apply(notes)
        grouped = not (filters.is_valid() and filters.cleaned_data["incident"])
        if grouped:
            notes = latest_per_incident(notes, request.user)  # an incident's stream is one row: its latest
        page = Paginator(notes.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
        streams = incident_stream_sizes(request.user, [n.incident_id for n in page if n.incident_id])
        for note in page:
            note.stream_size = streams.get(note.incident_id, 0)
        context = {"filters": filters, "page": page, "query": _query_without_page(request), "grouped": grouped}
        if not page.object_list:  # say whose notifications these are: an admin in no queue gets none
            context["queues"] = list(request.user.queue_memberships.values_list("queue__name", flat=True))
        return render(request, "console/notifications.html", context, status=200 if filters.is_valid() else 400)

    def post(self, request):
        notifications_for(request.user).filter(read_at__isnull=True).update(read_at=timezone.now())
        messages.success(request, "All notifications marked read.")
        return HttpResponseRedirect(reverse("console:notifications"))


def _version(request) -> int | None:
    """The item version the person saw; none sent: no check. Anything else is refused, not guessed at."""
    raw = request.POST.get("version", "")
    if raw == "":
        return None
    # isascii: str.isdigit() also accepts "²", which int() refuses (a 500 before); 9 digits fit an integer.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise MalformedInput("version must be the item's version number (digits 0-9), as the page sent it.")
    return int(raw)


class MalformedInput(ValueError):
    """A value no page of ours sends (a hand-made request): 400, with what is wrong."""


def _form_errors(form) -> str:
    return " ".join(
        f"{form.fields[name].label or name.replace('_', ' ').capitalize() if name in form.fields else ''}: "
        f"{' '.join(errors)}".lstrip(": ")
        for name, errors in form.errors.items()
    )


def _query_without_page(request) -> str:
    """The page's filters as a query string, for its page links and saved views (they add their own page)."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _back(request, default: str):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(default)
