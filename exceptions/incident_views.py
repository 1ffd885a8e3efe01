"""Incident screens: the list of incidents, one incident with its items and history, and its actions."""

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from exceptions import services
from exceptions.bulk import BulkOutcome
from exceptions.forms import IncidentAssignForm, IncidentResolveForm, PostmortemForm
from exceptions.incident_actions import IncidentConflict, incident_acknowledge, incident_assign, incident_resolve
from exceptions.models import ExceptionIncident, ExceptionStatus
from exceptions.permissions import ConsoleAccessMixin
from exceptions.postmortems import PostmortemRefused, incident_postmortem_write
from exceptions.selectors import exception_list_queryset, incident_history, incident_list
from exceptions.views import PAGE_SIZE, report_skipped

RESOLVED_SHOWN = 20


class IncidentListView(ConsoleAccessMixin, View):
    def get(self, request):
        incidents = incident_list()
        return render(
            request,
            "console/incident_list.html",
            {
                "unresolved": incidents.exclude(status=ExceptionStatus.RESOLVED).order_by("opened_at", "id"),
                "resolved": incidents.filter(status=ExceptionStatus.RESOLVED).order_by("-resolved_at", "-id")[
                    :RESOLVED_SHOWN
                ],
                # Resolved, large enough to need one, none written yet: chased here until written.
                "postmortems_due": incidents.filter(
                    postmortem_required=True, postmortem_written_at__isnull=True
                ).order_by("postmortem_due_at", "id")[:RESOLVED_SHOWN],
                "now": timezone.now(),
            },
        )


class IncidentDetailView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        return incident_page(request, pk)


def incident_page(
    request,
    pk,
    *,
    resolve_form: IncidentResolveForm | None = None,
    postmortem_form: PostmortemForm | None = None,
    status: int = 200,
):
    """The incident page; with the person's refused resolve or postmortem form (what they wrote kept) and a 400."""
    incident = get_object_or_404(incident_list().select_related("postmortem_written_by"), pk=pk)
    items = exception_list_queryset().filter(incident=incident).order_by("status", "due_at", "id")
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    assign_form = IncidentAssignForm(initial={"assignee": incident.assignee_id, "version": incident.version})
    assign_form.offer_queue_first(incident.queue)
    return render(
        request,
        "console/incident_detail.html",
        {
            "incident": incident,
            "page": page,
            "history": incident_history(incident),
            "assign_form": assign_form,
            "resolve_form": resolve_form or IncidentResolveForm(initial={"shown": incident.unresolved_count}),
            "postmortem_form": postmortem_form or PostmortemForm(initial={"postmortem": incident.postmortem}),
            "postmortem_threshold": settings.HANDOFF["POSTMORTEM_THRESHOLD"],
            "now": timezone.now(),
            "items_url": reverse("console:items"),
            "other_unresolved": ExceptionIncident.objects.exclude(status=ExceptionStatus.RESOLVED)
            .filter(~Q(pk=incident.pk))
            .count(),
        },
        status=status,
    )


class IncidentActionView(ConsoleAccessMixin, View):
    """POST /console/incidents/<pk>/<action>/: acknowledge, assign or resolve the incident and its items; or
    write its postmortem once resolved."""

    def post(self, request, pk, action):
        incident = get_object_or_404(ExceptionIncident.objects.select_related("queue", "assignee"), pk=pk)
        handler = getattr(self, f"do_{action}", None)
        back = HttpResponseRedirect(reverse("console:incident", args=[pk]))
        if action == "postmortem":
            return self.postmortem(request, incident, back)
        if handler is None:
            messages.error(request, f"Unknown action {action!r}: acknowledge, assign, resolve or postmortem.")
            return back
        try:
            summary, outcome = handler(request, incident)
        except IncidentConflict as conflict:
            messages.error(request, conflict.message)
        except services.InvalidAction as invalid:
            messages.error(request, f"Nothing was changed: {invalid}")
            if action == "resolve":  # the page again, with what they chose and wrote
                return incident_page(request, pk, resolve_form=IncidentResolveForm(request.POST), status=400)
        else:
            messages.success(request, summary)
            report_skipped(request, outcome)  # the action's log line is the service's (incident_actions)
        return back

    def do_acknowledge(self, request, incident) -> tuple[str, BulkOutcome]:
        _, outcome = incident_acknowledge(incident=incident, by=request.user)
        return f"Acknowledged incident #{incident.pk} and {len(outcome.done)} open item(s) of it; it is yours.", outcome

    def do_assign(self, request, incident) -> tuple[str, BulkOutcome]:
        form = IncidentAssignForm(request.POST)
        if not form.is_valid():
            raise services.InvalidAction(" ".join(m for errors in form.errors.values() for m in errors))
        to = form.cleaned_data["assignee"]
        _, outcome = incident_assign(
            incident=incident, to=to, by=request.user, expected_version=form.cleaned_data["version"]
        )
        return f"Incident #{incident.pk} and {len(outcome.done)} item(s) assigned to {to.get_username()}.", outcome

    def do_resolve(self, request, incident) -> tuple[str, BulkOutcome]:
        form = IncidentResolveForm(request.POST)
        if not form.is_valid():
            raise services.InvalidAction(" ".join(m for errors in form.errors.values() for m in errors))
        data = form.cleaned_data
        resolved, outcome = incident_resolve(
            incident=incident, by=request.user, resolution=data["resolution"], note=data["note"]
        )
        summary = (
            f"Resolved incident #{incident.pk} as {resolved.get_resolution_display()}, "
            f"and {len(outcome.done)} item(s) with it."
        )
        joined = len(outcome.done) - data["shown"] if data["shown"] is not None else 0
        if joined > 0:  # the outage went on while the page was open: say so, the note went on those too
            summary += f" {joined} of them joined the incident after you opened its page."
        return summary, outcome

    def postmortem(self, request, incident, back):
        form = PostmortemForm(request.POST)
        try:
            if not form.is_valid():
                raise PostmortemRefused(" ".join(m for errors in form.errors.values() for m in errors))
            incident_postmortem_write(incident=incident, text=form.cleaned_data["postmortem"], by=request.user)
        except PostmortemRefused as refused:
            messages.error(request, f"The postmortem was not saved: {refused}")
            return incident_page(request, incident.pk, postmortem_form=form, status=400)
        messages.success(request, f"Postmortem of incident #{incident.pk} saved.")
        return back
