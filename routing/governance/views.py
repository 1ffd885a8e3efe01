"""Console screens for rules: list, detail (contract, versions, diffs, tests, gates), draft editor, replay,
preview, "My rules" sign-off, and each lead's decision with its explanation. Thin: selectors to read,
services to act; a refused action comes back as a message saying why, a forbidden one as 403."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from audit.models import Override
from exceptions.permissions import ConsoleAccessMixin
from exceptions.selectors import lead_decisions, lead_trail
from routing.accounts.identity import person_leads
from routing.accounts.models import AccountMatch
from routing.experiments.views import rule_experiments_context
from routing.governance import services
from routing.governance.approvals import approvers_text, can_approve, production_approval_required, version_approvals
from routing.governance.backup_owner import rule_backup_owner_set
from routing.governance.builder import builder_vocabulary
from routing.governance.diffs import draft_status
from routing.governance.explain import condition_text
from routing.governance.forms import (
    BackupOwnerForm,
    CommentForm,
    DraftForm,
    ForceForm,
    LeadCaseForm,
    PreviewForm,
    ReplayForm,
)
from routing.governance.gates import reads_account
from routing.governance.metrics import MIN_LEADS as METRICS_MIN_LEADS
from routing.governance.metrics import success_metrics
from routing.governance.models import ReplayRun, ReplayStatus, RuleNotice, RuleVersion
from routing.governance.notices import notices_mark_read, unread_notices
from routing.governance.preview import lead_explanation, routing_preview
from routing.governance.replay import ReplayError, replay_moves, replay_start
from routing.governance.selectors import (
    awaiting_review,
    candidate_rules,
    case_results,
    last_candidate_change,
    my_rules,
    override_counts,
    override_flag_threshold,
    rule_rows,
    shadow_summary,
    this_week,
    unsigned_from_rows,
    version_diff,
    versions_with_diffs,
)
from routing.governance.sign_offs import change_diff, change_view_record
from routing.governance.test_cases import (
    CaseRefused,
    case_editor_context,
    governable_rule_choices,
    lead_case_add,
    lead_expected,
)
from routing.intake import SampleLeadError
from routing.integrations.handoff import handoff_summary, lead_deliveries
from routing.models import Lead, Rule, RuleStage


class RuleListView(ConsoleAccessMixin, View):
    def get(self, request):
        week = this_week()
        rows = rule_rows()
        awaiting = awaiting_review(rows)  # rules with changes awaiting review come first
        rows = sorted(rows, key=lambda row: row.rule.pk not in awaiting)
        for row in rows:
            row.awaiting_review = awaiting.get(row.rule.pk, 0)
        return render(
            request,
            "console/rules/list.html",
            {
                "rows": rows,
                "unsigned": unsigned_from_rows(rows),  # the same rows: reopened sign-offs count as unsigned
                "week": week,
                "threshold": override_flag_threshold(),
                "may_author": services.may_author_rules(request.user),
            },
        )


class RuleDetailView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        malformed = _malformed_comparison(request)
        if malformed:
            return HttpResponseBadRequest(malformed, content_type="text/plain; charset=utf-8")
        rule = get_object_or_404(
            Rule.objects.select_related("owner", "backup_owner", "queue", "staging_version", "production_version"),
            pk=pk,
        )
        versions = versions_with_diffs(rule)
        return render(
            request,
            "console/rules/detail.html",
            {
                "rule": rule,
                "condition_text": _readable(rule.condition),
                "live_condition_text": _readable(rule.production_version.condition) if rule.production_version else "",
                "versions": versions,
                "compare": _comparison(request, rule),
                "status": draft_status(rule),  # what is live, and the draft against it
                "staging_changes": version_diff(rule.staging_version, rule) if rule.staging_version else [],
                "cases": case_results(rule),  # stored when the draft was saved or its tests run
                "tests_stale": services.tests_stale(rule),
                "reads_account": reads_account(rule.condition),
                "staging_gates": services.promotion_gates(rule, RuleStage.STAGING),
                "production_gates": services.promotion_gates(rule, RuleStage.PRODUCTION, by=request.user),
                "approval": _approval_context(request, rule),
                "rollback_to": services.rollback_target(rule),
                "promotions": rule.promotions.select_related("version", "replaced", "by").order_by("-at", "-id")[:50],
                "overrides": override_counts(this_week()).get(rule.pk, 0),
                "threshold": override_flag_threshold(),
                "shadow": shadow_summary(rule),
                "may_govern": services.can_govern(request.user, rule),
                "comment_form": CommentForm(),
                "force_form": ForceForm(),
                "backup_owner_form": BackupOwnerForm(
                    initial={"backup_owner": rule.backup_owner.get_username() if rule.backup_owner_id else ""}
                ),
                "last_change": last_candidate_change(),
                "success": success_metrics(rule_ids=[rule.pk]).get(rule.pk),
                "min_leads": METRICS_MIN_LEADS,
                **rule_experiments_context(rule, request.user),
            },
        )


def _approval_context(request, rule: Rule) -> dict | None:
    """The production gate's second-person approval (HANDOFF_PRODUCTION_APPROVAL), or None when it is off."""
    if not production_approval_required():
        return None
    staged = rule.staging_version
    approvals = version_approvals(staged) if staged else []
    return {
        "approvals": approvals,
        "who": approvers_text(rule),
        "may_approve": bool(staged)
        and can_approve(request.user, rule)
        and all(a.by_id != request.user.pk for a in approvals),
    }


def _readable(condition) -> str:
    try:
        return condition_text(condition)
    except (KeyError, TypeError):
        return "(the condition cannot be read; fix it in the editor)"


def _version_number(value: str | None) -> bool:
    # isascii: str.isdigit() also accepts "²", which int() refuses (a 500 before); 9 digits fit an integer.
    return bool(value) and value.isascii() and value.isdigit() and len(value) <= 9


def _malformed_comparison(request) -> str | None:
    """What is wrong with ?a=&b= (a version number each, b may be "draft"), or None."""
    a, b = request.GET.get("a"), request.GET.get("b")
    if a is not None and not _version_number(a):
        return "a= must be a version number (digits 0-9), e.g. ?a=1&b=2."
    if b is not None and not (_version_number(b) or b == "draft"):
        return 'b= must be a version number (digits 0-9) or "draft", e.g. ?a=1&b=draft.'
    return None


def _comparison(request, rule: Rule):
    """?a=1&b=3 on a rule's page: the diff between two of its versions (b may be "draft")."""
    a, b = request.GET.get("a"), request.GET.get("b")
    if not (a and b):
        return None
    older = RuleVersion.objects.filter(rule=rule, number=int(a)).select_related("owner", "queue").first()
    newer = rule if b == "draft" else RuleVersion.objects.filter(rule=rule, number=int(b)).first()
    if older is None or newer is None:
        return None
    return {"a": a, "b": b, "changes": version_diff(older, newer)}


class RuleEditView(ConsoleAccessMixin, View):
    """The draft editor: the owner or an admin edits; a new rule may be started by any rule owner."""

    def get(self, request, pk=None):
        rule = self._rule(request, pk)
        form = DraftForm(instance=rule, author=request.user)
        return render(request, "console/rules/edit.html", _editor_context(rule, form))

    def post(self, request, pk=None):
        rule = self._rule(request, pk)
        form = DraftForm(request.POST, instance=rule, author=request.user)
        if not form.is_valid():
            messages.error(request, "The draft was not saved; fix the fields marked below.")
            return render(request, "console/rules/edit.html", _editor_context(rule, form), status=400)
        try:
            saved = services.rule_draft_save(rule=form.instance, by=request.user)
        except services.RuleDraftError as exc:
            messages.error(request, f"The draft was not saved: {exc}")
            return render(request, "console/rules/edit.html", _editor_context(rule, form), status=400)
        live = " Production is unchanged until you promote it." if saved.production_version_id else ""
        messages.success(request, f"Draft of {saved.name!r} saved.{live}")
        if unknown := services.unknown_account_attributes(saved.condition):
            messages.warning(
                request,
                f"No account has {', '.join(unknown)}: the condition reads nothing there until an account does"
                " (a misspelt attribute, or a CRM column not imported yet).",
            )
        return HttpResponseRedirect(reverse("console:rule", args=[saved.pk]))

    def _rule(self, request, pk):
        if pk is None:
            if not services.may_author_rules(request.user):
                raise PermissionDenied("Only rule owners and admins create rules.")
            return Rule(owner=request.user, condition=None)  # the builder starts empty: nothing matches by default
        rule = get_object_or_404(Rule, pk=pk)
        if not services.can_govern(request.user, rule):
            owner = rule.owner.get_username() if rule.owner_id else "nobody yet"
            raise PermissionDenied(f"Only the rule's owner ({owner}) or an admin edits {rule.name!r}.")
        return rule


def _editor_context(rule, form) -> dict:
    return {"rule": rule, "form": form, "vocabulary": builder_vocabulary(), **case_editor_context(rule, form)}


class RuleActionView(ConsoleAccessMixin, View):
    """POST /console/rules/<pk>/<action>/: promote, roll back, force, sign off, run tests."""

    def post(self, request, pk, action):
        rule = get_object_or_404(Rule.objects.select_related("owner", "queue"), pk=pk)
        handler = getattr(self, f"do_{action}", None)
        if handler is None:
            messages.error(request, f"Unknown action {action!r}.")
        else:
            try:
                message = handler(request, rule)
            except services.PromotionBlocked as blocked:
                messages.error(request, "Promotion blocked: " + " ".join(g.message for g in blocked.failures))
            except (services.GovernanceError, ReplayError) as refused:
                messages.error(request, str(refused))
            else:
                messages.success(request, message)
        target = request.POST.get("next")
        if target == "mine":
            return HttpResponseRedirect(reverse("console:my-rules") + f"#rule-{rule.pk}")
        return HttpResponseRedirect(reverse("console:rule", args=[rule.pk]))

    def _comment(self, request) -> str:
        form = CommentForm(request.POST)
        return form.cleaned_data["comment"] if form.is_valid() else ""

    def do_promote_staging(self, request, rule):
        promotion = services.rule_promote(
            rule=rule, to=RuleStage.STAGING, by=request.user, comment=self._comment(request)
        )
        return f"v{promotion.version.number} is in staging: it now runs in shadow on every lead."

    def do_promote_production(self, request, rule):
        promotion = services.rule_promote(
            rule=rule, to=RuleStage.PRODUCTION, by=request.user, comment=self._comment(request)
        )
        return f"v{promotion.version.number} is in production (evidence: replay #{promotion.replay_id})."

    def do_rollback(self, request, rule):
        promotion = services.rule_rollback(rule=rule, by=request.user, comment=self._comment(request))
        return f"Rolled back: v{promotion.version.number} is in production again (was v{promotion.replaced.number})."

    def do_force(self, request, rule):
        form = ForceForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        promotion = services.rule_force_production(rule=rule, by=request.user, reason=reason)
        return f"Forced v{promotion.version.number} into production; it shows as unsigned until the owner signs off."

    def do_approve(self, request, rule):
        approval = services.rule_approve(rule=rule, by=request.user, comment=self._comment(request))
        return (
            f"You approved staging v{approval.version.number} of {rule.name!r} for production; someone other"
            " than you promotes it."
        )

    def do_sign_off(self, request, rule):
        sign_off = services.rule_sign_off(rule=rule, by=request.user, comment=self._comment(request))
        return f"Signed off {rule.name!r} for {sign_off.iso_week_label}."

    def do_backup_owner(self, request, rule):
        form = BackupOwnerForm(request.POST)
        if not form.is_valid():
            raise services.GovernanceError(" ".join(e for errors in form.errors.values() for e in errors))
        rule = rule_backup_owner_set(rule=rule, backup_owner=form.cleaned_data["backup_owner"], by=request.user)
        if rule.backup_owner_id:
            return f"{rule.backup_owner.get_username()} is now the backup owner of {rule.name!r}."
        return f"{rule.name!r} has no backup owner now."

    def do_run_tests(self, request, rule):
        results = services.rule_tests_record(rule=rule)
        if results is None:
            raise services.GovernanceError("The test cases cannot run: fix the condition or their shape in the draft.")
        if not results:
            raise services.GovernanceError("This rule has no test cases yet; add some in the draft.")
        failed = [r for r in results if not r.passed]
        if failed:
            raise services.GovernanceError(
                f"{len(failed)} of {len(results)} test cases failed: "
                + "; ".join(f"{r.name!r} expected {r.expected}, got {r.got}" for r in failed)
            )
        return f"All {len(results)} test cases passed."


class MyRulesView(ConsoleAccessMixin, View):
    def get(self, request):
        return render(
            request,
            "console/rules/mine.html",
            {
                "views": my_rules(owner=request.user),
                "week": this_week(),
                "threshold": override_flag_threshold(),
                "comment_form": CommentForm(),
                "notices": unread_notices(user=request.user),
            },
        )


class ChangeDiffView(ConsoleAccessMixin, View):
    """POST /console/rules/<pk>/changes/<key>/: the diff of one change of a rule, recorded as viewed by the
    person it is sent to (what a sign-off requires). "My rules" posts it when a change is opened (htmx, the
    fragment); without JavaScript its button shows the diff on a page of its own."""

    def post(self, request, pk, key):
        rule = get_object_or_404(Rule.objects.select_related("owner"), pk=pk)
        change = change_diff(rule=rule, key=key)
        if change is None:
            raise Http404(f"{rule.name!r} has no change {key!r}.")
        view = change_view_record(rule=rule, key=change.key, viewer=request.user)
        context = {"rule": rule, "change": change, "changes": version_diff(change.older, change.newer), "view": view}
        template = "console/rules/_change_diff.html" if request.htmx else "console/rules/change.html"
        return render(request, template, context)


class NoticesReadView(ConsoleAccessMixin, View):
    """Mark one of your notices read (`notice`), or all of them (no `notice`); someone else's: 403."""

    def post(self, request):
        raw = request.POST.get("notice")
        if raw is None:
            count = notices_mark_read(user=request.user)
            messages.success(request, f"Marked {count} notice{'s' if count != 1 else ''} read.")
        else:
            notice = get_object_or_404(RuleNotice, pk=raw) if raw.isdigit() else None
            if notice is None:
                return HttpResponseBadRequest(
                    "notice: give the number of a notice.", content_type="text/plain; charset=utf-8"
                )
            if notice.recipient_id != request.user.pk:
                raise PermissionDenied("That notice is addressed to someone else; only its recipient marks it read.")
            notices_mark_read(user=request.user, notice_ids=[notice.pk])
            messages.success(request, f"Marked the notice about {notice.rule.name} read.")
        return HttpResponseRedirect(reverse("console:my-rules") + "#notices")


class ReplayView(ConsoleAccessMixin, View):
    def get(self, request):
        return self._page(request, ReplayForm())

    def post(self, request):
        form = ReplayForm(request.POST)
        if not form.is_valid():
            messages.error(request, "The replay was not started; fix the fields marked below.")
            return self._page(request, form, status=400)
        try:
            run = replay_start(by=request.user, **form.cleaned_data)
        except ReplayError as exc:
            messages.error(request, str(exc))
            return self._page(request, form, status=400)
        return HttpResponseRedirect(reverse("console:replay", args=[run.pk]))

    def _page(self, request, form, status=200):
        runs = ReplayRun.objects.select_related("requested_by")[:20]
        candidate = candidate_rules()
        return render(
            request, "console/rules/replay.html", {"form": form, "runs": runs, "candidate": candidate}, status=status
        )


class ReplayDetailView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        run = get_object_or_404(ReplayRun.objects.select_related("requested_by"), pk=pk)
        if request.GET.get("format") == "json":
            return JsonResponse(
                {"status": run.status, "done": run.done, "total": run.total, "percent": run.progress_percent}
            )
        template = "console/rules/_replay_progress.html" if request.htmx else "console/rules/replay_detail.html"
        return render(
            request,
            template,
            {
                "run": run,
                "rules": candidate_rules(run),
                "running": run.status in _UNFINISHED,
                "moves": replay_moves(run),  # each move put down to the rule that caused it
            },
        )


_UNFINISHED = (ReplayStatus.QUEUED, ReplayStatus.RUNNING)


class PreviewView(ConsoleAccessMixin, View):
    def get(self, request):
        initial = {"lead_id": request.GET.get("lead")} if request.GET.get("lead") else None
        form = PreviewForm(initial=initial)
        return render(request, "console/rules/preview.html", {"form": form})

    def post(self, request):
        form = PreviewForm(request.POST)
        context = {"form": form}
        if form.is_valid():
            sample = form.cleaned_data["lead"]
            if sample is None:
                lead = Lead.objects.filter(pk=form.cleaned_data["lead_id"]).first()
                if lead is None:
                    form.add_error("lead_id", f"There is no lead #{form.cleaned_data['lead_id']}.")
                else:
                    sample = {name: getattr(lead, name) for name in Lead.ROUTABLE_FIELDS}
                    sample["occurred_at"] = lead.occurred_at.isoformat()
            if sample is not None:
                try:
                    context["preview"] = routing_preview(sample=sample, candidate=form.cleaned_data["candidate"])
                except SampleLeadError as exc:
                    form.add_error("lead", f"The lead is not valid: {exc}")
        return render(request, "console/rules/preview.html", context, status=200 if form.is_valid() else 400)


class LeadView(ConsoleAccessMixin, View):
    """One lead: its decision and why, what staging would have done, overrides, and its audit trail."""

    def get(self, request, pk):
        lead = get_object_or_404(Lead.objects.select_related("origin", "queue", "assignee", "rule"), pk=pk)
        trail = lead_trail(lead)
        deliveries = lead_deliveries(lead_id=lead.pk)
        return render(
            request,
            "console/rules/lead.html",
            {
                "lead": lead,
                "deliveries": deliveries,
                "handoff": handoff_summary(lead=lead, deliveries=deliveries),
                "why": lead_explanation(lead),
                "decisions": lead_decisions(trail),
                "trail": trail,
                "shadows": lead.shadow_decisions.select_related(
                    "production_rule", "production_queue", "candidate_rule", "candidate_queue"
                ).order_by("-at")[:10],
                "overrides": Override.objects.filter(lead=lead).select_related(
                    "by", "from_queue", "to_queue", "from_assignee", "to_assignee", "rule"
                ),
                "items": lead.exceptions.select_related("queue").order_by("-opened_at"),
                "held_by": lead.held_by_items.select_related("lead").order_by("-opened_at"),
                "enrichment_receipts": lead.enrichment_receipts.select_related("provider").order_by("-at", "-id")[:20],
                "now": timezone.now(),
                "account_match": AccountMatch.objects.filter(lead=lead).select_related("account__owner").first(),
                "same_person": person_leads(lead).select_related("origin", "assignee")[:50],
                **_lead_case_context(request, lead),
            },
        )


def _lead_case_context(request, lead: Lead) -> dict:
    """The "add as a test case" form: only for people who govern at least one rule, the lead's own rule first chosen."""
    rules = governable_rule_choices(request.user)
    if not rules:
        return {"case_rules": [], "case_form": None}
    initial = {"rule": lead.rule_id, "name": f"lead {lead.lead_id}"[:200], "expect": lead_expected(lead)}
    return {"case_rules": rules, "case_form": LeadCaseForm(initial=initial, rules=rules)}


class LeadTestCaseView(ConsoleAccessMixin, View):
    """POST /console/leads/<pk>/test-case/: the lead's routing fields become a test case in a rule's draft, saved
    like any draft (audited, the cases run again); then the rule's page, saying whether the case passes now."""

    def post(self, request, pk):
        lead = get_object_or_404(Lead.objects.select_related("queue", "rule__queue"), pk=pk)
        back = HttpResponseRedirect(reverse("console:lead", args=[lead.pk]) + "#add-case")
        form = LeadCaseForm(request.POST, rules=governable_rule_choices(request.user))
        if not form.is_valid():
            problems = "; ".join(f"{form.fields[f].label or f}: {' '.join(e)}" for f, e in form.errors.items())
            messages.error(request, f"The test case was not added: {problems}")
            return back
        data = form.cleaned_data
        rule = Rule.objects.select_related("owner", "queue").filter(pk=data["rule"]).first()
        if rule is None:
            messages.error(request, f"The test case was not added: rule #{data['rule']} no longer exists.")
            return back
        try:
            result = lead_case_add(rule=rule, lead=lead, name=data["name"], expect=data["expect"], by=request.user)
        except CaseRefused as refused:
            messages.error(request, str(refused))
            return back
        if result is None:
            outcome = "it cannot run yet (the draft's condition or cases need fixing)"
        elif result.passed:
            outcome = f"it passes now ({result.got})"
        else:
            why = f": {result.why}" if result.why else ""
            outcome = f"it fails now: expected {result.expected}, got {result.got}{why}"
        messages.success(
            request,
            f"Test case {data['name'].strip()!r} from lead {lead.lead_id} was added to the draft of {rule.name!r};"
            f" {outcome}. Production is unchanged until the draft is promoted.",
        )
        return HttpResponseRedirect(reverse("console:rule", args=[rule.pk]) + "#cases")
