"""The dead-letter screen: filter by target, error and age; replay one, a selection or every match."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from routing.integrations.deadletter import MAX_DEAD_AGE_HOURS, dead_letters, dead_letters_replay, replay_outcomes
from routing.integrations.models import DeliveryTarget, OutboxEvent


class DeadLetterFilter(forms.Form):
    target = forms.ModelChoiceField(queryset=DeliveryTarget.objects.order_by("name"), required=False)
    error = forms.CharField(required=False, max_length=200, label="Error contains")
    older_than_hours = forms.FloatField(
        required=False, min_value=0, max_value=MAX_DEAD_AGE_HOURS, label="Dead for at least (hours)"
    )

    def events(self):
        data = self.cleaned_data
        return dead_letters(
            target_id=data["target"].pk if data.get("target") else None,
            error=data.get("error") or "",
            older_than_hours=data.get("older_than_hours"),
        )


class DeadLetterView(ConsoleAccessMixin, View):
    def get(self, request):
        filters = DeadLetterFilter(request.GET)
        events = filters.events() if filters.is_valid() else OutboxEvent.objects.none()
        page = Paginator(events, 50).get_page(request.GET.get("page"))
        replayed = (
            OutboxEvent.objects.filter(replays__gt=0)
            .select_related("target", "lead")
            .prefetch_related(Prefetch("receipts", to_attr="receipt_list"))
            .order_by("-id")[:20]
        )
        query = request.GET.copy()
        query.pop("page", None)
        return render(
            request,
            "console/dead_letters.html",
            {
                "filters": filters,
                "page": page,
                "total": page.paginator.count,
                "replayed": replayed,
                "outcomes": replay_outcomes(),
                "query": query.urlencode(),
            },
            status=200 if filters.is_valid() else 400,  # the filter's errors say what to fix
        )

    def post(self, request):
        if not (request.user.is_superuser or request.user.groups.filter(name="ops").exists()):
            raise PermissionDenied("Only ops staff and admins replay dead letters.")
        if request.POST.get("scope") == "matching":
            filters = DeadLetterFilter(request.POST)
            if not filters.is_valid():
                messages.error(request, "The filter is not valid; nothing was replayed.")
                return HttpResponseRedirect(reverse("console:dead-letters"))
            ids = list(filters.events().values_list("id", flat=True))
        else:
            ids = [int(value) for value in request.POST.getlist("events") if value.isascii() and value.isdigit()]
        if not ids:
            messages.error(request, "Nothing selected: tick dead letters, or replay everything matching the filter.")
            return HttpResponseRedirect(reverse("console:dead-letters"))
        replayed = dead_letters_replay(event_ids=ids, by=request.user)
        skipped = len(ids) - len(replayed)
        note = f" {skipped} were no longer dead-lettered (replayed by someone else)." if skipped else ""
        messages.success(request, f"Replaying {len(replayed)} event(s); their outcome shows below.{note}")
        return HttpResponseRedirect(reverse("console:dead-letters") + "#replayed")
