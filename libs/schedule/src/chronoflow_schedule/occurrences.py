"""Fire times: the next occurrence strictly after an instant, in UTC, with the DST rules.

croniter computes cron matches on the naive local wall clock, where calendar arithmetic has
no DST; :func:`chronoflow_schedule.zones.wall_to_instants` then maps each match to instants:
a skipped reading fires at the first instant after the gap, a repeated one fires once (its
first occurrence) unless the schedule fires every hour, whose second pass is a real hour of its
own. croniter's own time-zone mode is not used: it fires a daily 01:30 twice when clocks go
back and skips 02:00 on Lord Howe's 30-minute gap.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter

from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule.cronspec import CronSpec, compile_cron
from chronoflow_schedule.zones import wall_clock, wall_to_instants, zone

#: next_n refuses more than this many occurrences in one call.
MAX_OCCURRENCES = 1000


def next_after(schedule: NormalizedSchedule, instant: datetime) -> datetime | None:
    """The first fire time strictly after ``instant`` (aware), in UTC; None if there is none."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware")
    instant = instant.astimezone(UTC)
    if schedule.run_at is not None:
        return schedule.run_at if schedule.run_at > instant else None
    if schedule.every_seconds is not None and schedule.anchor is not None:
        return _next_interval(schedule.anchor, schedule.every_seconds, instant)
    if schedule.cron is not None:
        return _next_cron_memo(schedule.cron, schedule.timezone, instant)
    return None


# (cron, zone) -> (from, next): next_after(t) == next for every t in [from, next), because no
# fire time lies strictly between ``from`` and ``next``. Many chronos share a few schedules and
# are created or fired close together, so most look-ups skip croniter (≈100 µs a call).
_MEMO: OrderedDict[tuple[str, str], tuple[datetime, datetime | None]] = OrderedDict()
_MEMO_SIZE = 4096


def _next_cron_memo(cron: str, timezone: str, instant: datetime) -> datetime | None:
    key = (cron, timezone)
    hit = _MEMO.get(key)
    if hit is not None:
        start, found = hit
        if found is not None and start <= instant < found:
            _MEMO.move_to_end(key)
            return found
    found = _next_cron(compile_cron(cron), timezone, instant)
    _MEMO[key] = (instant, found)
    _MEMO.move_to_end(key)
    if len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return found


def next_n(schedule: NormalizedSchedule, instant: datetime, n: int) -> list[datetime]:
    """The next ``n`` fire times strictly after ``instant``, in UTC (fewer if the schedule ends)."""
    if not 0 <= n <= MAX_OCCURRENCES:
        raise ValueError(f"n must be between 0 and {MAX_OCCURRENCES}")
    found: list[datetime] = []
    current: datetime | None = instant
    while len(found) < n and current is not None:
        current = next_after(schedule, current)
        if current is not None:
            found.append(current)
    return found


def _next_interval(anchor: datetime, every_seconds: int, instant: datetime) -> datetime:
    period = timedelta(seconds=every_seconds)
    # The anchor is the creation instant, not an occurrence: the first fire is one period on.
    steps = max((instant - anchor) // period + 1, 1)
    return anchor + steps * period


def _next_cron(spec: CronSpec, timezone: str, instant: datetime) -> datetime | None:
    tz = zone(timezone)
    start = wall_clock(instant, tz)
    local = instant.astimezone(tz)
    if local.fold == 0:
        repeat = local.replace(fold=1).astimezone(UTC) - instant
        if repeat > timedelta(0):
            # The instant is in the first pass of a repeated hour: readings below its own may
            # still come round again in the second pass, so the search starts that far back.
            start -= repeat
    best: datetime | None = None
    for wall in _matches(spec, start):
        first, second = wall_to_instants(wall, tz)
        if best is not None and first >= best:
            # The first instant of a reading never decreases as readings increase, so no
            # later reading can fire sooner.
            break
        if first > instant and (best is None or first < best):
            best = first
        elif second is not None and spec.every_hour and second > instant:
            best = second if best is None else min(best, second)
    return best


def _matches(spec: CronSpec, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock readings matching the spec, strictly after ``start``, ascending."""
    walker = croniter(spec.expr, start, ret_type=datetime, second_at_beginning=spec.has_seconds)
    try:
        while True:
            yield walker.get_next(datetime)
    except CroniterBadDateError:
        # Nothing within croniter's 50-year horizon (only impossible dates; parse rejects them).
        return
