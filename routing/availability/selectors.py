"""Reading schedules: many people's at once, for a routing batch or a screen."""

import datetime as dt
from collections import defaultdict

from routing.availability.models import TimeOff, WorkingHours, schedule_of
from routing.availability.schedule import Schedule

# Time off read for a batch: what ends after now and starts before this far ahead (next_available_at's horizon
# for a held lead; a longer absence is still skipped now, and its end read again when it is near).
TIME_OFF_HORIZON = dt.timedelta(days=400)


def schedules_for(user_ids, *, at: dt.datetime) -> dict[int, Schedule | None]:
    """person id -> their Schedule (None: always in), in two queries however many people."""
    user_ids = list(set(user_ids))
    hours = {h.user_id: h for h in WorkingHours.objects.filter(user_id__in=user_ids)}
    away = defaultdict(list)
    for period in TimeOff.objects.filter(user_id__in=user_ids, end__gt=at, start__lt=at + TIME_OFF_HORIZON):
        away[period.user_id].append(period)
    return {user_id: schedule_of(hours.get(user_id), away[user_id]) for user_id in user_ids}
