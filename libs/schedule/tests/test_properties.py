"""Property tests: next_after agrees with a brute-force walk of the clock, fire times increase.

The oracle knows nothing of croniter or of the library's DST code: it walks UTC minutes (or
seconds), reads each one's local wall clock in the zone and tests the cron fields directly,
applying the rules as the spec states them: a reading skipped by a gap fires at the first
instant after the gap; a repeated reading fires once, at its first occurrence, unless the
schedule fires every hour (then each pass of the repeated hour is a real hour and fires).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from typing import NamedTuple
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule import next_after, next_n, parse

CREATED = datetime(1999, 1, 1, tzinfo=UTC)
DST_ZONES = (
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # 30-minute shift
    "America/Sao_Paulo",  # changed at midnight until 2019
    "Europe/Dublin",  # negative DST in tzdb
    "Antarctica/Troll",  # 2-hour shift
    "America/Santiago",
)
OTHER_ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns")
FIELD_RANGES = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 6)}


class Cron(NamedTuple):
    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    def matches(self, wall: datetime) -> bool:
        if wall.second not in self.seconds or wall.minute not in self.minutes:
            return False
        if wall.hour not in self.hours or wall.month not in self.months:
            return False
        on_day = wall.day in self.days
        on_weekday = wall.isoweekday() % 7 in self.weekdays
        if len(self.days) < 31 and len(self.weekdays) < 7:
            return on_day or on_weekday  # cron's rule when both day fields are restricted
        return on_day and on_weekday


@st.composite
def _field(draw: st.DrawFn, name: str, wide: bool) -> tuple[str, frozenset[int]]:
    low, high = FIELD_RANGES[name]
    kind = draw(st.sampled_from(("*", "*", "one", "list", "range", "step", "range-step")))
    if kind == "*" and wide:
        return "*", frozenset(range(low, high + 1))
    if kind in ("*", "one"):
        value = draw(st.integers(low, high))
        return str(value), frozenset({value})
    if kind == "list":
        values = draw(st.lists(st.integers(low, high), min_size=2, max_size=4, unique=True))
        return ",".join(map(str, values)), frozenset(values)
    start = draw(st.integers(low, high))
    end = draw(st.integers(start, high))
    if kind == "range":
        return f"{start}-{end}", frozenset(range(start, end + 1))
    step = draw(st.integers(1, max(1, (high - low) // 2)))
    if kind == "step":
        return f"*/{step}", frozenset(range(low, high + 1, step))
    return f"{start}-{end}/{step}", frozenset(range(start, end + 1, step))


@st.composite
def crons(draw: st.DrawFn, with_seconds: bool = False) -> Cron:
    # Day and month fields lean to "*" so that most schedules fire within the oracle's window.
    minute = draw(_field("minute", wide=False))
    hour = draw(_field("hour", wide=draw(st.booleans())))
    dom = draw(_field("dom", wide=True)) if draw(st.integers(0, 4)) == 0 else ("*", _all("dom"))
    month = (
        draw(_field("month", wide=True)) if draw(st.integers(0, 6)) == 0 else ("*", _all("month"))
    )
    dow = draw(_field("dow", wide=True)) if draw(st.integers(0, 3)) == 0 else ("*", _all("dow"))
    fields = [minute, hour, dom, month, dow]
    seconds = frozenset({0})
    if with_seconds:
        second = draw(_field("minute", wide=False))
        seconds = second[1]
        fields.insert(0, second)
    text = " ".join(f for f, _ in fields)
    return Cron(text, seconds, minute[1], hour[1], dom[1], month[1], dow[1])


def _all(name: str) -> frozenset[int]:
    low, high = FIELD_RANGES[name]
    return frozenset(range(low, high + 1))


@cache
def _transitions(zone: str) -> tuple[datetime, ...]:
    """Every UTC offset change of the zone in 2000-2035, found by sampling and bisection."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    instant = datetime(2000, 1, 1, tzinfo=UTC)
    offset = instant.astimezone(tz).utcoffset()
    while instant.year < 2036:
        later = instant + timedelta(hours=12)
        if later.astimezone(tz).utcoffset() != offset:
            low, high = instant, later
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = later.astimezone(tz).utcoffset()
        instant = later
    return tuple(found)


@st.composite
def near_transitions(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and an instant within a day and a half of one of its DST changes."""
    zone = draw(st.sampled_from(DST_ZONES))
    transition = draw(st.sampled_from(_transitions(zone)))
    offset = draw(st.integers(-36 * 3600, 36 * 3600))
    micro = draw(st.sampled_from((0, 0, 250_000)))
    return zone, transition + timedelta(seconds=offset, microseconds=micro)


def oracle(
    cron: Cron, zone: str, instant: datetime, step: timedelta, limit: int
) -> datetime | None:
    """The first fire strictly after ``instant`` found by walking the clock, or None."""
    tz = ZoneInfo(zone)
    every_hour = len(cron.hours) == 24
    here = instant.replace(microsecond=0) + timedelta(seconds=1)
    if step == timedelta(minutes=1):
        here = instant.replace(second=0, microsecond=0) + step
    previous = (here - step).astimezone(tz).utcoffset()
    assert previous is not None
    for _ in range(limit):
        local = here.astimezone(tz)
        offset = local.utcoffset()
        assert offset is not None
        if offset > previous:
            # Clocks jumped forward: the readings they skipped fire now, at the gap's end.
            skipped = (here + previous).replace(tzinfo=None)
            while skipped < (here + offset).replace(tzinfo=None):
                if cron.matches(skipped):
                    return here
                skipped += step
        second_pass = local.fold == 1 and local.replace(fold=0).utcoffset() != offset
        if cron.matches(local.replace(tzinfo=None)) and (every_hour or not second_pass):
            return here
        previous = offset
        here += step
    return None


def _schedule(cron: Cron, zone: str) -> NormalizedSchedule:
    return parse(cron.text, zone, CREATED)


_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WINDOW = 2 * 24 * 60  # minutes the oracle walks


@_SETTINGS
@given(crons(), near_transitions())
def test_cron_next_after_agrees_with_the_minute_oracle_across_dst(
    cron: Cron, where: tuple[str, datetime]
) -> None:
    zone, instant = where
    schedule = _schedule(cron, zone)
    for _ in range(3):
        expected = oracle(cron, zone, instant, timedelta(minutes=1), WINDOW)
        actual = next_after(schedule, instant)
        if expected is None:
            assert actual is None or actual > instant + timedelta(minutes=WINDOW)
            return
        assert actual == expected, f"{cron.text} in {zone} after {instant.isoformat()}"
        instant = actual


@settings(max_examples=60, deadline=None)
@given(
    crons(),
    st.sampled_from(DST_ZONES + OTHER_ZONES),
    st.datetimes(
        min_value=datetime(1990, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2037, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
)
def test_cron_next_after_agrees_with_the_minute_oracle_anywhere(
    cron: Cron, zone: str, instant: datetime
) -> None:
    expected = oracle(cron, zone, instant, timedelta(minutes=1), WINDOW)
    actual = next_after(_schedule(cron, zone), instant)
    if expected is None:
        assert actual is None or actual > instant + timedelta(minutes=WINDOW)
    else:
        assert actual == expected


@settings(max_examples=40, deadline=None)
@given(crons(with_seconds=True), near_transitions())
def test_seconds_cron_agrees_with_the_second_oracle_across_dst(
    cron: Cron, where: tuple[str, datetime]
) -> None:
    zone, instant = where
    window = 4 * 3600
    expected = oracle(cron, zone, instant, timedelta(seconds=1), window)
    actual = next_after(_schedule(cron, zone), instant)
    if expected is None:
        assert actual is None or actual > instant + timedelta(seconds=window)
    else:
        assert actual == expected


PHRASES = st.sampled_from(
    (
        "hourly",
        "every 15 minutes",
        "6h",
        "7h",
        "every 45 seconds",
        "every 30 seconds",
        "daily at 02:30",
        "todo dia às 1h30",
        "weekdays at 18:00",
        "todo dia 31 às 23h",
        "every year on february 29 at 02:00",
        "@weekly",
        "*/5 1-3 * * *",
        "30 30 1 * * *",
    )
)


@settings(max_examples=150, deadline=None)
@given(PHRASES, near_transitions())
def test_fire_times_strictly_increase(phrase: str, where: tuple[str, datetime]) -> None:
    zone, instant = where
    schedule = parse(phrase, zone, instant - timedelta(days=3))
    fires = next_n(schedule, instant, 12)
    assert fires
    assert fires[0] > instant
    assert all(a < b for a, b in pairwise(fires))
    assert all(t.tzinfo is UTC and t.microsecond == 0 for t in fires)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(("every 7 hours", "90 min", "every 45 seconds", "a cada 36 horas")),
    near_transitions(),
    st.integers(0, 10**7),
)
def test_anchored_intervals_keep_their_period_in_elapsed_time(
    phrase: str, where: tuple[str, datetime], later: int
) -> None:
    zone, created = where
    schedule = parse(phrase, zone, created)
    assert schedule.every_seconds is not None
    assert schedule.anchor is not None
    period = timedelta(seconds=schedule.every_seconds)
    instant = created + timedelta(seconds=later)
    fired = next_after(schedule, instant)
    assert fired is not None
    assert (fired - schedule.anchor) % period == timedelta(0)
    assert timedelta(0) < fired - instant <= period
