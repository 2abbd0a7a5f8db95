"""kill -9 the executor with 1,000 runs in flight: after a restart nothing is lost or doubled.

The executor runs as its own process (``python -m chronoflow_executor_http``), the sink is slowed
to 200 ms so that a kill lands while hundreds of requests are open, and one run in ten is
answered 503 at once the first time, so that retries are waiting in JetStream when it dies.
A second test kills it while it holds runs released ahead of their instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.js import JetStreamContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.projector.app import create_app as create_projector
from chronoflow_api.projector.consumer import load_checkpoint
from chronoflow_api.settings import ProjectorSettings
from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.runs import RunRequested
from chronoflow_devstack.embedded import NatsServer, free_port
from chronoflow_egress.signing import generate_secret
from chronoflow_executor_http.testing import (
    WebhookSink,
    http_definition,
    publish_run,
    run_request,
    slow,
    statuses,
    until,
)
from chronoflow_platform.executor.testing import TERMINAL
from chronoflow_platform.schema import chrono_runs

RUNS = 1000
FLAKY_EVERY = 10
SINK_DELAY_S = 0.2
ACK_WAIT_S = 4
RETRY_DELAY_MS = 3000

pytestmark = pytest.mark.slow


class ExecutorProcess:
    """``python -m chronoflow_executor_http`` as a child process, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> None:
        self.port = free_port()
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "chronoflow_executor_http",
                env={**os.environ, **self.env, "HTTP_PORT": str(self.port)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient() as client, asyncio.timeout(30):
            while True:
                assert self.proc.returncode is None, self.log.read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    ready = await client.get(f"http://127.0.0.1:{self.port}/ready")
                    if ready.status_code == 200:
                        return
                await asyncio.sleep(0.1)

    async def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
            async with asyncio.timeout(20):
                await self.proc.wait()

    async def stop(self) -> None:
        await self.kill(signal.SIGTERM)


@pytest.fixture
async def projector(
    nats_server: NatsServer, database_url: str, clean_stack: JetStreamContext
) -> AsyncIterator[FastAPI]:
    app = create_projector(
        ProjectorSettings.model_validate(
            {"NATS_URL": nats_server.url, "DATABASE_URL": database_url}
        )
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def executor_process(
    nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[ExecutorProcess]:
    process = ExecutorProcess(
        {
            "NATS_URL": nats_server.url,
            "CHRONOFLOW_PROFILE": "development",
            "CHRONOFLOW_WEBHOOK_SECRET": generate_secret(),
            "EXECUTOR_HTTP_CONCURRENCY": str(RUNS),
            "EXECUTOR_HTTP_ACK_WAIT_SECONDS": str(ACK_WAIT_S),
            "EXECUTOR_HTTP_SHUTDOWN_GRACE_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        },
        tmp_path / "executor-http.log",
    )
    yield process
    await process.stop()


async def final_history(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(chrono_runs))).mappings().all()
    by_occurrence: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_occurrence[row["occurrence_id"]].append(dict(row))
    for attempts in by_occurrence.values():
        attempts.sort(key=lambda r: r["attempt"])
    return by_occurrence


def finished(attempts: list[dict[str, Any]]) -> bool:
    return any(r["status"] in TERMINAL and not r["will_retry"] for r in attempts)


async def test_kill_9_with_1000_runs_in_flight_loses_nothing_and_doubles_nothing(
    js: JetStreamContext,
    engine: AsyncEngine,
    projector: FastAPI,
    executor_process: ExecutorProcess,
) -> None:
    async with WebhookSink(default=slow(SINK_DELAY_S)) as sink:
        chrono_ids = [new_id() for _ in range(10)]
        base = utc_now().replace(microsecond=0)
        requests: list[RunRequested] = []
        for i in range(RUNS):
            flaky = i % FLAKY_EVERY == 0
            path = f"/flaky/{i}" if flaky else "/hook"
            if flaky:
                sink.on(path, statuses(503, 200))
            definition = http_definition(
                sink.url(path), payload={"n": i}, attempts=3, delay_ms=RETRY_DELAY_MS
            )
            requests.append(
                run_request(
                    definition,
                    chrono_id=chrono_ids[i % len(chrono_ids)],
                    scheduled_for=base + timedelta(milliseconds=i),
                )
            )
        await asyncio.gather(*(publish_run(js, r) for r in requests))

        await executor_process.start()

        async def mid_flight() -> bool:
            # Every run taken by the executor, a few hundred requests at the sink, and some
            # retries waiting in JetStream.
            if len(sink.received) < 300:
                return False
            info = await js.consumer_info(names.WORK_STREAM, names.EXECUTOR_DURABLES["http"])
            return bool(info.num_pending == 0) and await retries_waiting(js) >= 5

        async with asyncio.timeout(30):
            await until(mid_flight, interval=0.02)
        await executor_process.kill()
        seen_at_kill = len(sink.received)
        consumer = await js.consumer_info(names.WORK_STREAM, names.EXECUTOR_DURABLES["http"])
        unacked_at_kill = consumer.num_ack_pending
        retries_waiting_at_kill = await retries_waiting(js)
        async with asyncio.timeout(10):
            await until(lambda: projected(js, engine), interval=0.1)
        at_kill = await final_history(engine)
        completed_at_kill = sum(1 for attempts in at_kill.values() if finished(attempts))
        # The kill landed with hundreds of the 1,000 runs still open (how many depends on how
        # busy the machine is; the printed summary says).
        assert unacked_at_kill >= RUNS // 3, unacked_at_kill
        assert completed_at_kill < RUNS * 2 // 3, completed_at_kill
        assert retries_waiting_at_kill > 0

        restarted = time.monotonic()
        await executor_process.start()
        occurrences = {r.occurrence_id: r for r in requests}

        async def all_finished() -> bool:
            history = await final_history(engine)
            return len(history) == RUNS and all(finished(a) for a in history.values())

        async with asyncio.timeout(40):
            await until(all_finished, interval=0.25)
            recovered_s = time.monotonic() - restarted
            # Nothing left to run or waiting to be retried.
            await until(lambda: work_queue_empty(js), interval=0.25)
        history = await final_history(engine)

    # Exactly one terminal outcome per run, none lost, no attempt left RUNNING.
    assert set(history) == set(occurrences)
    retried = 0
    for occurrence, attempts in history.items():
        assert [r["attempt"] for r in attempts] == list(range(1, len(attempts) + 1))
        assert all(r["status"] in TERMINAL for r in attempts), attempts
        assert [r["will_retry"] for r in attempts] == [True] * (len(attempts) - 1) + [False]
        assert attempts[-1]["status"] == "SUCCESS", attempts
        assert len({r["id"] for r in attempts}) == len(attempts)
        assert all(r["occurrence_id"] == occurrence for r in attempts)
        retried += len(attempts) > 1
    # Every retry waiting in JetStream when the process died was run after the restart. (A
    # flaky run whose 503 the dead process never recorded was sent again and got its 200.)
    assert retried >= retries_waiting_at_kill

    # Every delivery of one run, duplicates included, carried that run's webhook-id.
    deliveries: dict[int, list[str | None]] = defaultdict(list)
    for received in sink.received:
        deliveries[json.loads(received.body)["n"]].append(received.webhook_id)
    assert set(deliveries) == set(range(RUNS))
    for n, ids in deliveries.items():
        assert set(ids) == {requests[n].occurrence_id}, (n, ids)
    expected = sum(len(a) for a in history.values())
    duplicates = len(sink.received) - expected
    print(
        f"\nkill -9 after {seen_at_kill} deliveries with {unacked_at_kill} runs unacknowledged; "
        f"{len(sink.received)} deliveries for {expected} recorded attempts "
        f"({duplicates} duplicates, all with their run's webhook-id); {retried} runs retried, "
        f"{retries_waiting_at_kill} of them waiting in JetStream at the kill; history complete "
        f"{recovered_s:.1f} s after the restart began ({completed_at_kill} finished at the kill)"
    )


async def test_kill_9_while_holding_runs_released_ahead_runs_each_once_at_its_instant(
    js: JetStreamContext,
    engine: AsyncEngine,
    projector: FastAPI,
    executor_process: ExecutorProcess,
) -> None:
    held = RUNS // 2
    async with WebhookSink() as sink:
        # Due after the kill and after ack_wait brings them back: the restarted process holds
        # them again until their instant.
        due = utc_now() + timedelta(seconds=ACK_WAIT_S + 3)
        requests = [
            run_request(http_definition(sink.url(), payload={"n": i}), scheduled_for=due)
            for i in range(held)
        ]
        await asyncio.gather(*(publish_run(js, r) for r in requests))
        await executor_process.start()

        async def all_held() -> bool:
            info = await js.consumer_info(names.WORK_STREAM, names.EXECUTOR_DURABLES["http"])
            return bool(info.num_pending == 0 and info.num_ack_pending == held)

        async with asyncio.timeout(10):
            await until(all_held, interval=0.05)
        await executor_process.kill()
        assert utc_now() < due
        assert sink.received == []
        await executor_process.start()

        async def all_finished() -> bool:
            history = await final_history(engine)
            return len(history) == held and all(finished(a) for a in history.values())

        async with asyncio.timeout(30):
            await until(all_finished, interval=0.25)
            await until(lambda: work_queue_empty(js), interval=0.25)
        history = await final_history(engine)

    assert {r.occurrence_id for r in requests} == set(history)
    for attempts in history.values():
        [attempt] = attempts
        assert attempt["status"] == "SUCCESS"
        assert attempt["started_at"] >= attempt["scheduled_for"]
    # Each run reached the receiver once, and none before its instant.
    assert sorted(r.webhook_id or "" for r in sink.received) == sorted(history)
    assert min(r.at for r in sink.received) >= due.timestamp()


async def projected(js: JetStreamContext, engine: AsyncEngine) -> bool:
    """Whether the projector has applied everything recorded so far."""
    last = (await js.stream_info(names.RUNS_STREAM)).state.last_seq
    async with engine.connect() as conn:
        applied = await load_checkpoint(conn, names.RUNS_STREAM)
    return applied >= last


async def retries_waiting(js: JetStreamContext) -> int:
    """Retries stored as schedules in CF_WORK, not yet due."""
    every_retry = names.work_retry_subject("http", "any").removesuffix(".any") + ".>"
    info = await js.stream_info(names.WORK_STREAM, subjects_filter=every_retry)
    return len(info.state.subjects or {})


async def work_queue_empty(js: JetStreamContext) -> bool:
    return (await js.stream_info(names.WORK_STREAM)).state.messages == 0
