"""Rejected posts (inbound dead letters) in the console: find them by source, reason and state; fix one and
replay it as its source would have sent it, or dismiss it saying why."""

import datetime as dt

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Sum
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from audit.models import AuditAction, AuditEvent
from exceptions.permissions import ConsoleAccessMixin
from routing.capture.models import RejectedPost, RejectedPostStatus, RejectionDay, RejectionReason
from routing.capture.rejections import ReplayRefused, rejected_post_dismiss, rejected_post_replay
from routing.models import Source

# Reasons a person can fix by editing the payload shown (a body too large was never read).
REPLAYABLE = {r for r in RejectionReason.values if r != RejectionReason.TOO_LARGE}


class RejectedFilter(forms.Form):
    source = forms.ModelChoiceField(queryset=Source.objects.order_by("name"), required=False)
    reason = forms.ChoiceField(choices=[("", "Any"), *RejectionReason.choices], required=False)
    status = forms.ChoiceField(choices=[("", "Any"), *RejectedPostStatus.choices], required=False, initial="open")

    def posts(self):
        data = self.cleaned_data
        posts = RejectedPost.objects.select_related("source", "source__owner", "replayed_lead")
        if data.get("source"):
            posts = posts.filter(source=data["source"])
        if data.get("reason"):
            posts = posts.filter(reason=data["reason"])
        if data.get("status"):
            posts = posts.filter(status=data["status"])
        return posts.order_by("-received_at", "-id")


def may_settle(user, post: RejectedPost) -> bool:
    """Ops staff, admins and the source's owner fix or dismiss its rejected posts."""
    return user.is_superuser or post.source.owner_id == user.pk or user.groups.filter(name="ops").exists()


def _last_day_counts() -> list[dict]:
    since = (timezone.now() - dt.timedelta(days=1)).date()
    rows = (
        RejectionDay.objects.filter(day__gte=since)
        .values("source__name", "reason")
        .annotate(n=Sum("count"))
        .order_by("source__name", "-n")
    )
    return list(rows)


class RejectedListView(ConsoleAccessMixin, View):
    def get(self, request):
        query = request.GET.copy()
        if "status" not in query:
            query["status"] = RejectedPostStatus.OPEN
        filters = RejectedFilter(query)
        posts = filters.posts() if filters.is_valid() else RejectedPost.objects.none()
        page = Paginator(posts, 50).get_page(request.GET.get("page"))
        query.pop("page", None)
        return render(
            request,
            "console/capture/rejected_list.html",
            {
                "filters": filters,
                "page": page,
                "total": page.paginator.count,
                "recent": _last_day_counts(),
                "query": query.urlencode(),
            },
            status=200 if filters.is_valid() else 400,
        )


def _dismissal_note(post: RejectedPost) -> str:
    """Why it was set aside, as its dismissal's audit event keeps it."""
    if post.status != RejectedPostStatus.DISMISSED:
        return ""
    event = AuditEvent.objects.filter(action=AuditAction.INTAKE_DISMISSED, data__rejected_post=post.pk).first()
    return (event.data.get("note") or "") if event else ""


class RejectedDetailView(ConsoleAccessMixin, View):
    def _render(self, request, post, *, payload: str, errors: dict | None = None, status: int = 200):
        return render(
            request,
            "console/capture/rejected_detail.html",
            {
                "post": post,
                "payload": payload,
                "errors": errors or {},
                "replayable": post.reason in REPLAYABLE and post.status == RejectedPostStatus.OPEN,
                "may_settle": may_settle(request.user, post),
                "dismissal_note": _dismissal_note(post),
            },
            status=status,
        )

    def get(self, request, pk: int):
        post = get_object_or_404(RejectedPost.objects.select_related("source", "settled_by", "replayed_lead"), pk=pk)
        return self._render(request, post, payload="" if post.truncated else post.excerpt)

    def post(self, request, pk: int):
        post = get_object_or_404(RejectedPost.objects.select_related("source", "settled_by", "replayed_lead"), pk=pk)
        if not may_settle(request.user, post):
            raise PermissionDenied("Only ops staff, admins and the source's owner fix or dismiss rejected posts.")
        here = reverse("console:rejected-post", args=[pk])
        try:
            if request.POST.get("action") == "dismiss":
                rejected_post_dismiss(post_id=pk, by=request.user, note=request.POST.get("note", ""))
                messages.success(request, "Dismissed; the audit trail keeps your note.")
                return HttpResponseRedirect(here)
            payload = request.POST.get("payload", "")
            _, lead_id, new = rejected_post_replay(post_id=pk, payload_text=payload, by=request.user)
        except ReplayRefused as refused:
            post.refresh_from_db()
            if post.status == RejectedPostStatus.OPEN:
                messages.error(request, "Nothing was replayed: fix what is marked below.")
            else:
                messages.error(request, f"Nothing was done: {refused}")
            return self._render(
                request, post, payload=request.POST.get("payload", ""), errors=refused.errors, status=400
            )
        if new:
            messages.success(request, f"Replayed: lead #{lead_id} is stored and queued for routing.")
        else:
            messages.success(request, f"Its source had sent lead #{lead_id} again meanwhile; marked replayed.")
        return HttpResponseRedirect(here)
