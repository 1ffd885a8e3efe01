"""Experiment screens: the list, one experiment's page (its figures refresh while it runs), and the start,
stop and decide actions (README: Experiments). The services decide who may act and why not."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from exceptions.permissions import ConsoleAccessMixin
from routing.experiments import services
from routing.experiments.figures import CRITERIA, experiment_figures
from routing.experiments.models import ExperimentStatus
from routing.experiments.selectors import experiment_list
from routing.models import Rule

REFRESH_SECONDS = 5


class StartForm(forms.Form):
    percent = forms.IntegerField(min_value=1, max_value=99, initial=50, label="Candidate's share (%)")
    max_leads = forms.IntegerField(min_value=1, max_value=services.MAX_LEADS_LIMIT, required=False, label="Max leads")
    ends_at = forms.DateTimeField(
        required=False, label="Ends at (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    route_latency = forms.FloatField(required=False, label="Route latency change (%)", initial=-50)
    manual_touches = forms.FloatField(required=False, label="Manual touches change (%)", initial=-70)
    exception_rate = forms.FloatField(required=False, label="Exception rate change (%)")
    conversion = forms.FloatField(required=False, label="Conversion change (%)")

    def criteria(self) -> dict:
        return {key: self.cleaned_data[key] for key in CRITERIA if self.cleaned_data.get(key) is not None}


class DecideForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, widget=forms.TextInput(attrs={"size": 40}))


def rule_experiments_context(rule: Rule, user) -> dict:
    """For the rule page's include (templates/console/rules/_experiments.html)."""
    return {
        "experiments": experiment_list(rule_id=rule.pk)[:10],
        "may_run_experiments": services.may_run_experiments(user, rule),
        "experiment_form": StartForm(),
    }


class ExperimentListView(ConsoleAccessMixin, View):
    def get(self, request):
        rule_id = request.GET.get("rule")
        rule_id = int(rule_id) if rule_id and rule_id.isascii() and rule_id.isdigit() and len(rule_id) < 10 else None
        return render(request, "console/experiments/list.html", {"experiments": experiment_list(rule_id=rule_id)[:200]})


def _page_context(request, experiment) -> dict:
    return {
        "experiment": experiment,
        "figures": experiment_figures(experiment),
        "running": experiment.status == ExperimentStatus.RUNNING,
        "refresh_seconds": REFRESH_SECONDS,
        "may_act": services.may_run_experiments(request.user, experiment.rule),
        "decide_form": DecideForm(),
    }


class ExperimentDetailView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        experiment = get_object_or_404(experiment_list(), pk=pk)
        return render(request, "console/experiments/detail.html", _page_context(request, experiment))


class ExperimentFiguresView(ConsoleAccessMixin, View):
    """The figures alone, which the page polls while the experiment runs."""

    def get(self, request, pk):
        experiment = get_object_or_404(experiment_list(), pk=pk)
        return render(request, "console/experiments/_figures.html", _page_context(request, experiment))


class ExperimentStartView(ConsoleAccessMixin, View):
    def post(self, request, pk):
        rule = get_object_or_404(Rule, pk=pk)
        form = StartForm(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                messages.error(
                    request, f"{form.fields[field].label if field in form.fields else field}: {' '.join(errors)}"
                )
            return redirect("console:rule", rule.pk)
        try:
            experiment = services.experiment_start(
                rule=rule,
                by=request.user,
                percent=form.cleaned_data["percent"],
                max_leads=form.cleaned_data["max_leads"],
                ends_at=form.cleaned_data["ends_at"],
                criteria=form.criteria(),
            )
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            return redirect("console:rule", rule.pk)
        except services.ExperimentInputError as exc:
            for field, problems in exc.problems.items():
                messages.error(request, f"{field}: {' '.join(problems)}")
            return redirect("console:rule", rule.pk)
        except services.ExperimentConflict as exc:
            messages.error(request, exc.message)
            return redirect("console:rule", rule.pk)
        messages.success(
            request,
            f"Experiment #{experiment.pk} started: v{experiment.candidate.number} on {experiment.percent}% of the leads"
            " the rule concerns.",
        )
        return redirect("console:experiment", experiment.pk)


class ExperimentActionView(ConsoleAccessMixin, View):
    """Stop, promote the candidate, or keep production."""

    def post(self, request, pk, action):
        experiment = get_object_or_404(experiment_list(), pk=pk)
        note = DecideForm(request.POST).data.get("note", "")[:2000]
        try:
            if action == "stop":
                services.experiment_stop(experiment=experiment, by=request.user)
                messages.success(request, f"Experiment #{pk} stopped: decide whether to promote the candidate.")
            elif action in services.Decision.ALL:
                experiment = services.experiment_decide(
                    experiment=experiment, by=request.user, decision=action, note=note
                )
                messages.success(request, f"Experiment #{pk}: {experiment.get_status_display().lower()}.")
            else:
                messages.error(request, f"No action {action!r}: stop, promote or keep.")
        except PermissionDenied as exc:
            messages.error(request, str(exc))
        except services.ExperimentConflict as exc:
            messages.error(request, exc.message)
        except services.PromotionBlocked as exc:
            messages.error(request, "The promotion gates refused: " + " ".join(g.message for g in exc.failures))
        except services.GovernanceError as exc:
            messages.error(request, str(exc))
        return redirect("console:experiment", pk)
