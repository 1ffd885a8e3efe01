"""The distribution report on screen, as CSV, and in the API: thin, over routing/availability/report.py."""

import datetime as dt

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views import View
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from exceptions.permissions import ConsoleAccessMixin, IsConsoleUser
from routing.availability.report import (
    distribution_csv,
    distribution_report,
    period_bounds,
    report_as_dict,
    report_range,
)
from routing.models import DistributionPeriod, Queue


class SkippedSerializer(serializers.Serializer):
    away = serializers.IntegerField(help_text="Picks sat out on time off.")
    out_of_hours = serializers.IntegerField()
    at_cap = serializers.IntegerField()
    unavailable = serializers.IntegerField(help_text="Marked unavailable in the queue.")


class MemberShareSerializer(serializers.Serializer):
    member = serializers.CharField()
    in_queue_now = serializers.BooleanField()
    assigned = serializers.IntegerField(help_text="Leads the queue's strategy gave them in the period.")
    share = serializers.FloatField(help_text="Their part of the period's leads, 0–1.")
    expected_while_in = serializers.FloatField(help_text="Fair share over the picks they were eligible for.")
    expected_if_always_in = serializers.FloatField(help_text="Fair share had they been eligible for every pick.")
    difference = serializers.FloatField(help_text="assigned − expected_while_in.")
    credited_back = serializers.IntegerField(help_text="Turns given back after leads were taken from them.")
    skipped = SkippedSerializer()
    explanation = serializers.CharField()


class DistributionSerializer(serializers.Serializer):
    queue = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField(help_text="Included.")
    total = serializers.IntegerField()
    policies = serializers.DictField(child=serializers.CharField())
    members = MemberShareSerializer(many=True)


class DistributionView(ConsoleAccessMixin, View):
    def get(self, request, pk):
        queue = get_object_or_404(Queue, pk=pk)
        today = timezone.now().date()
        problem = ""
        try:
            start, end, period = report_range(request.GET, queue=queue, today=today)
        except ValueError as exc:
            problem = f"Showing this {queue.get_distribution_period_display().lower()} instead: {exc}"
            start, end = period_bounds(queue.distribution_period, today)
            period = queue.distribution_period
        report = distribution_report(queue=queue, start=start, end=end)
        if request.GET.get("format") == "csv":
            response = HttpResponse(content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="distribution-{queue.pk}-{start}-{end}.csv"'
            distribution_csv(report, response)
            return response
        step = {"day": dt.timedelta(days=1), "week": dt.timedelta(days=7)}.get(period)
        previous = (start - (step or dt.timedelta(days=1))) if period else None
        following = (end + dt.timedelta(days=1)) if period else None
        return render(
            request,
            "console/distribution.html",
            {
                "report": report,
                "queue": queue,
                "queues": Queue.objects.order_by("name").only("pk", "name"),
                "period": period,
                "periods": DistributionPeriod.choices,
                "previous": previous,
                "following": following if following and following <= today else None,
                "problem": problem,
                "csv_query": request.GET.urlencode(),
            },
        )


class DistributionApiView(APIView):
    permission_classes = [IsConsoleUser]

    @extend_schema(
        parameters=[
            OpenApiParameter("period", str, enum=DistributionPeriod.values, description="Default: the queue's."),
            OpenApiParameter("date", dt.date, description="A day in the period; default today (UTC)."),
            OpenApiParameter("start", dt.date, description="Or a range: first day (UTC), with end."),
            OpenApiParameter("end", dt.date, description="Last day (UTC), included; at most 366 days."),
        ],
        responses={200: DistributionSerializer},
        summary="A queue's distribution: expected vs actual share per member and why members were skipped",
    )
    def get(self, request, pk):
        queue = get_object_or_404(Queue, pk=pk)
        try:
            start, end, _ = report_range(request.query_params, queue=queue, today=timezone.now().date())
        except ValueError as exc:
            name, _, message = str(exc).partition(": ")
            raise ValidationError({name: [message]}) from None
        return Response(report_as_dict(distribution_report(queue=queue, start=start, end=end)))
