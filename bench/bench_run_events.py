"""Run events alone: what an executor replica's RunStarted/RunCompleted cost in CF_RUNS.

Starts a private nats-server (fsync on every write, as ``make run``) with the streams
provisioned and, in this process, one ``RunLedger`` on one connection, as an executor replica
has. Each run is opened (RunStarted queued, not awaited, as executor-http does), its work
takes ``--work-ms`` (a webhook to a nearby receiver) and it is closed (RunCompleted stored).
Scenarios:

- ``steady``: ``--rate`` runs/s for ``--seconds`` (one replica's share of the pipeline
  benchmark's spread: 333 runs/s over two replicas);
- ``burst``: ``--burst`` runs at once, ``--concurrency`` at a time (the consumer's slots).

Printed first: nats-server's CPU while idle (3 s). Then per scenario: stored writes (atomic
batches plus lone messages: one request and acknowledgement each) per run, the CPU nats-server
and this process used per run, and how long ``close()`` took (what the work message's ack
waits for) p50/p99/max. How many disk syncs nats-server does is not visible here: count them
with ``strace -c -f -e trace=fsync,pwrite64 -p <nats-server pid>`` during a scenario.

    .venv/bin/python bench/bench_run_events.py [--only steady,burst] [--rate 167]
        [--seconds 20] [--burst 5000] [--concurrency 200] [--work-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import uvloop
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from chronoflow_contracts import names
from chronoflow_contracts.runs import RunStatus
from chronoflow_executor_http.testing import http_definition, run_request
from chronoflow_platform.executor.metrics import RunMetrics
from chronoflow_platform.executor.recording import EventRecorder
from chronoflow_platform.executor.runs import RunLedger

import benchstack

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def writes(js: JetStreamContext, first: int, last: int) -> int:
    """Stored writes among the stream's messages first..last: one per batch or lone message."""
    batches: Counter[str] = Counter()
    for seq in range(first, last + 1):
        raw = await js.get_msg(names.RUNS_STREAM, seq)
        batches[(raw.headers or {}).get("Nats-Batch-Id") or f"lone-{seq}"] += 1
    return len(batches)


async def scenario(
    name: str, js: JetStreamContext, ledger: RunLedger, nats_pid: int, args: argparse.Namespace
) -> None:
    definition = http_definition("http://127.0.0.1:9/hook")
    closing: list[float] = []
    work = args.work_ms / 1000

    async def one() -> None:
        run = ledger.open(run_request(definition))
        await asyncio.sleep(work)
        finished = run.finish()
        began = time.perf_counter()
        await ledger.close(run, finished, status=RunStatus.SUCCESS, due=None)
        closing.append(time.perf_counter() - began)

    first = (await js.stream_info(names.RUNS_STREAM)).state.last_seq + 1
    nats_before, own_before = cpu_seconds(nats_pid), cpu_seconds(os.getpid())
    began = time.perf_counter()
    if name == "steady":
        count = int(args.rate * args.seconds)
        tasks = []
        for n in range(count):
            delay = began + n / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        label = f"{count:,} runs at {args.rate:g} runs/s"
    else:
        count = args.burst
        slots = asyncio.Semaphore(args.concurrency)

        async def slotted() -> None:
            async with slots:
                await one()

        await asyncio.gather(*(slotted() for _ in range(count)))
        label = f"{count:,} runs at once, {args.concurrency} at a time"
    elapsed = time.perf_counter() - began
    nats_cpu = cpu_seconds(nats_pid) - nats_before
    own_cpu = cpu_seconds(os.getpid()) - own_before
    last = (await js.stream_info(names.RUNS_STREAM)).state.last_seq
    stored = await writes(js, first, last)
    print(f"{name}: {label}, work {args.work_ms:g} ms, {elapsed:.1f} s")
    print(f"  events {last - first + 1:,}  writes {stored:,} ({stored / count:.2f} per run)")
    print(
        f"  CPU per run: nats-server {nats_cpu / count * 1000:.2f} ms, "
        f"this process {own_cpu / count * 1000:.2f} ms"
    )
    print(
        f"  close() p50 {pct(closing, 50) * 1000:.1f} ms  p99 {pct(closing, 99) * 1000:.1f} ms"
        f"  max {max(closing) * 1000:.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    stack = benchstack.Stack("cf-bench-events-")
    try:
        nc, js = await stack.start()
        assert stack.nats.proc is not None
        metrics = RunMetrics.register(CollectorRegistry(), "http", duration_help="bench")
        recorder = EventRecorder(nc, js)
        ledger = RunLedger(js=js, recorder=recorder, metrics=metrics)
        idle = cpu_seconds(stack.nats.proc.pid)
        await asyncio.sleep(3)
        idle = cpu_seconds(stack.nats.proc.pid) - idle
        print(f"nats-server idle: {idle / 3 * 100:.0f}% of a core")
        for name in args.only.split(","):
            await scenario(name, js, ledger, stack.nats.proc.pid, args)
        await recorder.close()
        await nc.drain()
    finally:
        stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="steady,burst")
    parser.add_argument("--rate", type=float, default=167.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--work-ms", type=float, default=2.0)
    uvloop.run(main(parser.parse_args()))
