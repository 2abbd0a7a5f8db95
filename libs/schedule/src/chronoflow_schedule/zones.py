"""Time zones from the pinned tzdata package, and wall-clock to instant with the DST rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from chronoflow_schedule.errors import TimezoneError


@cache
def _names() -> dict[str, str]:
    # The tzdata package, not the host's /usr/share/zoneinfo: the api and the scheduler run in
    # different images and must agree to the second on every offset.
    listing = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return {name.lower(): name for name in listing.split()}


@cache
def _load(name: str) -> ZoneInfo:
    path = resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    with path.open("rb") as handle:
        return ZoneInfo.from_file(handle, key=name)


@lru_cache(maxsize=1024)
def canonical_zone(name: str) -> str:
    """The IANA spelling of ``name`` (matched case-insensitively); TimezoneError if unknown."""
    canonical = _names().get(name.strip().lower()) if len(name) <= 64 else None
    if canonical is None:
        raise TimezoneError(name)
    return canonical


def zone(name: str) -> ZoneInfo:
    """The zone for an IANA name (any case); cached, so parsing stays fast."""
    return _load(canonical_zone(name))


def wall_to_instants(wall: datetime, tz: ZoneInfo) -> tuple[datetime, datetime | None]:
    """Map a naive local wall-clock reading to (first instant, second instant or None), in UTC.

    - a reading that exists once: that instant;
    - a reading repeated when clocks go back: its first occurrence, and the second;
    - a reading skipped when clocks go forward: the first instant after the gap.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return first, None
    if first < second:
        # PEP 495: fold=0 is the first occurrence of a repeated reading.
        return first, second
    # A gap: fold=0 applied the old offset (an instant after the transition) and fold=1 the
    # new one (an instant before it); the transition is the first instant after the gap.
    return _transition(second, first, tz), None


def _transition(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The first whole second in (low, high] whose UTC offset differs from low's."""
    # tzdb transitions fall on whole seconds, so integer bisection is exact.
    lo = math.floor(low.timestamp())
    hi = math.ceil(high.timestamp())
    offset = datetime.fromtimestamp(lo, tz).utcoffset()
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == offset:
            lo = middle
        else:
            hi = middle
    return datetime.fromtimestamp(hi, UTC)


def wall_clock(instant: datetime, tz: ZoneInfo) -> datetime:
    """The naive local wall-clock reading of an aware instant."""
    return instant.astimezone(tz).replace(tzinfo=None)
