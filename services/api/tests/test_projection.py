"""The read models are a pure fold of the streams: a rebuild reproduces them row for row, and
random command sequences project to exactly what a plain-Python fold of the events says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.app import create_app
from chronoflow_api.projector.app import create_app as create_projector
from chronoflow_api.projector.rebuild import rebuild
from chronoflow_api.settings import ApiSettings, ProjectorSettings
from chronoflow_contracts import decode, names
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import RunCompleted, RunStatus, occurrence_id, run_id
from chronoflow_devstack.embedded import NatsServer
from chronoflow_platform.publishing import publish_event
from chronoflow_platform.schema import PROJECTION_TABLES, chronos

from .conftest import SECRETS_KEY


@asynccontextmanager
async def running_api(
    nats_server: NatsServer, database_url: str, key: str
) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_SECRETS_KEY": SECRETS_KEY,
    }
    projector = create_projector(ProjectorSettings.model_validate(env))
    api = create_app(ApiSettings.model_validate(env))
    async with projector.router.lifespan_context(projector), api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {key}"}
        ) as client:
            yield client


async def snapshot(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    out = {}
    async with engine.connect() as conn:
        for table in PROJECTION_TABLES:
            order = list(table.primary_key.columns)
            rows = (await conn.execute(select(table).order_by(*order))).all()
            out[table.name] = [dict(r._mapping) for r in rows]
    return out


async def test_rebuild_reproduces_every_row(  # noqa: PLR0917 - fixtures
    clean_stack: JetStreamContext,
    nats_server: NatsServer,
    database_url: str,
    engine: AsyncEngine,
    nc: NatsClient,
    api_key: str,
) -> None:
    async with running_api(nats_server, database_url, api_key) as client:
        channel = (await client.post("/channels", json={"name": "wa"})).json()
        function = (
            await client.post("/functions", json={"name": "f", "code": "export default 1"})
        ).json()
        await client.patch(f"/functions/{function['id']}", json={"code": "export default 2"})
        ids = []
        for i in range(6):
            r = await client.post(
                "/chronos",
                json={
                    "name": f"c{i}",
                    "cron": "every 2 hours",
                    "url": "https://example.com/x",
                    "headers": {"Authorization": "Bearer t"},
                },
            )
            ids.append(r.json()["id"])
        await client.patch(f"/chronos/{ids[1]}", json={"name": "renamed"})
        await client.post(f"/chronos/{ids[2]}/pause")
        await client.post(f"/chronos/{ids[3]}/pause")
        await client.post(f"/chronos/{ids[3]}/resume")
        await client.delete(f"/chronos/{ids[4]}")
        await client.post(f"/chronos/{ids[5]}/trigger")
        await client.patch(f"/channels/{channel['id']}", json={"name": "wa2"})
        when = (await client.get(f"/chronos/{ids[0]}")).json()["createdAt"]
        from datetime import datetime

        at = datetime.fromisoformat(when)
        occ = occurrence_id(ids[0], at)
        ack = await publish_event(
            clean_stack,
            names.runs_subject(ids[0]),
            RunCompleted(
                chrono_id=ids[0],
                run_id=run_id(occ, 1),
                occurrence_id=occ,
                scheduled_for=at,
                target_type=TargetType.HTTP,
                status=RunStatus.FAILED,
                started_at=at,
                finished_at=at,
                duration_ms=3,
                http_status=500,
                error_message="HTTP 500",
                will_retry=True,
            ),
        )
        watermark = client._transport.app.state.runtime.state["watermark"]  # type: ignore[attr-defined]
        assert await watermark.wait_for(names.RUNS_STREAM, ack.seq, limit=10)
    before = await snapshot(engine)
    assert len(before["chronos"]) == 5
    assert len(before["chrono_runs"]) == 1
    targets = await rebuild(nc, engine)
    assert targets[names.EVENTS_STREAM] > 0
    after = await snapshot(engine)
    assert after == before


Op = tuple[str, int, str]
ops = st.lists(
    st.tuples(
        st.sampled_from(["create", "rename", "recron", "pause", "resume", "delete", "trigger"]),
        st.integers(min_value=0, max_value=3),
        st.sampled_from(["a", "b", "c"]),
    ),
    min_size=1,
    max_size=12,
)
CRONS = {"a": "every 2 hours", "b": "todo dia as 08:00", "c": "*/5 * * * *"}


def fold(events: list[tuple[int, Any]]) -> dict[str, dict[str, Any]]:
    """The chrono read model in plain Python, straight from the events (the spec of the SQL)."""
    state: dict[str, dict[str, Any]] = {}
    for seq, e in events:
        if e.TYPE in ("chrono.created", "chrono.updated"):
            state[e.chrono_id] = {
                "name": e.definition.name,
                "cron": e.definition.cron,
                "is_active": e.definition.is_active,
                "version": seq,
            }
        elif e.TYPE == "chrono.paused":
            state[e.chrono_id] |= {"is_active": False, "version": seq}
        elif e.TYPE == "chrono.resumed":
            state[e.chrono_id] |= {"is_active": True, "version": seq}
        elif e.TYPE == "chrono.triggered":
            state[e.chrono_id] |= {"version": seq}
        elif e.TYPE == "chrono.deleted":
            del state[e.chrono_id]
    return state


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=ops)
async def test_projection_equals_a_pure_fold_of_the_events(
    client: httpx.AsyncClient, js: JetStreamContext, engine: AsyncEngine, sequence: list[Op]
) -> None:
    ids: list[str] = []
    for op, index, arg in sequence:
        if op == "create" or not ids:
            r = await client.post(
                "/chronos",
                json={"name": f"p-{arg}", "cron": CRONS[arg], "url": "https://example.com/p"},
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            continue
        cid = ids[index % len(ids)]
        if op == "rename":
            r = await client.patch(f"/chronos/{cid}", json={"name": f"n-{arg}"})
        elif op == "recron":
            r = await client.patch(f"/chronos/{cid}", json={"cron": CRONS[arg]})
        elif op == "delete":
            r = await client.delete(f"/chronos/{cid}")
        else:
            r = await client.post(f"/chronos/{cid}/{op}")
        # Commands on a deleted chrono are refused, which is part of the behaviour under test.
        assert r.status_code in (200, 202, 204, 404), r.text

    events: list[tuple[int, Any]] = []
    for cid in ids:
        sub = await js.subscribe(names.aggregate_subject("chrono", cid), ordered_consumer=True)
        info = await js.stream_info(
            names.EVENTS_STREAM, subjects_filter=names.aggregate_subject("chrono", cid)
        )
        count = sum((info.state.subjects or {}).values())
        for _ in range(count):
            msg = await sub.next_msg(timeout=5)
            assert msg.headers is not None
            e = decode(
                msg.headers[names.EVENT_TYPE], int(msg.headers[names.EVENT_VERSION]), msg.data
            )
            events.append((msg.metadata.sequence.stream, e))
        await sub.unsubscribe()
    events.sort(key=lambda x: x[0])
    expected = fold(events)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    chronos.c.id,
                    chronos.c.name,
                    chronos.c.cron,
                    chronos.c.is_active,
                    chronos.c.version,
                ).where(chronos.c.id.in_(ids))
            )
        ).all()
    actual = {
        r.id: {"name": r.name, "cron": r.cron, "is_active": r.is_active, "version": r.version}
        for r in rows
    }
    assert actual == expected


async def test_a_batch_touching_one_chrono_twice_applies_in_order(engine: AsyncEngine) -> None:
    from datetime import UTC, datetime, timedelta

    from chronoflow_api.projector import views
    from chronoflow_contracts import new_id
    from chronoflow_platform.schema import chrono_run_state

    cid = new_id()
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    batch = []
    outcomes: tuple[tuple[int, Literal[RunStatus.FAILED, RunStatus.SUCCESS]], ...] = (
        (1, RunStatus.FAILED),
        (2, RunStatus.SUCCESS),
    )
    for attempt, status in outcomes:
        occ = occurrence_id(cid, t0)
        started = t0 + timedelta(seconds=attempt)
        batch.append(
            (
                RunCompleted(
                    chrono_id=cid,
                    run_id=run_id(occ, attempt),
                    occurrence_id=occ,
                    scheduled_for=t0,
                    attempt=attempt,
                    target_type=TargetType.HTTP,
                    status=status,
                    started_at=started,
                    finished_at=started,
                    duration_ms=1,
                    will_retry=attempt == 1,
                ),
                attempt,
            )
        )
    async with engine.begin() as conn:
        await views.run_events(conn, batch)
        state = (
            await conn.execute(select(chrono_run_state).where(chrono_run_state.c.chrono_id == cid))
        ).one()
    assert state.last_run_status == "SUCCESS"
    assert state.last_run_id == run_id(occurrence_id(cid, t0), 2)


async def test_run_events_interleaved_in_one_batch_apply_in_stream_order(
    engine: AsyncEngine,
) -> None:
    """Starts and outcomes of runs in flight interleave; one batch of them (one statement)
    ends where applying them one by one would: each attempt's outcome, and the newest run as
    the chrono's last."""
    from datetime import UTC, datetime, timedelta

    from chronoflow_api.projector import views
    from chronoflow_contracts import new_id
    from chronoflow_contracts.runs import RunStarted
    from chronoflow_platform.schema import chrono_run_state, chrono_runs

    cid, other = new_id(), new_id()
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def attempt_of(chrono: str, attempt: int) -> dict[str, Any]:
        occ = occurrence_id(chrono, t0)
        return {
            "chrono_id": chrono,
            "run_id": run_id(occ, attempt),
            "occurrence_id": occ,
            "scheduled_for": t0,
            "attempt": attempt,
            "target_type": TargetType.HTTP,
            "started_at": t0 + timedelta(seconds=attempt),
        }

    def started(chrono: str, attempt: int) -> RunStarted:
        return RunStarted(**attempt_of(chrono, attempt))

    def completed(
        chrono: str, attempt: int, status: Literal[RunStatus.FAILED, RunStatus.SUCCESS]
    ) -> RunCompleted:
        fields = attempt_of(chrono, attempt)
        return RunCompleted(
            **fields,
            status=status,
            finished_at=fields["started_at"],
            duration_ms=1,
            will_retry=status is RunStatus.FAILED,
        )

    events = [
        started(cid, 1),
        started(other, 1),
        completed(cid, 1, RunStatus.FAILED),
        started(cid, 2),
        completed(other, 1, RunStatus.SUCCESS),
        completed(cid, 2, RunStatus.SUCCESS),
    ]
    batch = [(e, seq) for seq, e in enumerate(events, start=1)]
    async with engine.begin() as conn:
        await views.run_events(conn, batch)
        runs = {
            r.id: r.status
            for r in await conn.execute(
                select(chrono_runs).where(chrono_runs.c.chrono_id.in_([cid, other]))
            )
        }
        last = {
            r.chrono_id: (r.last_run_id, r.last_run_status)
            for r in await conn.execute(
                select(chrono_run_state).where(chrono_run_state.c.chrono_id.in_([cid, other]))
            )
        }
    occ, occ_other = occurrence_id(cid, t0), occurrence_id(other, t0)
    assert runs == {
        run_id(occ, 1): "FAILED",
        run_id(occ, 2): "SUCCESS",
        run_id(occ_other, 1): "SUCCESS",
    }
    assert last == {
        cid: (run_id(occ, 2), "SUCCESS"),
        other: (run_id(occ_other, 1), "SUCCESS"),
    }


async def test_a_lingering_drain_takes_what_arrives_meanwhile() -> None:
    """Run history waits for company after a first event; lifecycle events do not."""
    import asyncio

    from chronoflow_api.projector.consumer import drain

    for linger, expected in ((0.0, ["first"]), (0.05, ["first", "second", "third"])):
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        inbox.put_nowait("first")
        taking = asyncio.create_task(drain(inbox, 500, linger=linger))
        await asyncio.sleep(0)  # drain has the first event and decides whether to wait
        inbox.put_nowait("second")
        inbox.put_nowait("third")
        taken: list[Any] = await taking
        assert taken == expected


async def test_a_busy_stream_keeps_lingering_until_the_batch_is_full_or_quiet(
    monkeypatch: Any,
) -> None:
    """While each linger brings at least ``busy`` more events the batch waits another one;
    a quieter linger or a full batch ends it."""
    import asyncio

    from chronoflow_api.projector import consumer

    async def run(size: int, busy: int | None) -> list[Any]:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        inbox.put_nowait("a")
        # Each linger is one step of this script: what arrives while drain sleeps.
        arrivals = iter([["b", "c"], ["d", "e"], ["f"], ["g", "h", "i"]])

        async def linger(_: float) -> None:
            for m in next(arrivals):
                inbox.put_nowait(m)

        with monkeypatch.context() as patched:
            patched.setattr(asyncio, "sleep", linger)
            return await consumer.drain(inbox, size, linger=0.02, busy=busy)

    assert await run(500, None) == ["a", "b", "c"]  # one linger, busy or not
    assert await run(500, 2) == ["a", "b", "c", "d", "e", "f"]  # stops after the quiet one
    assert await run(4, 2) == ["a", "b", "c", "d"]  # full: no third linger
    assert await run(500, 3) == ["a", "b", "c"]  # two is not busy enough
