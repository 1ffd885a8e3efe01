import datetime as dt

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, Value
from django.db.models.expressions import RawSQL
from django.http import QueryDict
from django.utils import timezone
from django_filters.fields import ModelChoiceField
from drf_spectacular.utils import extend_schema_field

from exceptions.models import ExceptionIncident, ExceptionItem, ExceptionReason, ExceptionStatus, SavedView
from exceptions.permissions import CONSOLE_GROUPS
from routing.dateranges import RANGE_END_SCHEMA, RangeBoundField
from routing.models import Queue, Source

UNRESOLVED_DEFAULT = ["open", "acknowledged", "waiting"]
SORTS = {
    "due": ("due_at", "id"),
    "-due": ("-due_at", "-id"),
    "age": ("opened_at", "id"),
    "-age": ("-opened_at", "-id"),
}


def console_people():
    return (
        get_user_model()
        .objects.filter(Q(groups__name__in=CONSOLE_GROUPS) | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("username")
    )


def item_holders():
    """Whoever a list may be filtered to as assignee: the console's people, and every queue member, whom
    routing and acknowledging give items too (the demo's alan held items nobody could filter by)."""
    return (
        get_user_model()
        .objects.filter(
            Q(groups__name__in=CONSOLE_GROUPS) | Q(is_superuser=True) | Q(queue_memberships__isnull=False),
            is_active=True,
        )
        .distinct()
        .order_by("username")
    )


class ReceivedRangeField(forms.MultiValueField):
    """`received_after` and `received_before` as one range, read the way every date range is (routing.days):
    a bare date is its whole UTC day at either end, a date-time is an instant, and the end is not included.
    Inside the days a person may ask about: year 9999 with a -23:59 offset once parsed, then failed in the
    database ("time zone displacement out of range", a 500)."""

    widget = django_filters.widgets.DateRangeWidget

    def __init__(self, *args, **kwargs):
        fields = (RangeBoundField(end=False, required=False), RangeBoundField(end=True, required=False))
        super().__init__(fields, *args, require_all_fields=False, **kwargs)

    def compress(self, data_list):
        if not data_list:
            return None
        start, stop = data_list
        if start is not None and stop is not None and start >= stop:
            # As the commands say it: a reversed range is a mistake to point out, not a question with no answer.
            raise forms.ValidationError(
                "The date range is empty: received_before must come after received_after (a date alone runs to the "
                "end of its day, so the same date twice is that whole day)."
            )
        return slice(start, stop)


@extend_schema_field(  # each of received_after and received_before
    {
        **RANGE_END_SCHEMA,
        "description": "received_after: from this day (YYYY-MM-DD, UTC) or date-time, included; received_before: "
        "to this day, included, or before this date-time.",
    }
)
class ReceivedRangeFilter(django_filters.IsoDateTimeFromToRangeFilter):
    """From `received_after` (included) up to `received_before` (not included)."""

    field_class = ReceivedRangeField

    def filter(self, qs, value):
        if value and value.start is not None:
            qs = qs.filter(**{f"{self.field_name}__gte": value.start})
        if value and value.stop is not None:
            qs = qs.filter(**{f"{self.field_name}__lt": value.stop})
        return qs


# A lead's searchable text; the same expression as the trigram index of routing migration 0023.
LEAD_SEARCH_TEXT = (
    "lower(coalesce(email, '') || ' ' || lead_id || ' ' || coalesce(company, '') || ' ' || "
    "coalesce(first_name, '') || ' ' || coalesce(last_name, ''))"
)


class IdOrNameField(ModelChoiceField):
    """A queue, source or person by id (what the console's selects send) or by the name the API's rows show
    (`?queue=Triage`, `?assignee=ada`, `?origin=web-form`). One that names nothing is refused saying so (the
    API's 400, documented on the parameter): a list or a bulk action filtered by a typo should not quietly
    select nothing."""

    def __init__(self, *args, name_field: str, **kwargs):
        self.name_field = name_field
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if isinstance(value, str) and value and not value.isdigit() and value != self.null_value:
            found = list(self.queryset.filter(**{self.name_field: value})[:2])
            if len(found) == 1:
                return found[0]
            raise forms.ValidationError(f"Nothing is named {value!r} here: give its id or its exact name.")
        try:
            return super().to_python(value)
        except forms.ValidationError:
            if isinstance(value, str) and value.isascii() and value.isdigit():
                raise forms.ValidationError(
                    f"Nothing has the id {value} here: give the id or exact name of one that exists."
                ) from None
            raise


# The schema said `integer` (the primary key), so a name was outside it and an unknown id inside it with no word
# of the 400 it gets.
@extend_schema_field(
    {
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}],
        "description": "An id, or the exact name the rows show (a person's username). "
        "One that names nothing answers 400 naming this parameter.",
    }
)
class IdOrNameFilter(django_filters.ModelChoiceFilter):
    field_class = IdOrNameField


class AnyYesNo(forms.NullBooleanSelect):
    """Django's null-boolean select says "Unknown" for "do not filter": this says "Any"."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.choices = [("unknown", "Any"), ("true", "Yes"), ("false", "No")]


def groups_incidents(query) -> bool:
    """Whether the list shows an incident's items as one group above its rows (and a bulk filter leaves them
    out): unless the query asks for an incident, for items in incidents or not, or searches (a search looks
    for one lead, and shows every match)."""
    return "incident" not in query and "in_incident" not in query and not query.get("q", "").strip()


class ExceptionFilter(django_filters.FilterSet):
    """The item list's filters, shared by the console screen and the API. Without a `status` the list
    shows unresolved items (tick Resolved, or all four, to see the rest)."""

    def __init__(self, data=None, *args, **kwargs):
        data = data.copy() if data is not None else QueryDict(mutable=True)
        if not data.getlist("status"):
            data.setlist("status", UNRESOLVED_DEFAULT)
        super().__init__(data, *args, **kwargs)

    q = django_filters.CharFilter(method="filter_search", label="Search", min_length=3, max_length=200)
    queue = IdOrNameFilter(queryset=Queue.objects.order_by("name"), name_field="name")
    # distinct=False: the filter joins nothing, and DISTINCT made counting 100,000 items cost ~100 ms.
    status = django_filters.MultipleChoiceFilter(
        choices=ExceptionStatus.choices, widget=forms.CheckboxSelectMultiple, distinct=False
    )
    reason = django_filters.ChoiceFilter(choices=ExceptionReason.choices)
    assignee = IdOrNameFilter(queryset=item_holders(), null_label="Nobody", name_field="username")
    breached = django_filters.BooleanFilter(method="filter_breached", label="Breached", widget=AnyYesNo)
    # Items whose last escalation had nobody to receive it (a queue without owner or contact).
    unreached = django_filters.BooleanFilter(
        method="filter_unreached", label="Escalation reached nobody", widget=AnyYesNo
    )
    due_within = django_filters.NumberFilter(
        method="filter_due_within", label="Due within (min)", min_value=0, max_value=7 * 24 * 60
    )
    incident = django_filters.NumberFilter(field_name="incident", label="Incident #", min_value=1, max_value=2**63 - 1)
    in_incident = django_filters.BooleanFilter(
        field_name="incident", lookup_expr="isnull", exclude=True, label="In an incident", widget=AnyYesNo
    )
    origin = IdOrNameFilter(field_name="lead__origin", queryset=Source.objects.order_by("name"), name_field="name")
    received = ReceivedRangeFilter(field_name="lead__received_at", label="Received between")
    sort = django_filters.ChoiceFilter(
        choices=[("due", "Due soonest"), ("-due", "Due latest"), ("age", "Oldest"), ("-age", "Newest")],
        method="filter_sort",
        empty_label=None,
        label="Sort",
    )

    class Meta:
        model = ExceptionItem
        fields = [
            "q",
            "queue",
            "status",
            "reason",
            "assignee",
            "breached",
            "unreached",
            "due_within",
            "incident",
            "in_incident",
            "origin",
            "received",
        ]

    def filter_search(self, queryset, name, value):
        """Any part of the lead's email, lead id, company or names, case ignored (trigram-indexed on
        PostgreSQL: routing migration 0023; a term under 3 letters cannot use the index, so it takes 3 or more)."""
        term = value.strip().lower()
        if not term:
            return queryset
        like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        leads = RawSQL(f"SELECT id FROM routing_lead WHERE {LEAD_SEARCH_TEXT} LIKE %s ESCAPE '\\'", [like])
        return queryset.filter(lead_id__in=leads)

    def filter_due_within(self, queryset, name, value):
        """Due (the clock that runs) within this many minutes from now, overdue ones included."""
        return queryset.filter(due_at__lte=timezone.now() + dt.timedelta(minutes=float(value)))

    def filter_breached(self, queryset, name, value):
        breached = Q(ack_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False)
        return queryset.filter(breached) if value else queryset.exclude(breached)

    def filter_unreached(self, queryset, name, value):
        return queryset.exclude(escalation_problem="") if value else queryset.filter(escalation_problem="")

    def filter_sort(self, queryset, name, value):
        return queryset  # applied last, in `ordered`

    def ordered(self):
        field, tie = SORTS.get(self.form.cleaned_data.get("sort") or "due", SORTS["due"])
        if field == "due_at":
            # A waiting item has no due time: last, as PostgreSQL sorts NULL ascending anyway (so its index still
            # serves the list); SQLite, the demo's default database, put it first, as the most urgent.
            field = F("due_at").asc(nulls_last=True)
        return self.qs.order_by(field, tie)


class IncidentFilter(django_filters.FilterSet):
    """The API's incident list narrowed by queue or assignee, each by id or by the name its rows show
    (`?queue=Triage`, `?assignee=olga`, `?assignee=null` for nobody). Status stays the view's own check."""

    queue = IdOrNameFilter(
        queryset=Queue.objects.order_by("name"),
        name_field="name",
        help_text="The queue's id or its name, as the rows show it (e.g. Triage).",
    )
    assignee = IdOrNameFilter(
        queryset=item_holders(),
        null_label="Nobody",
        name_field="username",
        help_text="The person's id or username, as the rows show it (e.g. olga); null for nobody.",
    )

    class Meta:
        model = ExceptionIncident
        fields = ["queue", "assignee"]


# Saved views with their counts, for the item list and the navigation ----------------------------------------


class KnownModelChoiceField(IdOrNameField):
    """A model choice looked up among objects read beforehand (`known`, by primary key) rather than with a query:
    ten saved views naming ten queues cost one query, not ten. Anything not among them is an invalid choice,
    as it would be on the list. (A view saved with a name, from the API's query, is looked up by name.)"""

    def __init__(self, *args, known: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.known = known

    def to_python(self, value):
        if value in self.empty_values or (self.null_label is not None and value == self.null_value):
            return super().to_python(value)  # None, or "Nobody": no query either way
        if isinstance(value, str) and not value.isdigit():
            return super().to_python(value)
        try:
            return self.known[int(value)]
        except (KeyError, TypeError, ValueError):
            raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice") from None


class SavedViewFilter(ExceptionFilter):
    """The list's filters for one saved view, its queue, assignee and origin looked up in `known` (name -> {pk:
    object}, read once for all the person's views)."""

    KNOWN = ("queue", "assignee", "origin")

    def __init__(self, data, *, known: dict[str, dict], **kwargs):
        super().__init__(data, **kwargs)
        for name in self.KNOWN:
            self.filters[name].field_class = KnownModelChoiceField
            self.filters[name].extra["known"] = known[name]


def _named(name: str, queries: list[QueryDict]) -> dict:
    """The objects of one model-choice filter that any of the views names, by primary key (one query, or none)."""
    ids = set()
    for query in queries:
        try:
            ids.add(int(query.get(name)))
        except (TypeError, ValueError):
            continue  # absent, "null" (Nobody) or not a number: nothing to read
    if not ids:
        return {}
    return {obj.pk: obj for obj in ExceptionFilter.base_filters[name].queryset.filter(pk__in=ids)}


def saved_view_counts(user) -> list[dict]:
    """The person's saved views, each with how many items it matches now (None: its filters are no longer
    valid). Queries: the views; the queues, people and origins they name (one each, only if named); one count
    for all of them (a UNION ALL of one aggregate per view). Kept on the user for the request: the item list
    and the navigation both show them, like `console_groups`."""
    if not hasattr(user, "saved_view_counts"):
        user.saved_view_counts = _saved_view_counts(user)
    return user.saved_view_counts


def _saved_view_counts(user) -> list[dict]:
    views = list(SavedView.objects.filter(user=user))
    if not views:
        return []
    queries = [QueryDict(view.query) for view in views]
    known = {name: _named(name, queries) for name in SavedViewFilter.KNOWN}
    counts: list[int | None] = [None] * len(views)
    counting = []
    for index, query in enumerate(queries):
        filters = SavedViewFilter(query, known=known, queryset=ExceptionItem.objects.all())
        if filters.is_valid():
            counting.append(
                filters.qs.order_by()
                .annotate(view=Value(index))
                .values("view")
                .annotate(n=Count("pk"))
                .values_list("view", "n")
            )
    if counting:
        for index, n in counting[0].union(*counting[1:], all=True):
            counts[index] = n
    return [{"view": view, "count": count} for view, count in zip(views, counts, strict=True)]
