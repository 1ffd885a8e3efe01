"""Playbook screens: every reason's playbook with its queue overrides, and one playbook's editor and versions.
Console users read them; admins (superusers) edit them."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from exceptions.models import PLAYBOOK_MAX_CHARS, ExceptionReason
from exceptions.permissions import ConsoleAccessMixin
from exceptions.playbooks import PlaybookConflict, PlaybookRefused, playbook_history, playbook_save, playbooks_overview
from routing.models import Queue


class PlaybookForm(forms.Form):
    body = forms.CharField(
        required=False,
        max_length=PLAYBOOK_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 14}),
        help_text="The first steps, in plain text (one per line). Empty withdraws it.",
    )
    # The version the editor saw ("" when there was none): a newer one saved meanwhile is refused.
    version = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


def _may_edit(user) -> bool:
    return user.is_superuser


class PlaybookListView(ConsoleAccessMixin, View):
    def get(self, request):
        return render(
            request,
            "console/playbook_list.html",
            {
                "reasons": playbooks_overview(),
                "queues": Queue.objects.order_by("name").only("pk", "name"),
                "may_edit": _may_edit(request.user),
            },
        )


class PlaybookEditView(ConsoleAccessMixin, View):
    """GET/POST /console/playbooks/<reason>/[?queue=<pk>]: the reason's playbook, or one queue's override."""

    def _target(self, request, reason):
        if reason not in ExceptionReason.values:
            raise Http404(f"No exception reason {reason!r}.")
        raw = request.POST.get("queue") or request.GET.get("queue")
        if not raw:
            return None
        queue = Queue.objects.filter(pk=raw).first() if raw.isdigit() else None
        if queue is None:
            raise Http404(f"No queue {raw!r}.")
        return queue

    def get(self, request, reason):
        queue = self._target(request, reason)
        history = playbook_history(reason=reason, queue_id=queue.pk if queue else None)
        current = history[0] if history else None
        form = PlaybookForm(initial={"body": current.body if current else "", "version": current and current.version})
        return self._render(request, reason, queue, history, form)

    def post(self, request, reason):
        queue = self._target(request, reason)
        if not _may_edit(request.user):
            raise PermissionDenied("Only admins edit playbooks; ask one, or read the current version here.")
        form = PlaybookForm(request.POST)
        try:
            if not form.is_valid():
                raise PlaybookRefused(" ".join(m for errors in form.errors.values() for m in errors))
            saved = playbook_save(
                reason=reason,
                queue=queue,
                body=form.cleaned_data["body"],
                by=request.user,
                expected_version=form.cleaned_data["version"],
            )
        except PlaybookRefused as refused:
            messages.error(request, f"The playbook was not saved: {refused}")
            history = playbook_history(reason=reason, queue_id=queue.pk if queue else None)
            return self._render(
                request, reason, queue, history, form, status=409 if isinstance(refused, PlaybookConflict) else 400
            )
        messages.success(request, f"Saved version {saved.version}.")
        back = reverse("console:playbook", args=[reason])
        return HttpResponseRedirect(f"{back}?queue={queue.pk}" if queue else back)

    def _render(self, request, reason, queue, history, form, status=200):
        return render(
            request,
            "console/playbook_edit.html",
            {
                "reason": reason,
                "label": ExceptionReason(reason).label,
                "queue": queue,
                "history": history,
                "current": history[0] if history else None,
                "form": form,
                "may_edit": _may_edit(request.user),
            },
            status=status,
        )
