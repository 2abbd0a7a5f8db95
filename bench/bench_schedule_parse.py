"""Schedule parsing throughput over a representative mix of phrases (target: 20,000/s).

    .venv/bin/python bench/bench_schedule_parse.py [--seconds 2]

The mix is what clients send: natural language in English and Portuguese (with and without
accents, odd casing), cron expressions and macros, one-shots, and some invalid input, parsed
in several time zones. It also prints next_after calls/s for the parsed schedules.
"""

from __future__ import annotations

import argparse
import itertools
import time
from datetime import UTC, datetime

from chronoflow_schedule import ScheduleError, TimezoneError, next_after, parse

NOW = datetime(2026, 1, 15, 13, 0, tzinfo=UTC)
ZONES = ("America/Sao_Paulo", "UTC", "Europe/Berlin", "America/New_York")
MIX = (
    "every 15 minutes",
    "a cada 15 minutos",
    "todo dia às 8h",
    "todo dia as 08:00",
    "TODOS OS DIAS ÀS 8H30",
    "daily at 07:30",
    "every day at 7:30am",
    "every mon, wed and fri at 9am",
    "toda segunda-feira às 09:00",
    "dias úteis às 18h",
    "weekdays at 18:00",
    "fins de semana às 10h",
    "monthly on the 1st at 08:00",
    "todo mês no dia 10 às 9h",
    "every year on december 25 at 9am",
    "6h",
    "15m",
    "90 min",
    "de 6 em 6 horas",
    "de hora em hora",
    "hourly",
    "in 10 min",
    "daqui a 2 horas",
    "tomorrow at 9:00",
    "amanhã às 9h",
    "2026-12-01T09:00:00-03:00",
    "at 2026-12-01 09:00",
    "0 9 * * 1-5",
    "*/5 * * * *",
    "30 0 9 * * mon-fri",
    "@daily",
    "every day at 8",  # invalid: ambiguous hour
    "todo dia às 25h",  # invalid: hour 25
    "whenever",  # invalid: not a schedule
)


def _parse_rate(seconds: float) -> tuple[float, int]:
    cases = list(itertools.product(MIX, ZONES))
    done = errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for text, zone in cases:
            try:
                parse(text, zone, NOW)
            except (ScheduleError, TimezoneError):
                errors += 1
        done += len(cases)
    return done / (time.perf_counter() - started), errors


def _next_after_rate(seconds: float) -> float:
    schedules = []
    for text, zone in itertools.product(MIX, ZONES):
        try:
            schedules.append(parse(text, zone, NOW))
        except ScheduleError:
            continue
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for schedule in schedules:
            next_after(schedule, NOW)
        done += len(schedules)
    return done / (time.perf_counter() - started)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    _parse_rate(0.2)  # warm the zone and cron caches, as a running service has them
    rate, errors = _parse_rate(args.seconds)
    print(f"parse:      {rate:12,.0f} phrases/s  ({len(MIX)} phrases x {len(ZONES)} zones)")
    print(f"next_after: {_next_after_rate(args.seconds):12,.0f} calls/s")
    target = 20_000
    print(f"target:     {target:12,} phrases/s  -> {'OK' if rate >= target else 'BELOW TARGET'}")
    assert errors > 0  # the mix includes invalid input on purpose


if __name__ == "__main__":
    main()
