"""Range ends as forms, API serializers and list filters read them, one convention everywhere (routing.days):
a bare date is its whole UTC day at either end, a date-time is an instant, and the end is never included.
So `until=2026-11-30` covers the 30th, and `until=2026-11-30T12:00Z` stops just before noon."""

import datetime as dt

from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from routing.days import DAY_OR_MOMENT_HINT, day_or_moment, range_end, range_start

# The OpenAPI schema of a range end: either form a person may type.
RANGE_END_SCHEMA = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
}


def range_bound(value: str, *, end: bool) -> dt.datetime:
    """`value` as where a range starts (end=False) or, exclusively, ends; ValueError saying what to type."""
    when = day_or_moment(value)
    return range_end(when) if end else range_start(when)


class RangeBoundField(forms.Field):
    """A form field for one end of a date range: cleans to the aware instant the range starts or ends at."""

    widget = forms.TextInput

    def __init__(self, *, end: bool, **kwargs):
        self.end = end
        kwargs.setdefault("help_text", DAY_OR_MOMENT_HINT[0].upper() + DAY_OR_MOMENT_HINT[1:] + ".")
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values or not str(value).strip():
            return None
        if isinstance(value, dt.datetime):  # an initial value, already an instant
            return value
        if len(str(value)) > 40:
            raise forms.ValidationError(f"Give {DAY_OR_MOMENT_HINT}.")
        try:
            return range_bound(str(value), end=self.end)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@extend_schema_field(RANGE_END_SCHEMA)
class RangeBoundSerializerField(serializers.Field):
    """A serializer field for one end of a date range (an API request body): the same convention."""

    def __init__(self, *, end: bool, **kwargs):
        self.end = end
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(f"Give {DAY_OR_MOMENT_HINT}, as a string.")
        try:
            return range_bound(data, end=self.end)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return value.isoformat()
