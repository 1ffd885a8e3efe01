"""Demo availability: the triage lead keeps office hours in London and has a week off coming up, so Who is in
and her page show hours and time off. The members demo leads route to work all day (rules.json), so the demo
routes the same whenever it is run."""

import datetime as dt

from django.utils import timezone

from routing.availability.models import TimeOff, WorkingHours

OFFICE = {day: [["09:00", "17:30"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def demo_availability_seed(*, person) -> bool:
    """Once: returns whether it added anything."""
    if WorkingHours.objects.filter(user=person).exists():
        return False
    WorkingHours.objects.create(user=person, timezone="Europe/London", hours=OFFICE)
    start = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=7)
    TimeOff.objects.create(user=person, start=start, end=start + dt.timedelta(days=3), note="Conference")
    return True
