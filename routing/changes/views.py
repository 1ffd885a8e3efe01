"""Console screens for configuration changes: the change history of targets, providers, sources and queues
(with their memberships), field by field; restoring an earlier version (admins); a queue's routing settings,
and the changes staged on governed queues with their evidence. Thin: routing/changes/history.py and
routing/changes/queues.py decide and write; a refused action comes back as a message saying why."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from routing.changes.history import (
    KIND_MODELS,
    RESTORABLE_KINDS,
    ChangeKind,
    RestoreError,
    change_list,
    config_restore,
    may_restore,
)
from routing.changes.queues import (
    ROUTING_FIELDS,
    STAGED,
    QueueChangeError,
    may_change_queues,
    queue_change_confirm,
    queue_change_discard,
    queue_change_propose,
    queue_proposal_current,
    queue_restore,
    settings_of,
    staged_changes,
    staged_get,
)
from routing.models import Queue


class ChangeFilter(forms.Form):
    kind = forms.ChoiceField(choices=[("", "All kinds"), *ChangeKind.choices], required=False)


class ChangeListView(ConsoleAccessMixin, View):
    """/console/changes/: the newest changes across kinds, or of one kind."""

    def get(self, request):
        filters = ChangeFilter(request.GET)
        kind = filters.cleaned_data["kind"] if filters.is_valid() else ""
        return render(
            request,
            "console/changes/list.html",
            {"filters": filters, "changes": change_list(kind=kind or None), "staged": staged_changes()},
            status=200 if filters.is_valid() else 400,
        )


def _live_object(kind: str, pk: int):
    if kind not in RESTORABLE_KINDS:
        raise Http404("No such kind of configuration.")
    live = KIND_MODELS[kind].objects.filter(pk=pk).first()
    label = str(live) if live is not None else None
    if live is None:
        record = KIND_MODELS[kind].history.filter(id=pk).order_by("-history_id").first()
        if record is None:
            raise Http404("No such object, now or in its history.")
        label = f"{record.name} (deleted)"
    return live, label


class ObjectHistoryView(ConsoleAccessMixin, View):
    """/console/changes/<kind>/<pk>/: one object's versions, newest first; a queue's include its memberships'.
    Every version but the newest can be restored by an admin."""

    def get(self, request, kind, pk):
        live, label = _live_object(kind, pk)
        if kind == ChangeKind.QUEUE:
            changes = change_list(queue_id=pk)
        else:
            changes = change_list(kind=kind, object_id=pk)
        return render(
            request,
            "console/changes/object.html",
            {
                "kind": kind,
                "kind_label": ChangeKind(kind).label,
                "object": live,
                "label": label,
                "changes": changes,
                "may_restore": may_restore(request.user) and live is not None,
                "newest": changes[0].key if changes else None,
                "staged": staged_changes(queue=live) if kind == ChangeKind.QUEUE and live is not None else [],
            },
        )


class RestoreView(ConsoleAccessMixin, View):
    """POST: restore an object to a version (admins; the form's confirmation box must be ticked)."""

    def post(self, request, kind, pk, history_kind, history_id):
        live, _label = _live_object(kind, pk)
        back = reverse("console:object-changes", args=[kind, pk])
        if not may_restore(request.user):
            raise PermissionDenied("Only admins restore an earlier configuration.")
        if request.POST.get("confirm") != "yes":
            messages.error(request, "Nothing restored: tick the box confirming the restore.")
            return HttpResponseRedirect(back)
        if live is None:
            messages.error(request, "Nothing restored: the object has been deleted.")
            return HttpResponseRedirect(back)
        try:
            if kind == ChangeKind.QUEUE:
                result = queue_restore(queue=live, kind=history_kind, history_id=history_id, by=request.user)
                if not result.applied:
                    messages.warning(
                        request,
                        f"The restore of {live} is staged: check who it adds and removes, and its evidence, then "
                        "apply it.",
                    )
                    return HttpResponseRedirect(reverse("console:staged-change", args=[result.staged.pk]))
            else:
                if history_kind != kind:
                    raise RestoreError(f"Restore a {ChangeKind(kind).label.lower()} from one of its own versions.")
                config_restore(kind=kind, history_id=history_id, by=request.user)
        except (RestoreError, QueueChangeError) as exc:
            messages.error(request, f"Nothing restored: {exc}")
            return HttpResponseRedirect(back)
        messages.success(request, f"Restored {live} to version #{history_id}; secrets were left as they are.")
        return HttpResponseRedirect(back)


MAX_WEIGHT = 1000  # shares of weighted round robin: a thousand to one is already more than anyone means


class QueueSettingsForm(forms.ModelForm):
    """A queue's routing settings and members (one row per member; add one person at a time)."""

    add_member = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        to_field_name="username",
        label="Add member",
    )
    add_weight = forms.IntegerField(min_value=1, max_value=MAX_WEIGHT, initial=1, required=False, label="Their weight")

    class Meta:
        model = Queue
        fields = list(ROUTING_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["overflow_queue"].queryset = Queue.objects.exclude(pk=self.instance.pk).order_by("name")
        self.member_rows = []
        for membership in self.instance.memberships.select_related("user").order_by("user__username"):
            uid = membership.user_id
            self.fields[f"weight_{uid}"] = forms.IntegerField(
                min_value=1, max_value=MAX_WEIGHT, initial=membership.weight, label="Weight"
            )
            self.fields[f"available_{uid}"] = forms.BooleanField(
                required=False, initial=membership.is_available, label="Available"
            )
            self.fields[f"remove_{uid}"] = forms.BooleanField(required=False, label="Remove")
            self.member_rows.append(
                (membership.user, self[f"weight_{uid}"], self[f"available_{uid}"], self[f"remove_{uid}"])
            )

    def proposal(self) -> dict:
        """The queue as it would be: its current settings with the form's values over them."""
        data = self.cleaned_data
        proposal = queue_proposal_current(Queue.objects.get(pk=self.instance.pk))
        edited = Queue(**{name: data[name] for name in ROUTING_FIELDS})
        proposal["fields"].update(
            {k: v for k, v in settings_of(edited).items() if k.removesuffix("_id") in ROUTING_FIELDS}
        )
        members = {}
        for uid_text in proposal["members"]:
            uid = int(uid_text)
            if not data.get(f"remove_{uid}"):
                members[uid_text] = {"weight": data[f"weight_{uid}"], "is_available": data[f"available_{uid}"]}
        if data.get("add_member") is not None:
            members[str(data["add_member"].pk)] = {"weight": data.get("add_weight") or 1, "is_available": True}
        proposal["members"] = members
        return proposal


def _may_change(user) -> None:
    if not may_change_queues(user):
        raise PermissionDenied("Only ops staff and admins change a queue's routing settings.")


class QueueSettingsView(ConsoleAccessMixin, View):
    """/console/queues/<pk>/settings/: edit routing settings; on a governed queue the change is staged."""

    def get(self, request, pk):
        queue = get_object_or_404(Queue, pk=pk)
        _may_change(request.user)
        return self._page(request, queue, QueueSettingsForm(instance=queue))

    def post(self, request, pk):
        queue = get_object_or_404(Queue, pk=pk)
        _may_change(request.user)
        # The form edits an unsaved copy: the service writes, or stages, the change.
        form = QueueSettingsForm(request.POST, instance=Queue.objects.get(pk=pk))
        if not form.is_valid():
            return self._page(request, queue, form, status=400)
        try:
            result = queue_change_propose(queue=queue, proposal=form.proposal(), by=request.user)
        except QueueChangeError as exc:
            messages.error(request, f"Not changed: {exc}")
            return self._page(request, queue, form, status=400)
        if not result.applied:
            messages.warning(request, f"{queue} is governed: the change is staged; check its evidence and apply it.")
            return HttpResponseRedirect(reverse("console:staged-change", args=[result.staged.pk]))
        messages.success(request, f"Saved {queue}'s routing settings.")
        return HttpResponseRedirect(reverse("console:object-changes", args=[ChangeKind.QUEUE, queue.pk]))

    def _page(self, request, queue, form, status=200):
        return render(request, "console/changes/queue_settings.html", {"queue": queue, "form": form}, status=status)


class StagedChangeView(ConsoleAccessMixin, View):
    """/console/changes/staged/<id>/: a staged queue change with its evidence; the person who staged it, or an
    admin, applies or discards it."""

    def get(self, request, event_id):
        try:
            event, state = staged_get(event_id=event_id)
        except QueueChangeError as exc:
            raise Http404(str(exc)) from None
        may_settle = request.user.is_superuser or event.actor_id == request.user.pk
        return render(
            request,
            "console/changes/staged.html",
            {"event": event, "state": state, "data": event.data, "may_settle": may_settle and state == STAGED},
        )

    def post(self, request, event_id):
        back = reverse("console:staged-change", args=[event_id])
        try:
            if request.POST.get("action") == "discard":
                queue_change_discard(event_id=event_id, by=request.user)
                messages.success(request, "Discarded the staged change; the queue is as it was.")
                return HttpResponseRedirect(back)
            if request.POST.get("confirm") != "yes":
                messages.error(request, "Not applied: tick the box confirming you have read the evidence.")
                return HttpResponseRedirect(back)
            queue = queue_change_confirm(event_id=event_id, by=request.user)
        except QueueChangeError as exc:
            messages.error(request, f"Not applied: {exc}")
            return HttpResponseRedirect(back)
        messages.success(request, f"Applied the staged change to {queue}.")
        return HttpResponseRedirect(reverse("console:object-changes", args=[ChangeKind.QUEUE, queue.pk]))
