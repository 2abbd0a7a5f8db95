"""WhatsApp texts end to end: RunRequested → executor-message → NATS request → waha-gateway →
WAHA simulator, with the gateway's per-session pacing off and on.

Starts a private nats-server (fsync on every write, as ``make run``) and PostgreSQL, then the
WAHA simulator, the waha-gateway and executor-message as separate processes (as deployed),
with two WORKING sessions (``default`` and ``second``) and a channel on each. Scenarios:

- ``off``: pacing off (``WAHA_SEND_RATE_PER_SECOND=0``). ``--runs`` runs of ``--recipients``
  recipients each are queued at once; printed: texts/s from the first publish to the last
  RunCompleted, run duration p50/p99, and the simulator's record checked for lost or
  duplicated texts.
- ``on``: pacing on (``--rate`` texts/s per session, ``--jitter-ms``). One run per session, of
  ``--paced`` recipients each, both at once; printed per session: the rate the simulator saw
  (texts after the first / time to the last), the most texts in any one-second window, and
  the smallest gap between two texts.

    .tools/bin/uv run --frozen --no-sync python bench/bench_messages.py [--only off,on]
        [--runs 200] [--recipients 10] [--concurrency 64] [--rate 5] [--paced 30]
        [--jitter-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_executor_message.testing import message_definition, publish_run, run_request
from chronoflow_platform import db
from chronoflow_platform.schema import channels

import benchstack

CLK_TCK = os.sysconf("SC_CLK_TCK")
WAHA_KEY = "bench-waha-key"
SESSIONS = ("default", "second")


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, in seconds."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    return 0.0


class Stack(benchstack.Stack):
    """nats-server + PostgreSQL in a temporary directory, and the services as processes."""

    def __init__(self) -> None:
        super().__init__("cf-bench-messages-", CHRONOFLOW_PROFILE="development")

    async def open(self) -> tuple[NatsClient, JetStreamContext, AsyncEngine]:
        nc, js = await self.start()
        return nc, js, db.create_engine(self.pg.url(), pool_size=2)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far, per process."""
        used = {s.name: cpu_seconds(s.proc.pid) for s in self.services}
        if self.nats.proc is not None:
            used["nats-server"] = cpu_seconds(self.nats.proc.pid)
        used["bench"] = cpu_seconds(os.getpid())
        return used


class Completions:
    """Counts RunCompleted events as they are recorded on cf.runs.>."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.last = 0.0
        self.changed = asyncio.Event()

    async def on_msg(self, msg: Msg) -> None:
        if (msg.headers or {}).get(names.EVENT_TYPE) != "run.completed":
            return
        body = json.loads(msg.data)
        self.statuses[body["status"]] += 1
        self.durations.append(body["durationMs"] / 1000)
        self.last = time.perf_counter()
        self.changed.set()

    async def until(self, count: int, within: float) -> None:
        async with asyncio.timeout(within):
            while sum(self.statuses.values()) < count:
                self.changed.clear()
                await self.changed.wait()


async def add_channels(engine: AsyncEngine) -> dict[str, str]:
    """A channel per session in the read model, as the projector writes them."""
    ids = {session: new_id() for session in SESSIONS}
    now = utc_now()
    async with engine.begin() as conn:
        for session, channel_id in ids.items():
            await conn.execute(
                channels.insert().values(
                    id=channel_id,
                    provider="WAHA",
                    name=session,
                    config={"session": session},
                    status="WORKING",
                    created_at=now,
                    updated_at=now,
                    version=1,
                )
            )
    return ids


def numbers(count: int, offset: int) -> list[str]:
    return [
        f"+55 11 9{(offset + n) // 10_000:04d}-{(offset + n) % 10_000:04d}" for n in range(count)
    ]


async def delivered(sim: httpx.AsyncClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await sim.get("/_sim/messages")).json()
    return found


async def spawn_gateway(stack: Stack, sim: httpx.AsyncClient, **pacing: str) -> benchstack.Service:
    """Start a waha-gateway in front of the simulator with the given pacing settings."""
    return await stack.spawn(
        "waha-gateway",
        "chronoflow_waha_gateway",
        WAHA_BASE_URL=str(sim.base_url).rstrip("/"),
        WAHA_API_KEY=WAHA_KEY,
        **pacing,
    )


async def scenario_off(
    stack: Stack,
    js: JetStreamContext,
    sim: httpx.AsyncClient,
    channel_ids: dict[str, str],
    completions: Completions,
    args: argparse.Namespace,
) -> None:
    gateway = await spawn_gateway(stack, sim, WAHA_SEND_RATE_PER_SECOND="0")
    total = args.runs * args.recipients
    await sim.delete("/_sim/messages")
    requests = [
        run_request(
            message_definition(
                channel_ids["default"], numbers(args.recipients, i * args.recipients)
            )
        )
        for i in range(args.runs)
    ]
    cpu_before = stack.cpu()
    started = time.perf_counter()
    await asyncio.gather(*(publish_run(js, r) for r in requests))
    queued = time.perf_counter() - started
    await completions.until(args.runs, within=600)
    elapsed = completions.last - started
    cpu = {name: used - cpu_before.get(name, 0.0) for name, used in stack.cpu().items()}
    record = await delivered(sim)
    per_chat = Counter(m["chatId"] for m in record)
    print(f"\n== pacing off: {args.runs} runs x {args.recipients} recipients = {total} texts ==")
    print(f"  queued in {queued * 1000:,.0f} ms; all runs recorded after {elapsed:.2f} s")
    print(
        f"  throughput          {total / elapsed:,.0f} texts/s ({args.runs / elapsed:,.1f} runs/s)"
    )
    print(
        f"  run duration        p50 {pct(completions.durations, 50) * 1000:,.0f} ms, "
        f"p99 {pct(completions.durations, 99) * 1000:,.0f} ms"
    )
    print(f"  run statuses        {dict(completions.statuses)}")
    print(
        f"  simulator record    {len(record)} texts, {len(per_chat)} chats, "
        f"lost {total - len(per_chat)}, duplicated {sum(c - 1 for c in per_chat.values())}"
    )
    print(
        "  CPU per text        "
        + ", ".join(f"{name} {used / total * 1000:.2f} ms" for name, used in sorted(cpu.items()))
    )
    stack.stop_service(gateway)


async def scenario_on(
    stack: Stack,
    js: JetStreamContext,
    sim: httpx.AsyncClient,
    channel_ids: dict[str, str],
    completions: Completions,
    args: argparse.Namespace,
) -> None:
    gateway = await spawn_gateway(
        stack,
        sim,
        WAHA_SEND_RATE_PER_SECOND=str(args.rate),
        WAHA_SEND_JITTER_MS=str(args.jitter_ms),
    )
    await sim.delete("/_sim/messages")
    before = sum(completions.statuses.values())
    requests = [
        run_request(message_definition(channel_ids[s], numbers(args.paced, 500_000 + i * 1000)))
        for i, s in enumerate(SESSIONS)
    ]
    started = time.perf_counter()
    await asyncio.gather(*(publish_run(js, r) for r in requests))
    await completions.until(before + len(requests), within=600)
    elapsed = completions.last - started
    record = await delivered(sim)
    print(
        f"\n== pacing on: {args.rate:g} texts/s per session, jitter {args.jitter_ms} ms; "
        f"{args.paced} texts on each of {len(SESSIONS)} sessions at once =="
    )
    for session in SESSIONS:
        times = sorted(
            datetime.fromisoformat(m["deliveredAt"]).timestamp()
            for m in record
            if m["session"] == session
        )
        span = times[-1] - times[0]
        window = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
        gap = min(b - a for a, b in itertools.pairwise(times))
        print(
            f"  {session:<8} {len(times)} texts in {span:.2f} s: {(len(times) - 1) / span:.2f} "
            f"texts/s (configured {args.rate:g}); most in any 1 s: {window}; "
            f"smallest gap {gap * 1000:.0f} ms"
        )
    total = len(record)
    print(f"  both     {total} texts, all runs recorded after {elapsed:.2f} s")
    stack.stop_service(gateway)


async def main(args: argparse.Namespace) -> None:
    stack = Stack()
    nc, js, engine = await stack.open()
    try:
        channel_ids = await add_channels(engine)
        simulator = await stack.spawn(
            "waha-simulator",
            "chronoflow_waha_simulator",
            WAHA_API_KEY=WAHA_KEY,
            WHATSAPP_START_SESSION=",".join(SESSIONS),
            WAHA_SIM_AUTO_PAIR_SECONDS="0",
            WAHA_SIM_STARTING_SECONDS="0.05",
        )
        await stack.spawn(
            "executor-message",
            "chronoflow_executor_message",
            EXECUTOR_MESSAGE_CONCURRENCY=str(args.concurrency),
        )
        completions = Completions()
        await nc.subscribe(names.RUNS_SUBJECTS, cb=completions.on_msg)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{simulator.port}", timeout=60
        ) as sim:
            for _ in range(100):
                statuses = [
                    s["status"]
                    for s in (
                        await sim.get("/api/sessions", headers={"X-Api-Key": WAHA_KEY})
                    ).json()
                ]
                if statuses == ["WORKING"] * len(SESSIONS):
                    break
                await asyncio.sleep(0.1)
            only = set(args.only.split(","))
            if "off" in only:
                await scenario_off(stack, js, sim, channel_ids, completions, args)
            if "on" in only:
                await scenario_on(stack, js, sim, channel_ids, completions, args)
    finally:
        await nc.drain()
        await engine.dispose()
        stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="off,on")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--recipients", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--paced", type=int, default=30)
    parser.add_argument("--jitter-ms", type=int, default=0)
    uvloop.run(main(parser.parse_args()))
