"""The scheduler under load: bursts, a steady stream, and 100,000 recurring chronos.

Starts a private nats-server (fsync on every write, as ``make run``) and PostgreSQL, the
projector and the scheduler as separate processes (as in production), appends ChronoCreated
events the way the api does, and measures what reaches the work queue:

- ``burst``: N one-shots due at the same instant: lost, duplicated, lateness p50/p99;
- ``spread``: N one-shots spread evenly over 60 s: lateness p50/p99/max;
- ``scale``: N recurring chronos (hourly, spread over the hour): scheduler RSS, start-up
  reconcile time, and restart-to-first-fire after a kill -9.

Lateness is the JetStream store time of each RunRequested minus the occurrence's due instant.

    .venv/bin/python bench/bench_scheduler.py [--only burst,spread,scale]
        [--burst 10000] [--spread 12000] [--scale 100000] [--plain-work]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoCreated, ChronoDefinition
from chronoflow_platform import jetstream
from chronoflow_platform.publishing import publish_event
from chronoflow_schedule import next_after
from chronoflow_scheduler.testing import every, http_definition, once

from benchstack import Service, Stack


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def ms(seconds: float) -> str:
    """Seconds as milliseconds for printing."""
    return f"{seconds * 1000:.1f} ms"


async def create_all(js: JetStreamContext, definitions: Iterator[ChronoDefinition]) -> list[str]:
    """Append ChronoCreated for each definition (as the api would), 256 at a time."""
    gate = asyncio.Semaphore(256)
    now = utc_now()

    async def one(definition: ChronoDefinition) -> str:
        chrono_id = new_id()
        event = ChronoCreated(
            chrono_id=chrono_id,
            definition=definition,
            next_run_at=next_after(definition.schedule, now),
        )
        async with gate:
            await publish_event(
                js,
                names.aggregate_subject("chrono", chrono_id),
                event,
                expected_last_subject_sequence=0,
            )
        return chrono_id

    return list(await asyncio.gather(*(one(d) for d in definitions)))


@dataclass(frozen=True)
class Stored:
    """A RunRequested as stored: which occurrence, and when JetStream stored it."""

    chrono_id: str
    scheduled_for: datetime
    stored_at: datetime

    @property
    def lateness(self) -> float:
        return (self.stored_at - self.scheduled_for).total_seconds()


class WorkTap:
    """Reads every RunRequested of the work queue without consuming it (from the start: a
    work-queue stream allows nothing else)."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self.seen: list[Stored] = []
        self._name = f"bench-{new_id()}"

    async def start(self) -> None:
        await self.js.add_consumer(
            names.WORK_STREAM,
            ConsumerConfig(
                name=self._name,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=3600,
                max_ack_pending=10_000_000,
                mem_storage=True,
                # Ephemeral consumers vanish after 5 idle seconds by default; setup takes longer.
                inactive_threshold=3600,
            ),
        )
        self._sub = await self.js.pull_subscribe_bind(self._name, stream=names.WORK_STREAM)

    async def _fetch(self, wait: float) -> int:
        try:
            msgs = await self._sub.fetch(2000, timeout=wait)
        except TimeoutError:
            return 0
        except APIError:  # a busy server answers a pull with 503 now and then
            await asyncio.sleep(0.1)
            return 0
        self.seen.extend(self._parse(m) for m in msgs)
        return len(msgs)

    async def until(self, count: int, within: float) -> list[Stored]:
        """Wait for ``count`` messages (or ``within`` seconds), then for the stragglers."""
        deadline = time.monotonic() + within
        while len(self.seen) < count and time.monotonic() < deadline:
            await self._fetch(1.0)
        while await self._fetch(2.0):
            pass
        return self.seen

    @staticmethod
    def _parse(msg: Msg) -> Stored:
        body = json.loads(msg.data)
        return Stored(
            chrono_id=body["chronoId"],
            scheduled_for=datetime.fromisoformat(body["scheduledFor"]),
            stored_at=msg.metadata.timestamp,
        )


async def wait_metric(service: Service, name: str, at_least: float, within: float) -> float:
    """Poll a service metric until it reaches ``at_least``; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        value = await service.metric(name)
        if value is not None and value >= at_least:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{name} did not reach {at_least} within {within}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by the scheduler, the projector and nats-server between two points."""

    def __init__(self, stack: Stack, scheduler: Service) -> None:
        assert stack.nats.proc is not None
        projector = next(s for s in stack.services if s.name == "projector")
        self._pids = {
            "scheduler": scheduler.proc.pid,
            "projector": projector.proc.pid,
            "nats-server": stack.nats.proc.pid,
        }
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def report(self, occurrences: int) -> None:
        """Print CPU per occurrence since the meter was made, in ms."""
        now = self._now()
        per = {name: (now[name] - self._start[name]) * 1000 / occurrences for name in now}
        parts = ", ".join(f"{name} {ms_each:.2f}" for name, ms_each in per.items())
        print(f"  CPU per occurrence (ms): {parts}; together {sum(per.values()):.2f}")


async def one_shots(
    stack: Stack, js: JetStreamContext, tap: WorkTap, scheduler: Service, dues: list[datetime]
) -> tuple[list[Stored], int]:
    """Create one-shots due at ``dues``; returns what was stored, and how many chronos."""
    t0 = time.monotonic()
    applied = await scheduler.metric("chronoflow_scheduler_chrono_events_total") or 0
    ids = await create_all(js, (http_definition(once(d)) for d in dues))
    await wait_metric(
        scheduler, "chronoflow_scheduler_chrono_events_total", applied + len(ids), 600
    )
    await projector_caught_up(js, 600)
    print(f"  created and armed {len(ids)} chronos in {time.monotonic() - t0:.1f} s")
    print(f"  scheduler RSS once armed {scheduler.rss_mb:.0f} MB")
    first = min(dues)
    if utc_now() > first - timedelta(seconds=5):
        print("  WARNING: arming finished late; rerun with a longer --margin")
    # From here on, what the occurrences cost: their fires, runs, follow-up writes, the
    # scheduler applying its own ChronoFinished events, and the projector applying them.
    cpu = CpuMeter(stack, scheduler)
    wait = (max(dues) - utc_now()).total_seconds()
    mine = set(ids)
    before = len(tap.seen)
    stored = await tap.until(before + len(ids), within=max(wait, 0) + 120)
    await wait_metric(
        scheduler, "chronoflow_scheduler_chrono_events_total", applied + 2 * len(ids), 120
    )
    await projector_caught_up(js, 120)
    cpu.report(len(ids))
    await report_fire_health(scheduler)
    return [s for s in stored if s.chrono_id in mine], len(ids)


async def report_fire_health(scheduler: Service) -> None:
    """What the scheduler says about its fires: late arrivals, retries, errors."""
    arrival = await scheduler.samples("chronoflow_scheduler_fire_arrival_lead_seconds_bucket")
    late = arrival.get('{le="0.0"}', 0.0)
    outcomes = await scheduler.samples("chronoflow_scheduler_fires_total")
    errors = await scheduler.metric("chronoflow_scheduler_publish_errors_total") or 0
    print(f"  fires arriving after their instant so far: {late:.0f}; write errors {errors:.0f}")
    print(f"  fire outcomes so far: { {k: int(v) for k, v in outcomes.items()} }")


async def bench_burst(
    stack: Stack, js: JetStreamContext, tap: WorkTap, scheduler: Service, n: int, margin: float
) -> None:
    print(f"burst: {n} one-shots due at the same instant")
    due = (utc_now() + timedelta(seconds=margin)).replace(microsecond=0)
    stored, created = await one_shots(stack, js, tap, scheduler, [due] * n)
    unique = {s.chrono_id for s in stored}
    lateness = [s.lateness for s in stored]
    print(f"  lost {created - len(unique)}, duplicated {len(stored) - len(unique)}")
    print(
        f"  emit lateness p50 {ms(pct(lateness, 50))}, p99 {ms(pct(lateness, 99))}, "
        f"max {ms(max(lateness))}, min {ms(min(lateness))}"
    )
    if os.environ.get("BENCH_KEEP"):
        print("  deciles", [ms(pct(lateness, p)) for p in range(0, 101, 10)])
    print(f"  scheduler RSS {scheduler.rss_mb:.0f} MB")


async def bench_spread(
    stack: Stack, js: JetStreamContext, tap: WorkTap, scheduler: Service, n: int, margin: float
) -> None:
    print(f"spread: {n} one-shots spread evenly over 60 s")
    start = utc_now() + timedelta(seconds=margin)
    dues = [start + timedelta(seconds=60 * i / n) for i in range(n)]
    stored, created = await one_shots(stack, js, tap, scheduler, dues)
    unique = {s.chrono_id for s in stored}
    lateness = [s.lateness for s in stored]
    print(f"  lost {created - len(unique)}, duplicated {len(stored) - len(unique)}")
    print(
        f"  emit lateness p50 {ms(pct(lateness, 50))}, p99 {ms(pct(lateness, 99))}, "
        f"max {ms(max(lateness))}"
    )


async def projector_caught_up(js: JetStreamContext, within: float) -> float:
    """Wait until the projector has applied everything in its streams; returns the seconds.

    A fire waits for its chrono's row: while the projector is behind on the creations, the
    chronos due soonest (the last created) cannot fire, whatever the scheduler does.
    """
    started = time.monotonic()
    while time.monotonic() - started < within:
        behind = 0
        for stream in (names.EVENTS_STREAM, names.RUNS_STREAM):
            info = await js.consumer_info(stream, names.PROJECTOR_DURABLE)
            behind += info.num_pending + info.num_ack_pending
        if not behind:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the projector did not catch up within {within}s")


async def bench_scale(stack: Stack, js: JetStreamContext, scheduler: Service, n: int) -> None:
    print(f"scale: {n} active recurring chronos (hourly, spread over the hour)")
    now = utc_now()
    anchors = (now - timedelta(seconds=3600 * i / n) for i in range(n))
    t0 = time.monotonic()
    await create_all(js, (http_definition(every(3600, a)) for a in anchors))
    await wait_metric(scheduler, "chronoflow_scheduler_chrono_events_total", n, 1800)
    print(f"  created and armed {n} chronos in {time.monotonic() - t0:.1f} s")
    lag = await projector_caught_up(js, 600)
    print(f"  projector caught up {lag:.1f} s later")
    fired = await scheduler.metric("chronoflow_scheduler_fires_total") or 0
    await wait_metric(scheduler, "chronoflow_scheduler_fires_total", fired + 1, 60)
    await asyncio.sleep(5)
    print(f"  scheduler RSS, steady, all armed and firing: {scheduler.rss_mb:.0f} MB")

    # kill -9, let occurrences come due, start again: reconcile and first fire.
    scheduler.kill()
    stack.services.remove(scheduler)
    await asyncio.sleep(5)
    nc = await jetstream.connect(stack.nats.url, name="bench-first-fire")
    first_fire: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def on_work(msg: Msg) -> None:
        if not first_fire.done():
            first_fire.set_result(time.monotonic())

    await nc.subscribe(names.WORK_SUBJECTS, cb=on_work)
    restarted = time.monotonic()
    again = await stack.spawn("scheduler", "chronoflow_scheduler")
    ready = time.monotonic() - restarted
    fired_at = await asyncio.wait_for(first_fire, timeout=60)
    print(
        f"  restart-to-first-fire {fired_at - restarted:.2f} s "
        f"(process start to /ready: {ready:.2f} s)"
    )
    peak = again.rss_mb
    started = time.monotonic()
    phases: dict[str, float] = {}
    while len(phases) < 2:
        phases = await again.samples("chronoflow_scheduler_reconcile_duration_seconds")
        peak = max(peak, again.rss_mb)
        await asyncio.sleep(0.25)
        if time.monotonic() - started > 600:
            raise TimeoutError("reconcile did not finish")
    repair, sweep = (phases[f'{{phase="{p}"}}'] for p in ("repair", "sweep"))
    print(f"  reconcile of {n} active chronos: {repair:.1f} s, then orphan sweep {sweep:.1f} s")
    print(f"  scheduler RSS during reconcile (peak) {peak:.0f} MB, after {again.rss_mb:.0f} MB")
    await nc.drain()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="burst,spread,scale")
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--spread", type=int, default=12_000)
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--margin", type=float, default=0, help="seconds to the first due")
    parser.add_argument(
        "--plain-work",
        action="store_true",
        help="refuse atomic batches on CF_WORK (each RunRequested then costs a disk sync)",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    stack = Stack("cf-bench-sched-")
    # A SIGTERM (a CI timeout) still stops the servers and removes the data directory.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        _, js = await stack.start()
        await stack.spawn("projector", "chronoflow_api.projector")
        scheduler = await stack.spawn("scheduler", "chronoflow_scheduler")
        work = (await js.stream_info(names.WORK_STREAM)).config
        if args.plain_work:
            work.allow_atomic = False
            await js.update_stream(work)
        print(f"nats-server fsync always; CF_WORK atomic batches: {bool(work.allow_atomic)}")
        print(f"scheduler RSS at start {scheduler.rss_mb:.0f} MB")
        # One reader for the whole run: a work-queue stream allows one unfiltered consumer.
        tap = WorkTap(js)
        await tap.start()
        if "burst" in only:
            margin = args.margin or 30 + args.burst / 250
            await bench_burst(stack, js, tap, scheduler, args.burst, margin)
        if "spread" in only:
            margin = args.margin or 30 + args.spread / 250
            await bench_spread(stack, js, tap, scheduler, args.spread, margin)
        if "scale" in only:
            if only & {"burst", "spread"}:
                # A fresh process: Python keeps the memory of the burst's held fires, and the
                # scale figures are about the number of chronos.
                scheduler.kill()
                stack.services.remove(scheduler)
                scheduler = await stack.spawn("scheduler", "chronoflow_scheduler")
                print(f"scale: fresh scheduler process, RSS at start {scheduler.rss_mb:.0f} MB")
            await bench_scale(stack, js, scheduler, args.scale)
    finally:
        stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
