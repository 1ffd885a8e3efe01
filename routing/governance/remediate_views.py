"""A rule version's page, with the leads it decided that the live rules now route elsewhere, and the bulk
re-route of them (confirm step first). Thin: routing/governance/remediate.py selects and acts."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from routing.governance.diffs import contract_diff
from routing.governance.explain import condition_text
from routing.governance.models import PromotionKind, RulePromotion, RuleVersion
from routing.governance.remediate import LeadState, leads_reroute, misrouted_leads, require_remediator
from routing.governance.services import can_govern

PAGE_SIZE = 100
# The page checks the version's newest leads only, so it answers in about a second; reroute_leads does all.
PAGE_CHECKS = 5_000
LEFT_ALONE_SHOWN = 20


def _version(pk: int, number: int) -> RuleVersion:
    return get_object_or_404(
        RuleVersion.objects.select_related("rule__owner", "rule__production_version", "queue", "created_by"),
        rule_id=pk,
        number=number,
    )


def _readable(condition) -> str:
    try:
        return condition_text(condition)
    except (KeyError, TypeError):
        return "(the condition cannot be read)"


def _version_url(version: RuleVersion) -> str:
    return reverse("console:rule-version", args=[version.rule_id, version.number])


def _diffs(version: RuleVersion) -> dict:
    """The version against the one before it, and against production when another version is live."""
    previous = RuleVersion.objects.filter(rule_id=version.rule_id, number__lt=version.number).order_by("-number")
    previous = previous.select_related("owner", "queue").first()
    live = version.rule.production_version
    return {
        "previous": previous,
        "changes": contract_diff(previous, version),
        "live_changes": contract_diff(live, version) if live is not None and live.pk != version.pk else None,
    }


class RuleVersionView(ConsoleAccessMixin, View):
    def get(self, request, pk, number):
        version = _version(pk, number)
        found = misrouted_leads(version=version, newest=PAGE_CHECKS)
        page = Paginator(found.of(LeadState.REROUTE), PAGE_SIZE).get_page(request.GET.get("page"))
        rollback = (
            RulePromotion.objects.filter(replaced=version, kind=PromotionKind.ROLLBACK)
            .select_related("by", "version")
            .order_by("-at", "-id")
            .first()
        )
        return render(
            request,
            "console/rules/version.html",
            {
                "version": version,
                "rule": version.rule,
                "condition_text": _readable(version.condition),
                "live": version.rule.production_version_id == version.pk,
                **_diffs(version),
                "rollback": rollback,
                "found": found,
                "page": page,
                "moved_by_hand": found.of(LeadState.MOVED_BY_HAND)[:LEFT_ALONE_SHOWN],
                "no_live_match": found.of(LeadState.NO_LIVE_MATCH)[:LEFT_ALONE_SHOWN],
                "may_reroute": can_govern(request.user, version.rule),
                "page_checks": PAGE_CHECKS,
            },
        )


class RerouteView(ConsoleAccessMixin, View):
    """POST only: without `confirm`, the confirm step saying how many; with it, the re-route."""

    def post(self, request, pk, number):
        version = _version(pk, number)
        require_remediator(request.user, version)  # PermissionDenied: 403 with the reason
        scope = request.POST.get("scope")
        if scope not in ("selected", "all"):
            messages.error(request, 'Choose "Re-route selected" or "Re-route all".')
            return HttpResponseRedirect(_version_url(version))
        lead_ids = None
        if scope == "selected":
            lead_ids = sorted({int(value) for value in request.POST.getlist("lead") if value.isdigit()})
            if not lead_ids:
                messages.error(request, 'Tick at least one lead to re-route, or use "Re-route all".')
                return HttpResponseRedirect(_version_url(version))
        if request.POST.get("confirm") != "yes":
            count = (
                len(lead_ids) if lead_ids is not None else misrouted_leads(version=version, newest=PAGE_CHECKS).count
            )
            return render(
                request,
                "console/rules/version_reroute_confirm.html",
                {"version": version, "rule": version.rule, "scope": scope, "lead_ids": lead_ids, "count": count},
            )
        result = leads_reroute(version=version, by=request.user, lead_ids=lead_ids, newest=PAGE_CHECKS)
        text = f"Re-routed by the live rules: {result.summary()}"
        (messages.success if result.moved else messages.warning)(request, text)
        return HttpResponseRedirect(_version_url(version))
