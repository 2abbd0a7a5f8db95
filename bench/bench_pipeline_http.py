"""Webhooks end to end: api → scheduler → executor-http → a local sink → projector → history.

Starts a private nats-server (fsync on every write, as ``make run``) and PostgreSQL, the
projector and N executor-http replicas as separate processes (as deployed), and a sink on
127.0.0.1 inside this process. Then, per scenario:

- ``burst``: N runs due at the same instant;
- ``spread``: N runs due evenly over ``--spread-seconds``;
- ``sustained``: a backlog of N runs due at once, measured as a steady drain rate.

How runs become due (``--via``):

- ``executor`` (default): the runs go straight into the work queue — all queued ahead with
  the executors' durable consumer paused until the instant (burst, sustained), or each
  published at its due instant (spread) — so nothing but nats-server stands between the
  due instant and the executors;
- ``scheduler``: one-shot ChronoCreated events are appended as the api does, and the
  scheduler (its own process) fires them into the work queue,
  ``SCHEDULER_RELEASE_AHEAD_SECONDS`` before their instant (the executors hold them until it);
- ``api``: the whole pipeline. The api runs too (its own process), and every run is a
  one-shot chrono created with ``POST /chronos`` (``cron``: its instant in ISO 8601), 16
  requests at a time, before the scheduler fires it as above.

Printed per scenario: delivered, lost and duplicated runs (by ``webhook-id``), delivery
lateness (sink arrival minus the due instant) p50/p99/max and where it was spent (due → in
the work queue → an executor started the run → the sink had it), drain rate, the time until
the run history is complete after the last delivery, and the CPU each process used per run
from half a second before the first run can be in the work queue (through the scheduler, also
all processes' CPU since the chronos were created, fire preparation and holding included).

    .venv/bin/python bench/bench_pipeline_http.py [--only burst,spread,sustained]
        [--burst 10000] [--spread 10000] [--spread-seconds 30] [--sustained 30000]
        [--replicas 1] [--concurrency 200] [--via executor|scheduler|api] [--fire-lead 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import aiohttp
import httptools
import uvloop
from cryptography.fernet import Fernet
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import PubAck
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import encode, names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoCreated, ChronoDefinition
from chronoflow_contracts.runs import occurrence_id, run_request_msg_id
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_egress.signing import generate_secret
from chronoflow_executor_http.testing import http_definition, run_request
from chronoflow_platform import apikeys, db
from chronoflow_platform.executor.rules import schedule_header
from chronoflow_platform.publishing import event_headers, publish_event
from chronoflow_platform.schema import chrono_runs
from chronoflow_scheduler.settings import SchedulerSettings

import benchstack

CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of the processes, in seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine used so far (from /proc/stat), in seconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children(pid: int) -> list[int]:
    """``pid`` and its direct children (PostgreSQL's backends)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry.name))
    return found


class Sink:
    """A lean webhook receiver: the first arrival time of each webhook-id, and a count.

    A bare asyncio protocol over httptools (the parser uvicorn uses) rather than an aiohttp
    app: the sink shares the two cores with the pipeline it measures, and aiohttp's server
    spent ~0.09 ms of CPU per request routing, building request objects and a response —
    work a real receiver would do on its own machine.
    """

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.deliveries: Counter[str] = Counter()
        self.last_arrival = 0.0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SinkConnection(self), "127.0.0.1", 0, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def arrived(self, webhook_id: str) -> None:
        now = time.time()
        self.deliveries[webhook_id] += 1
        self.first.setdefault(webhook_id, now)
        self.last_arrival = now


class _SinkConnection(asyncio.Protocol):
    """One keep-alive connection: every complete request is answered ``200 ok``."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._webhook_id = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.write(BAD_REQUEST)
            self._transport.close()

    # httptools' callbacks, by name.
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self._webhook_id = value.decode()

    def on_message_complete(self) -> None:
        self._sink.arrived(self._webhook_id)
        self._webhook_id = ""
        assert self._transport is not None
        self._transport.write(OK)


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Stack(benchstack.Stack):
    """nats-server + PostgreSQL in a temporary directory, the services, the sink."""

    def __init__(self) -> None:
        super().__init__("cf-bench-http-")
        self.sink = Sink()

    async def open(self) -> tuple[NatsClient, JetStreamContext, AsyncEngine]:
        nc, js = await self.start()
        await self.sink.start()
        return nc, js, db.create_engine(self.pg.url(), pool_size=2)

    def pids(self) -> dict[str, list[int]]:
        """Process ids per role, for CPU accounting."""
        groups: dict[str, list[int]] = {"bench+sink": [os.getpid()]}
        for service in self.services:
            role = (
                service.name.split("-")[0] if service.name.startswith("executor") else service.name
            )
            groups.setdefault(role, []).append(service.proc.pid)
        if self.nats.proc is not None:
            groups["nats-server"] = [self.nats.proc.pid]
        if self.pg.proc is not None:
            groups["postgres"] = children(self.pg.proc.pid)
        return groups

    async def close(self) -> None:
        await self.sink.stop()
        self.stop()


#: A run ready to publish: due instant, occurrence id, body, headers.
Prepared = tuple[datetime, str, bytes, dict[str, str]]


@dataclass
class Scenario:
    name: str
    due: list[datetime]
    chrono_ids: list[str] = field(default_factory=list)
    occurrences: dict[str, datetime] = field(default_factory=dict)
    #: When each run was published to the work queue, by occurrence id: by this process
    #: (``--via executor``, spread) or by the scheduler (``--via scheduler``, as heard here).
    published: dict[str, float] = field(default_factory=dict)
    releasing: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Api:
    """The api process and a key for it (``--via api``)."""

    url: str
    key: str


async def arm_via_executor(js: JetStreamContext, stack: Stack, scenario: Scenario) -> None:
    """Make each run due at its instant with as little as possible in between.

    All due at once: the executors' durable consumer is paused until that instant and the runs
    are queued before it, so nats-server hands them all out at the instant. Spread: this
    process holds the runs and publishes each at its due instant, as the scheduler does (a
    JetStream ``@at`` schedule would add nats-server's own release delay, up to a second).
    """
    url = f"http://127.0.0.1:{stack.sink.port}/hook"
    definition = http_definition(url, payload={"bench": scenario.name}, attempts=1)
    subject = names.work_subject("http")
    prepared: list[Prepared] = []
    for chrono_id, due in zip(scenario.chrono_ids, scenario.due, strict=True):
        request = run_request(definition, chrono_id=chrono_id, scheduled_for=due)
        scenario.occurrences[request.occurrence_id] = due
        headers = event_headers(request, msg_id=run_request_msg_id(chrono_id, due, 1))
        prepared.append((due, request.occurrence_id, encode(request), headers))
    if len(set(scenario.due)) == 1:
        # Held until every run is queued, however long that takes on a busy machine; then
        # they all become due at one instant, which is what lateness is measured from.
        await pause_executors(js, utc_now() + timedelta(hours=1))
        window = asyncio.Semaphore(1024)

        async def queue(body: bytes, headers: dict[str, str]) -> None:
            async with window:
                await js.publish(subject, body, headers=headers)

        await asyncio.gather(*(queue(body, headers) for _, _, body, headers in prepared))
        due = utc_now() + timedelta(seconds=1.5)
        await pause_executors(js, due)
        scenario.due = [due] * len(scenario.due)
        scenario.occurrences = dict.fromkeys(scenario.occurrences, due)
        return
    scenario.releasing = asyncio.get_running_loop().create_task(
        release(js, subject, sorted(prepared, key=lambda p: p[0]), scenario.published)
    )


async def pause_executors(js: JetStreamContext, until: datetime) -> None:
    """Hold the executors' durable consumer until ``until``."""
    await js.pause_consumer(
        names.WORK_STREAM,
        names.EXECUTOR_DURABLES["http"],
        schedule_header(until).removeprefix("@at "),
    )


async def release(
    js: JetStreamContext, subject: str, prepared: list[Prepared], published: dict[str, float]
) -> None:
    """Publish each prepared run at its due instant (acks awaited in the background)."""
    pending: set[asyncio.Future[PubAck]] = set()
    for due, occurrence, body, headers in prepared:
        wait = due.timestamp() - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        published[occurrence] = time.time()
        ack = await js.publish_async(subject, body, headers=headers)
        pending.add(ack)
        ack.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)


async def listen_for_releases(nc: NatsClient, scenario: Scenario) -> Subscription:
    """Note when the scheduler put each run in the work queue (a plain subscription)."""

    async def heard(msg: Msg) -> None:
        occurrence = json.loads(msg.data).get("occurrenceId")
        if isinstance(occurrence, str):
            scenario.published.setdefault(occurrence, time.time())

    return await nc.subscribe(names.work_subject("http"), cb=heard, pending_msgs_limit=-1)


async def arm_via_api(nc: NatsClient, stack: Stack, scenario: Scenario, api: Api) -> Subscription:
    """One one-shot chrono per run, created with ``POST /chronos``; the scheduler fires them."""
    listening = await listen_for_releases(nc, scenario)
    body = {
        "name": f"bench {scenario.name}",
        "url": f"http://127.0.0.1:{stack.sink.port}/hook",
        "method": "POST",
        "payload": {"bench": scenario.name},
        "config": {"retry": {"attempts": 1}},
    }
    gate = asyncio.Semaphore(16)
    scenario.chrono_ids = []

    async def one(client: aiohttp.ClientSession, due: datetime) -> None:
        async with gate, client.post("/chronos", json={**body, "cron": due.isoformat()}) as r:
            created = await r.json()
            if r.status != 201:
                raise RuntimeError(f"POST /chronos answered {r.status}: {created}")
        chrono_id = created["id"]
        scenario.chrono_ids.append(chrono_id)
        # The instant the api parsed from the phrase is the one the run is due at.
        at = datetime.fromisoformat(created["nextRunAt"])
        scenario.occurrences[occurrence_id(chrono_id, at)] = at

    # aiohttp as the load generator, as bench_api_create.py: httpx's own transport costs ~1 ms
    # of CPU a request.
    headers = {"Authorization": f"Bearer {api.key}"}
    async with aiohttp.ClientSession(base_url=api.url, headers=headers) as client:
        await asyncio.gather(*(one(client, due) for due in scenario.due))
    return listening


async def arm_via_scheduler(
    nc: NatsClient, js: JetStreamContext, stack: Stack, scenario: Scenario
) -> Subscription:
    """One one-shot chrono per run, created as the api does; the scheduler fires them.

    Returns a plain subscription to the work queue's subject that notes when the scheduler
    published each run, which splits its firing lag from the executors' queueing.
    """
    listening = await listen_for_releases(nc, scenario)
    url = f"http://127.0.0.1:{stack.sink.port}/hook"
    template = http_definition(url, payload={"bench": scenario.name}, attempts=1)
    gate = asyncio.Semaphore(256)
    scenario.chrono_ids = []

    async def one(due: datetime) -> None:
        chrono_id = new_id()
        scenario.chrono_ids.append(chrono_id)
        schedule = NormalizedSchedule(type="once", run_at=due, timezone="UTC", description="once")
        definition: ChronoDefinition = template.model_copy(
            update={"schedule": schedule, "cron": "once"}
        )
        scenario.occurrences[occurrence_id(chrono_id, schedule.run_at or due)] = due
        event = ChronoCreated(chrono_id=chrono_id, definition=definition, next_run_at=due)
        async with gate:
            await publish_event(
                js,
                names.aggregate_subject("chrono", chrono_id),
                event,
                expected_last_subject_sequence=0,
            )

    await asyncio.gather(*(one(due) for due in scenario.due))
    return listening


async def started_at(engine: AsyncEngine) -> dict[str, float]:
    """When an executor began each run (its RunStarted), by occurrence id."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(chrono_runs.c.occurrence_id, chrono_runs.c.started_at))
        return {occurrence: at.timestamp() for occurrence, at in rows if at is not None}


def stages(
    scenario: Scenario, arrived: dict[str, float], started: dict[str, float]
) -> list[tuple[str, list[float]]]:
    """Where the lateness goes: due → in the work queue (where known) → an executor started
    the run (its RunStarted) → the sink had it."""
    due = {occurrence: at.timestamp() for occurrence, at in scenario.occurrences.items()}
    ids = [i for i in arrived if i in started and i in due]
    found: list[tuple[str, list[float]]] = []
    if scenario.published:
        pub = scenario.published
        found.append(("due → in the work queue", [pub[i] - due[i] for i in ids if i in pub]))
        found.append(
            ("work queue → executor start", [started[i] - pub[i] for i in ids if i in pub])
        )
    else:
        found.append(("due → executor start", [started[i] - due[i] for i in ids]))
    found.append(("executor start → sink", [arrived[i] - started[i] for i in ids]))
    return found


async def history_count(engine: AsyncEngine) -> int:
    """Terminal run rows (the table is emptied before each scenario)."""
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(chrono_runs)
            .where(chrono_runs.c.status.in_(["SUCCESS", "FAILED", "TIMEOUT"]))
        )
    return int(count or 0)


async def run_scenario(
    nc: NatsClient,
    js: JetStreamContext,
    engine: AsyncEngine,
    stack: Stack,
    scenario: Scenario,
    via: str,
    api: Api | None = None,
) -> dict[str, float]:
    sink = stack.sink
    sink.first.clear()
    sink.deliveries.clear()
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE chrono_runs, chrono_run_state"))
    # One chrono per run: an occurrence is (chrono, instant), and a burst shares the instant.
    scenario.chrono_ids = [new_id() for _ in scenario.due]
    pids = stack.pids()
    # Through the api, the whole cost of a chrono counts from its POST, less the load
    # generator's (which a real client spends on its own machine).
    services_before = sum(cpu_seconds(p) for role, p in pids.items() if role != "bench+sink")
    armed = time.monotonic()
    listening: Subscription | None = None
    if api is not None:
        listening = await arm_via_api(nc, stack, scenario, api)
    elif via == "scheduler":
        listening = await arm_via_scheduler(nc, js, stack, scenario)
    else:
        await arm_via_executor(js, stack, scenario)
    expected = len(scenario.occurrences)
    first_due = min(scenario.due).timestamp()
    last_due = max(scenario.due).timestamp()
    print(
        f"  armed {expected:,} runs in {time.monotonic() - armed:.1f} s; "
        f"first due in {first_due - time.time():.1f} s"
    )
    cpu_armed = sum(cpu_seconds(p) for p in pids.values())
    # The window starts half a second before the first run can enter the work queue: the
    # instant, or the scheduler's release ahead of it.
    ahead = SchedulerSettings().release_ahead_seconds if via != "executor" else 0.0
    await asyncio.sleep(max(0.0, first_due - time.time() - ahead - 0.5))
    cpu_before = {role: cpu_seconds(p) for role, p in pids.items()}
    machine_before = machine_cpu_seconds()
    started = time.time()

    # Until every run arrived (or nothing new arrives for 15 s after the last due instant).
    stalled_since = time.monotonic()
    seen = 0
    cpu_at_due: dict[str, float] | None = None
    while len(sink.first) < expected:
        await asyncio.sleep(0.05)
        if cpu_at_due is None and time.time() >= first_due:
            cpu_at_due = {role: cpu_seconds(p) for role, p in pids.items()}
        if len(sink.first) != seen:
            seen = len(sink.first)
            stalled_since = time.monotonic()
        elif time.time() > last_due and time.monotonic() - stalled_since > 15:
            break
    last_delivery = sink.last_arrival
    while await history_count(engine) < expected:
        await asyncio.sleep(0.05)
        if time.time() - last_delivery > 60:
            break
    history_done = time.time()
    cpu_after = {role: cpu_seconds(p) for role, p in pids.items()}
    machine_used = machine_cpu_seconds() - machine_before
    if listening is not None:
        await listening.unsubscribe()

    delivered = [wid for wid in sink.first if wid in scenario.occurrences]
    lateness = [sink.first[wid] - scenario.occurrences[wid].timestamp() for wid in delivered]
    duplicates = sum(sink.deliveries[wid] - 1 for wid in delivered)
    arrivals = sorted(sink.first[wid] for wid in delivered)
    span = max(arrivals[-1] - max(first_due, started), 1e-9) if arrivals else 0.0
    result = {
        "delivered": len(delivered),
        "lost": expected - len(delivered),
        "duplicated": duplicates,
        "p50": pct(lateness, 50),
        "p99": pct(lateness, 99),
        "max": max(lateness),
        "drain_rate": len(delivered) / span if span else 0.0,
        "history_after_last": history_done - last_delivery,
    }
    print(
        f"  delivered {result['delivered']:,}  lost {result['lost']:,}  "
        f"duplicated {result['duplicated']:,}\n"
        f"  lateness p50 {ms(result['p50'])}  p99 {ms(result['p99'])}  max {ms(result['max'])}\n"
        f"  drain rate {result['drain_rate']:,.0f} runs/s (first due → last delivery)\n"
        f"  history complete {ms(result['history_after_last'])} after the last delivery"
    )
    for name, values in stages(scenario, sink.first, await started_at(engine)):
        if values:
            print(
                f"    {name}: p50 {ms(pct(values, 50))}  p99 {ms(pct(values, 99))}  "
                f"max {ms(max(values))}"
            )
    used = {role: cpu_after[role] - cpu_before[role] for role in pids}
    wall = history_done - started
    shares = [
        f"{role} {used[role] / max(expected, 1) * 1000:.2f} ms ({used[role] / wall:.0%} of a core)"
        for role in sorted(used)
    ]
    print("  CPU per run: " + ", ".join(shares))
    if ahead and cpu_at_due is not None and len(set(scenario.due)) == 1:
        # What the release ahead left for the drain itself.
        after = {role: cpu_after[role] - cpu_at_due[role] for role in pids}
        print(
            "    of which after the instant: "
            + ", ".join(f"{r} {after[r] / max(expected, 1) * 1000:.2f} ms" for r in sorted(after))
        )
    ours = sum(used.values())
    per_run = ours / max(expected, 1)
    if via != "executor":
        # Preparing and holding the fires happens before the window: count it here.
        if api is None:
            whole = sum(cpu_after.values()) - cpu_armed
            since = "since the chronos were created (fires prepared, held, released, runs, history)"
        else:
            whole = sum(v for r, v in cpu_after.items() if r != "bench+sink") - services_before
            since = (
                "since the first POST /chronos (created, projected, armed, fired, held, "
                "released, run, recorded; not the load generator)"
            )
        print(f"  {since}: {whole / max(expected, 1) * 1000:.2f} ms of CPU per run")
    # Only a saturated run says what the processes can do; a trickle mostly measures idling.
    if len(set(scenario.due)) == 1:
        print(
            f"  all of it: {per_run * 1000:.2f} ms of CPU per run, so at most "
            f"{(os.cpu_count() or 1) / per_run:,.0f} runs/s if these processes had the "
            f"{os.cpu_count()} cores to themselves"
        )
    print(
        f"  the machine's {os.cpu_count()} cores were {machine_used / wall:.0%} busy "
        f"(of one core): {ours / wall:.0%} this benchmark, {(machine_used - ours) / wall:.0%} "
        f"everything else; load average {os.getloadavg()[0]:.1f}"
    )
    return result


def evenly(count: int, start: datetime, seconds: float) -> list[datetime]:
    step = seconds / max(count - 1, 1)
    return [start + timedelta(seconds=i * step) for i in range(count)]


async def main(args: argparse.Namespace) -> None:
    stack = Stack()
    nc: NatsClient | None = None
    try:
        nc, js, engine = await stack.open()
        await stack.spawn("projector", "chronoflow_api.projector")
        executor_env = {
            "CHRONOFLOW_PROFILE": "development",
            "CHRONOFLOW_WEBHOOK_SECRET": generate_secret(),
            "EXECUTOR_HTTP_CONCURRENCY": str(args.concurrency),
            "EXECUTOR_HTTP_FETCH_BATCH": str(min(args.concurrency, 256)),
        }
        for i in range(args.replicas):
            await stack.spawn(f"executor-http-{i}", "chronoflow_executor_http", **executor_env)
        api: Api | None = None
        if args.via == "api":
            _, key = await apikeys.create_key(engine, "bench")
            service = await stack.spawn(
                "api",
                "chronoflow_api",
                CHRONOFLOW_PROFILE="development",
                CHRONOFLOW_SECRETS_KEY=Fernet.generate_key().decode(),
            )
            api = Api(f"http://127.0.0.1:{service.port}", key)
        if args.via != "executor":
            scheduler_env = (
                {"SCHEDULER_FIRE_LEAD_SECONDS": str(args.fire_lead)} if args.fire_lead else {}
            )
            await stack.spawn("scheduler", "chronoflow_scheduler", **scheduler_env)
        print(
            f"executor-http x{args.replicas} (concurrency {args.concurrency} each), projector, "
            f"nats-server, PostgreSQL, sink; runs due via {args.via}; data in {stack.dir}"
        )
        only = set(args.only.split(","))
        # Time to create (scheduler) or prepare (executor) every run before the first is due.
        lead, per_run = {"executor": (3.0, 1 / 20_000), "scheduler": (15.0, 1 / 800)}.get(
            args.via, (15.0, 1 / 400)
        )
        if "burst" in only:
            at = utc_now() + timedelta(seconds=lead + args.burst * per_run)
            print(f"\nburst: {args.burst:,} runs due at the same instant")
            await run_scenario(
                nc, js, engine, stack, Scenario("burst", [at] * args.burst), args.via, api
            )
        if "spread" in only:
            start = utc_now() + timedelta(seconds=lead + args.spread * per_run)
            print(f"\nspread: {args.spread:,} runs due evenly over {args.spread_seconds:.0f} s")
            due = evenly(args.spread, start, args.spread_seconds)
            await run_scenario(nc, js, engine, stack, Scenario("spread", due), args.via, api)
        if "sustained" in only:
            at = utc_now() + timedelta(seconds=lead + args.sustained * per_run)
            print(f"\nsustained: a backlog of {args.sustained:,} runs, drained")
            await run_scenario(
                nc, js, engine, stack, Scenario("sustained", [at] * args.sustained), args.via, api
            )
        await engine.dispose()
    finally:
        if nc is not None:
            await nc.drain()
        await stack.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="burst,spread,sustained")
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--spread", type=int, default=10_000)
    parser.add_argument("--spread-seconds", type=float, default=30.0)
    parser.add_argument("--sustained", type=int, default=30_000)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--via", choices=["executor", "scheduler", "api"], default="executor")
    # The scheduler's fire lead (SCHEDULER_FIRE_LEAD_SECONDS, default 20 s): 30,000 fires due
    # at one instant need longer to come out of nats-server on a 2-core box.
    parser.add_argument("--fire-lead", type=float, default=None)
    uvloop.run(main(parser.parse_args()))
