from django import forms
from django.contrib.auth import get_user_model

from exceptions.filters import console_people
from exceptions.models import NOTE_REQUIRED, NOTE_REQUIRED_MESSAGE, NotificationKind, Resolution
from exceptions.selectors import open_items_by_assignee
from routing.conditions import LEAD_FIELDS as CONDITION_FIELDS
from routing.models import Queue


class VersionedForm(forms.Form):
    """Carries the item version the person saw, so a change made meanwhile is refused, not overwritten."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0, max_value=2**31 - 1)


class AssignForm(VersionedForm):
    assignee = forms.ModelChoiceField(queryset=console_people(), required=False, empty_label="Nobody")

    def offer_queue_first(self, queue) -> None:
        """List the queue's members first, then everyone else, each with their open items: who to hand an
        item to is usually someone on its queue, and the least loaded of them."""
        load = open_items_by_assignee()
        members = set(queue.memberships.values_list("user_id", flat=True)) if queue is not None else set()
        people = list(self.fields["assignee"].queryset)

        def option(person):
            return person.pk, f"{person.get_username()} ({load.get(person.pk, 0)} open)"

        first = [option(p) for p in people if p.pk in members]
        rest = [option(p) for p in people if p.pk not in members]
        groups = [(f"{queue.name} members", first)] if first else []
        self.fields["assignee"].choices = [("", "Nobody"), *groups, ("Everyone" if not first else "Others", rest)]


class ResolveForm(forms.Form):
    # No code is preselected: one click must not record a reason nobody chose.
    resolution = forms.ChoiceField(
        choices=[("", "Choose…"), *Resolution.choices],
        error_messages={"required": "Choose a resolution code."},
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    def clean(self):
        data = super().clean()
        if data.get("resolution") in NOTE_REQUIRED and not (data.get("note") or "").strip():
            self.add_error("note", NOTE_REQUIRED_MESSAGE)
        return data


class ThenForm(forms.Form):
    """Where to go once an action finishes the person's part on an item (resolve, waiting, assign to someone
    else, a re-route or a hand assignment that resolves it): the queue's next item (triage in a row) or back to
    the list; remembered. Its field goes in each of those forms."""

    then = forms.ChoiceField(
        choices=[("next", "open the next item"), ("list", "go back to the list")], required=False, label="Then"
    )


class WaitingForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, help_text="What are you waiting for?")


class LeadEditForm(VersionedForm):
    email = forms.CharField(required=False, max_length=254)
    phone = forms.CharField(required=False, max_length=32)
    first_name = forms.CharField(required=False, max_length=150)
    last_name = forms.CharField(required=False, max_length=150)
    company = forms.CharField(required=False, max_length=200)
    company_size = forms.IntegerField(required=False, min_value=0)
    country = forms.CharField(required=False, max_length=2)
    lifecycle_stage = forms.CharField(required=False, max_length=64)
    engagement_score = forms.FloatField(required=False, min_value=0, max_value=100)
    intent_score = forms.FloatField(required=False, min_value=0, max_value=100)

    # The lead fields a person may correct: all but the capture system's id and the event time.
    LEAD_FIELDS = tuple(name for name in CONDITION_FIELDS if name not in ("lead_id", "occurred_at"))

    def changes(self, lead) -> dict:
        """Only the fields the person changed, with blanks meaning 'clear it'."""
        out = {}
        for name in self.LEAD_FIELDS:
            value = self.cleaned_data.get(name)
            value = None if value == "" else value
            current = getattr(lead, name)
            if value != current and not (value is None and current in ("", None)):
                out[name] = value
        return out


class ManualAssignForm(forms.Form):
    queue = forms.ModelChoiceField(queryset=Queue.objects.order_by("name"))
    assignee = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        empty_label="Queue only",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, help_text="Required: counted against the rule."
    )


class BulkForm(forms.Form):
    """The list's bulk bar: an action over the ticked items, or (scope "filter") over every item the list's
    filters select, given as its query string. What each action needs is checked by exceptions.bulk."""

    ACTIONS = [("acknowledge", "Acknowledge"), ("assign", "Assign to"), ("resolve", "Resolve"), ("reopen", "Reopen")]

    items = forms.TypedMultipleChoiceField(coerce=int, choices=[], required=False)
    scope = forms.ChoiceField(choices=[("selected", "selected"), ("filter", "filter")], required=False)
    filter = forms.CharField(required=False, max_length=4000)
    action = forms.ChoiceField(choices=ACTIONS)
    assignee = forms.ModelChoiceField(queryset=console_people(), required=False)
    resolution = forms.ChoiceField(choices=[("", "—"), *Resolution.choices], required=False)
    note = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # ids are checked by the services (only existing, unresolved items change); accept any number here
        self.fields["items"].valid_value = lambda value: True

    def clean(self):
        data = super().clean()
        if data.get("scope") != "filter" and not data.get("items"):
            raise forms.ValidationError("Select some items.")
        if data.get("action") == "assign" and not data.get("assignee"):
            raise forms.ValidationError("Choose who to assign the selected items to.")
        return data


class NotificationFilterForm(forms.Form):
    """The notifications page's filters (GET): unread only, a kind, a queue."""

    unread = forms.BooleanField(required=False, label="Unread only")
    kind = forms.ChoiceField(choices=[("", "Any"), *NotificationKind.choices], required=False)
    queue = forms.ModelChoiceField(queryset=Queue.objects.order_by("name"), required=False, empty_label="Any")
    incident = forms.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, label="Incident #", help_text="Its whole stream."
    )

    def apply(self, notes):
        data = self.cleaned_data
        if data["incident"]:
            notes = notes.filter(incident=data["incident"])
        if data["unread"]:
            notes = notes.filter(read_at__isnull=True)
        if data["kind"]:
            notes = notes.filter(kind=data["kind"])
        if data["queue"]:
            notes = notes.filter(queue=data["queue"])
        return notes


class IncidentAssignForm(VersionedForm):
    """Carries the incident's version the person saw: a claim made meanwhile is refused, not taken over."""

    assignee = forms.ModelChoiceField(
        queryset=console_people(), error_messages={"required": "Choose who takes the incident."}
    )

    def offer_queue_first(self, queue) -> None:
        AssignForm.offer_queue_first(self, queue)
        self.fields["assignee"].choices = [(value, label) for value, label in self.fields["assignee"].choices if value]


class IncidentResolveForm(forms.Form):
    """Resolving an incident resolves every item of it: a code and a note, both required (no default)."""

    resolution = forms.ChoiceField(
        choices=[("", "Choose…"), *Resolution.choices], error_messages={"required": "Choose a resolution code."}
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        error_messages={"required": "Give a note: it is recorded on every item the incident resolves."},
    )
    # How many unresolved items the page showed: the outcome says how many joined since.
    shown = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1, widget=forms.HiddenInput)


class PostmortemForm(forms.Form):
    """An incident's postmortem: what happened, why, and what changes (exceptions.postmortems checks its size)."""

    postmortem = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}),
        error_messages={"required": "Write the postmortem: what happened, why, and what changes."},
    )
