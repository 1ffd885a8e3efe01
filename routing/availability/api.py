"""People's availability over the API: GET/PUT /api/v1/people/{username}/availability/ and a calendar import.

Anyone with console access reads anyone's; only the person or an admin changes them (as in the console)."""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions.permissions import IsConsoleUser
from routing.availability import services


class TimeOffSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    start = serializers.DateTimeField(help_text="ISO 8601 with offset; the period starts here.")
    end = serializers.DateTimeField(help_text="ISO 8601 with offset; the period ends here (not included).")
    note = serializers.CharField(required=False, allow_blank=True, max_length=200)
    source = serializers.ChoiceField(
        choices=["manual", "ical"], read_only=True, help_text="ical: from the calendar feed (kept by a PUT)."
    )


class AvailabilityInSerializer(serializers.Serializer):
    timezone = serializers.CharField(help_text="IANA time zone, e.g. Europe/Berlin.")
    hours = serializers.DictField(
        child=serializers.ListField(child=serializers.ListField(child=serializers.CharField())),
        help_text='Weekday -> ranges, e.g. {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]}. A day left out is '
        'not worked; ["00:00", "24:00"] is the whole day.',
    )
    time_off = TimeOffSerializer(many=True, required=False, help_text="Replaces the manual periods.")


class AvailabilitySerializer(AvailabilityInSerializer):
    username = serializers.CharField()
    ical_url = serializers.CharField(help_text="The time-off calendar feed, read hourly; empty: none.")
    ical_read_at = serializers.DateTimeField(allow_null=True)
    ical_problem = serializers.CharField(help_text="Why the feed was not read last time; empty when it was.")
    available_now = serializers.BooleanField()
    why_not_now = serializers.CharField(help_text="Empty when available now.")
    next_available_at = serializers.DateTimeField(
        allow_null=True, help_text="Now when available; null when not back within 400 days."
    )


def _person(username: str):
    return get_object_or_404(get_user_model(), **{get_user_model().USERNAME_FIELD: username})


def _may_change(request, person) -> None:
    if not services.may_edit_availability(request.user, person):
        name = person.get_username()
        raise PermissionDenied(f"Only {name} or an admin changes {name}'s working hours and time off.")


class PersonAvailabilityView(APIView):
    permission_classes = [IsConsoleUser]
    parser_classes = [JSONParser]

    @extend_schema(responses={200: AvailabilitySerializer}, summary="A person's working hours and time off")
    def get(self, request, username):
        return Response(services.availability_of(_person(username), at=timezone.now()))

    @extend_schema(
        request=AvailabilityInSerializer,
        responses={
            200: AvailabilitySerializer,
            400: OpenApiResponse(description='Field -> [what to fix], e.g. {"hours.mon[0]": ["…"]}.'),
            403: OpenApiResponse(description="Not this person and not an admin."),
        },
        summary="Replace a person's time zone, week and manual time off",
    )
    def put(self, request, username):
        person = _person(username)
        _may_change(request, person)
        try:
            services.availability_replace(user=person, data=request.data, by=request.user)
        except services.AvailabilityInvalid as invalid:
            raise ValidationError({field: [message] for field, message in invalid.errors.items()}) from None
        return Response(services.availability_of(person, at=timezone.now()))


class PersonCalendarView(APIView):
    permission_classes = [IsConsoleUser]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "CalendarImportRequest",
                {
                    "file": serializers.FileField(required=False, help_text="An .ics file, up to 1 MB."),
                    "url": serializers.URLField(
                        required=False, help_text="Or a feed URL: kept, read now and hourly ('' forgets it)."
                    ),
                },
            )
        },
        responses={
            200: inline_serializer(
                "CalendarImport",
                {n: serializers.IntegerField() for n in ("added", "removed", "kept", "ignored")},
            ),
            400: OpenApiResponse(description="What is wrong with the file or feed."),
            403: OpenApiResponse(description="Not this person and not an admin."),
        },
        summary="Import time off from an iCalendar file, or set and read the person's feed URL",
    )
    def post(self, request, username):
        person = _person(username)
        _may_change(request, person)
        upload = request.FILES.get("file")
        try:
            if upload is not None:
                if upload.size > services.ical.MAX_CALENDAR_BYTES:
                    raise ValueError("the calendar is larger than 1024 KB; export a shorter range.")
                result = services.ical_import(user=person, content=upload.read(), by=request.user)
            elif hasattr(request.data, "get") and isinstance(request.data.get("url"), str):
                result = services.ical_feed_set(user=person, url=request.data["url"], by=request.user)
            else:
                raise ValidationError(
                    {"file": ['Send an .ics file as "file" (multipart), or JSON {"url": "https://…"}.']}
                )
        except ValueError as refused:
            raise ValidationError({"file" if upload is not None else "url": [str(refused)]}) from None
        return Response(result.__dict__)
