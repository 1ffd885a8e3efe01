"""Console forms for rules: the draft editor, promotion, sign-off, replay and preview."""

import json

from django import forms
from django.contrib.auth import get_user_model

from routing.conditions import ConditionError, validate_condition
from routing.dateranges import RangeBoundField
from routing.governance.builder import CATCH_ALL_MIN_LEADS, EMPTY_CONDITION, condition_check
from routing.governance.metrics import target_problem
from routing.governance.test_cases import NO_MATCH, case_problems
from routing.jsonbounds import JSONInputError, loads_bounded
from routing.models import Queue, Rule
from routing.text import refused_character


class JSONTextField(forms.CharField):
    """JSON typed into a textarea, parsed on the way in and pretty-printed on the way out."""

    widget = forms.Textarea(attrs={"rows": 8, "class": "json", "spellcheck": "false"})

    def prepare_value(self, value):
        if value is None:
            return ""  # nothing given shows an empty box, not the word null
        return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            return loads_bounded(value)  # json.loads would recurse into a RecursionError on deep input
        except JSONInputError as exc:
            raise forms.ValidationError(json_problem(value) or f"Not valid JSON: {exc}") from None


# json's own wording, said for a person editing by hand (the usual cause first).
_JSON_MISTAKES = {
    "Expecting ',' delimiter": "a comma is missing between two items (or a bracket is not closed)",
    "Expecting ':' delimiter": "a key must be followed by a colon",
    "Expecting property name enclosed in double quotes": "a key must be in double quotes (or a comma is left over)",
    "Expecting value": "a value is missing (a comma left over, or a string without double quotes)",
    "Extra data": "there is more text after the end (a bracket closed too early?)",
    "Unterminated string starting at": "a string is not closed with a double quote",
    "Invalid control character at": "a line break or tab inside a string; write it as \\n or \\t",
}


def json_problem(text: str) -> str | None:
    """What is wrong with malformed JSON, where, and the line it is on; None when json cannot say."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        what = _JSON_MISTAKES.get(exc.msg, exc.msg)
        line = text.splitlines()[exc.lineno - 1] if text.splitlines() else ""
        shown = line.strip()[:80]
        return f"Not valid JSON at line {exc.lineno}, column {exc.colno}: {what}. The line reads: {shown}"
    except (RecursionError, ValueError):
        return None
    return None


class BoundedJSONField(forms.JSONField):
    """Django's JSON form field (the admin's, for JSONField columns) parses with json.loads, which recurses
    into a RecursionError on a few thousand brackets, while validating and again while showing the form
    back. This one refuses nesting past the intake's limit first."""

    def _too_deep(self, value) -> str | None:
        if isinstance(value, str) and value.strip():
            try:
                loads_bounded(value)
            except JSONInputError as exc:
                return str(exc)
        return None

    def to_python(self, value):
        problem = None if self.disabled else self._too_deep(value)
        if problem:
            raise forms.ValidationError(f"Not valid JSON: {problem}")
        return super().to_python(value)

    def bound_data(self, data, initial):
        if self._too_deep(data):
            return forms.fields.InvalidJSONInput(data)
        return super().bound_data(data, initial)


class DraftChecks:
    """What a draft must be to be saved at all (the gates ask for more): a condition that compiles and test
    cases of the documented shape. Shared by the console's editor and the admin."""

    def clean_name(self):
        name = self.cleaned_data["name"]
        problem = refused_character(name or "")
        if problem:
            raise forms.ValidationError(problem)
        return name

    def clean_condition(self):
        condition = self.cleaned_data["condition"]
        if condition in (None, {}, ""):
            raise forms.ValidationError(EMPTY_CONDITION)
        try:
            validate_condition(condition)
        except ConditionError as exc:
            raise forms.ValidationError(str(exc)) from None
        return condition

    def clean_test_cases(self):
        cases = self.cleaned_data["test_cases"] or []
        # Located (which case, which field) so the editor marks the row; the flat messages say the same.
        self.case_problems = case_problems(cases)
        if self.case_problems:
            raise forms.ValidationError([str(problem) for problem in self.case_problems])
        return cases

    def _clean_target(self, name):
        value = self.cleaned_data.get(name)
        problem = target_problem(name, value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_target_exception_rate(self):
        return self._clean_target("target_exception_rate")

    def clean_target_latency_p95_minutes(self):
        return self._clean_target("target_latency_p95_minutes")

    def clean_target_overrides_per_week(self):
        return self._clean_target("target_overrides_per_week")

    def clean_target_sla_adherence(self):
        return self._clean_target("target_sla_adherence")


class DraftForm(DraftChecks, forms.ModelForm):
    condition = JSONTextField(
        required=False,  # clean_condition says what to add, in words, rather than "This field is required"
        help_text='e.g. {"all": [{"field": "lifecycle_stage", "op": "eq", "value": "mql"}]}',
    )
    test_cases = JSONTextField(
        required=False,
        help_text='[{"name": "…", "lead": {"email": "…", …}, "expect": {"queue": "…"}}] or "expect": {"match": false}',
    )

    match_everything = forms.BooleanField(
        required=False,
        label="It should match every lead",
        help_text="Needed when the condition matches every one of the last 1,000 leads (a catch-all rule).",
    )

    class Meta:
        model = Rule
        fields = [
            "name",
            "owner",
            "priority",
            "queue",
            "assign_to",
            "sla_minutes",
            "description",
            "inputs",
            "outputs",
            "rollback_plan",
            "condition",
            "test_cases",
            "source_of_truth",
            "target_exception_rate",
            "target_latency_p95_minutes",
            "target_overrides_per_week",
            "target_sla_adherence",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "inputs": forms.Textarea(attrs={"rows": 2}),
            "outputs": forms.Textarea(attrs={"rows": 2}),
            "rollback_plan": forms.Textarea(attrs={"rows": 2}),
        }

    def clean(self):
        data = super().clean()
        condition = data.get("condition")
        if condition is not None and "condition" not in self.errors and not data.get("match_everything"):
            check = condition_check(condition=condition)
            if check.matches_all and check.of >= CATCH_ALL_MIN_LEADS:
                self.add_error(
                    "condition",
                    f"when: matches every one of the last {check.of:,} leads; narrow it, or tick"
                    " \u201cIt should match every lead\u201d if this rule is meant as a catch-all.",
                )
        return data

    def __init__(self, *args, author=None, **kwargs):
        super().__init__(*args, **kwargs)
        owners = get_user_model().objects.filter(is_active=True).order_by("username")
        if author is not None and not author.is_superuser:
            # Only an admin hands a rule to someone else (rule_draft_save refuses it too).
            owners = owners.filter(pk=author.pk)
        self.fields["owner"].queryset = owners
        self.fields["queue"].queryset = Queue.objects.order_by("name")


class CommentForm(forms.Form):
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class ForceForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class ReplayForm(forms.Form):
    limit = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1_000_000,
        initial=10_000,
        help_text="The last N routed leads (within the range, if you give one).",
    )
    since = RangeBoundField(
        end=False, required=False, help_text="Or a range of days received, e.g. 2026-11-01 (or 2026-11-01T09:00Z)."
    )
    until = RangeBoundField(end=True, required=False, help_text="This day included, e.g. 2026-11-30.")


class PreviewForm(forms.Form):
    lead = JSONTextField(
        required=False, help_text='A lead as a capture system posts it, e.g. {"email": "…", "lifecycle_stage": "mql"}'
    )
    lead_id = forms.IntegerField(required=False, label="Or an existing lead's id")
    candidate = forms.BooleanField(required=False, label="Use staging versions (the candidate set)")

    def clean(self):
        data = super().clean()
        if data.get("lead") is None and not data.get("lead_id"):
            raise forms.ValidationError("Paste a lead as JSON, or give an existing lead's id.")
        return data


class BackupOwnerForm(forms.Form):
    """A rule's backup owner by username; empty clears it (services check who may be one)."""

    backup_owner = forms.CharField(
        max_length=150, required=False, help_text="Username of an active rule owner or admin; empty for none."
    )

    def clean_backup_owner(self):
        username = self.cleaned_data["backup_owner"].strip()
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise forms.ValidationError(f"Backup owner: there is no user {username!r}; give an existing username.")
        return user


class LeadCaseForm(forms.Form):
    """The "add as a test case" form on a lead's page: which rule's draft, the case's name and what it should expect.
    The rule is a plain id: the view says whether it is gone or not yours, which a choice list could not."""

    rule = forms.IntegerField(min_value=1, error_messages={"required": "Choose the rule whose draft gets the case."})
    name = forms.CharField(max_length=200, label="Case name")
    expect = forms.ChoiceField(label="Expect")

    def __init__(self, *args, rules=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rule"].widget = forms.Select(choices=[(rule.pk, rule.name) for rule in rules])
        queues = Queue.objects.order_by("name").values_list("name", flat=True)
        self.fields["expect"].choices = [(NO_MATCH, "no match")] + [(name, f"queue {name}") for name in queues]
