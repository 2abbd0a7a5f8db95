"""Every chrono route against real NATS + Postgres: CRUD, lifecycle, pagination, concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from nats.js import JetStreamContext

from chronoflow_contracts import names
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import RunCompleted, RunStarted, RunStatus, occurrence_id, run_id
from chronoflow_platform.publishing import publish_event

HTTP_CHRONO = {
    "name": "Webhook teste",
    "cron": "in 10 min",
    "targetType": "HTTP",
    "url": "https://example.com/hook",
    "method": "POST",
    "payload": {"hello": "world"},
    "headers": {"X-Trace": "123"},
}


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    r = await client.post("/chronos", json=HTTP_CHRONO | overrides)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_health_and_ready_need_no_key(anon: httpx.AsyncClient) -> None:
    assert (await anon.get("/health")).status_code == 200
    assert (await anon.get("/ready")).json()["status"] == "ready"


async def test_every_resource_route_needs_a_valid_key(anon: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/chronos"),
        ("POST", "/chronos"),
        ("GET", "/chronos/x"),
        ("GET", "/runs/x"),
        ("GET", "/channels"),
        ("GET", "/functions"),
        ("POST", "/schedules/preview"),
    ]:
        r = await anon.request(method, path)
        assert r.status_code == 401, (method, path)
        assert r.json()["error"]["code"] == "unauthorized"
        r = await anon.request(method, path, headers={"Authorization": "Bearer cf_wrong"})
        assert r.status_code == 401


async def test_openapi_declares_the_bearer_key_on_guarded_operations_only(
    anon: httpx.AsyncClient,
) -> None:
    schema = (await anon.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert schema["paths"]["/chronos"]["post"]["security"] == [{"apiKey": []}]
    assert schema["paths"]["/chronos/{chrono_id}"]["patch"]["security"] == [{"apiKey": []}]
    assert "security" not in schema["paths"]["/health"]["get"]
    assert "security" not in schema["paths"]["/ready"]["get"]


async def test_create_returns_what_the_next_read_shows(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert created["targetType"] == "HTTP"
    assert created["method"] == "POST"
    assert created["timezone"] == "America/Sao_Paulo"  # DEFAULT_TIMEZONE
    assert created["isActive"] is True
    assert created["schedule"]["type"] == "once"
    next_run = datetime.fromisoformat(created["nextRunAt"])
    assert timedelta(minutes=9) < next_run - datetime.now(UTC) <= timedelta(minutes=10)
    read = await client.get(f"/chronos/{created['id']}")
    assert read.status_code == 200
    assert read.json() == created
    assert read.headers["etag"] == f'"{created["version"]}"'


async def test_every_shape_of_create_answer_equals_the_read(client: httpx.AsyncClient) -> None:
    # The create answers from the projected event, not from the row: the two must agree.
    paused_recurring = {
        "name": "recorrente",
        "description": "todo dia",
        "cron": "todo dia as 08:00",
        "timezone": "Europe/Lisbon",
        "url": "https://example.com/daily",
        "method": "put",
        "headers": {"Authorization": "Bearer x", "X-Trace": "1"},
        "extras": {"a": [1, 2]},
        "config": {"timeoutMs": 5000},
        "isActive": False,
    }
    for body in (HTTP_CHRONO, paused_recurring):
        r = await client.post("/chronos", json=body)
        assert r.status_code == 201, r.text
        assert r.headers["location"] == f"/chronos/{r.json()['id']}"
        read = await client.get(r.headers["location"])
        assert read.json() == r.json()
        assert read.headers["etag"] == r.headers["etag"]


async def test_defaults_target_http_and_method_post(client: httpx.AsyncClient) -> None:
    body = {"name": "defaults", "cron": "every 15 minutes", "url": "https://example.com/x"}
    r = await client.post("/chronos", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["targetType"] == "HTTP"
    assert r.json()["method"] == "POST"
    assert r.json()["schedule"]["type"] == "recurring"


async def test_patch_moves_the_version_and_refuses_a_stale_one(client: httpx.AsyncClient) -> None:
    created = await create(client)
    v1 = created["version"]
    r = await client.patch(f"/chronos/{created['id']}", json={"name": "renamed", "version": v1})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "renamed"
    v2 = r.json()["version"]
    assert v2 > v1
    stale = await client.patch(f"/chronos/{created['id']}", json={"name": "lost", "version": v1})
    assert stale.status_code == 409
    assert stale.json()["error"]["currentVersion"] == v2
    stale = await client.patch(
        f"/chronos/{created['id']}", json={"name": "lost"}, headers={"If-Match": f'"{v1}"'}
    )
    assert stale.status_code == 409
    assert (await client.get(f"/chronos/{created['id']}")).json()["name"] == "renamed"


async def test_concurrent_patches_never_lose_an_update(client: httpx.AsyncClient) -> None:
    created = await create(client)
    v = created["version"]
    results = await asyncio.gather(
        *(
            client.patch(f"/chronos/{created['id']}", json={"description": f"d{i}", "version": v})
            for i in range(5)
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409, 409, 409, 409]


async def test_pause_resume_delete(client: httpx.AsyncClient) -> None:
    created = await create(client, cron="every 2 hours")
    cid = created["id"]
    paused = (await client.post(f"/chronos/{cid}/pause")).json()
    assert paused["isActive"] is False
    assert paused["nextRunAt"] is None
    resumed = (await client.post(f"/chronos/{cid}/resume")).json()
    assert resumed["isActive"] is True
    assert resumed["nextRunAt"] is not None
    assert (await client.delete(f"/chronos/{cid}")).status_code == 204
    assert (await client.get(f"/chronos/{cid}")).status_code == 404
    assert (await client.post(f"/chronos/{cid}/pause")).status_code == 404


async def test_trigger_appends_a_manual_request(
    client: httpx.AsyncClient, js: JetStreamContext
) -> None:
    created = await create(client)
    r = await client.post(f"/chronos/{created['id']}/trigger")
    assert r.status_code == 202
    assert r.json()["trigger"] == "MANUAL"
    last = await js.get_last_msg(
        names.EVENTS_STREAM, names.aggregate_subject("chrono", created["id"])
    )
    assert last.headers is not None
    assert last.headers[names.EVENT_TYPE] == "chrono.triggered"
    # The schedule did not move.
    after = (await client.get(f"/chronos/{created['id']}")).json()
    assert after["nextRunAt"] == created["nextRunAt"]


async def test_list_paginates_and_filters(client: httpx.AsyncClient) -> None:
    tag = f"pg-{datetime.now(UTC).timestamp()}"
    ids = [(await create(client, name=f"{tag}-{i}"))["id"] for i in range(7)]
    message = await client.post(
        "/channels", json={"name": f"{tag}-ch", "config": {"session": "default"}}
    )
    await client.post(f"/chronos/{ids[0]}/pause")
    page1 = (await client.get("/chronos", params={"name": tag, "take": 3})).json()
    assert page1["total"] == 7
    assert [c["id"] for c in page1["items"]] == ids[::-1][:3]  # newest first
    page2 = (await client.get("/chronos", params={"name": tag, "take": 3, "skip": 3})).json()
    assert [c["id"] for c in page2["items"]] == ids[::-1][3:6]
    by_cursor = (
        await client.get("/chronos", params={"name": tag, "take": 3, "cursor": page1["nextCursor"]})
    ).json()
    assert by_cursor["items"] == page2["items"]
    inactive = (await client.get("/chronos", params={"name": tag, "isActive": "false"})).json()
    assert [c["id"] for c in inactive["items"]] == [ids[0]]
    upper = (await client.get("/chronos", params={"name": tag.upper()})).json()
    assert upper["total"] == 7
    http_only = (await client.get("/chronos", params={"name": tag, "targetType": "HTTP"})).json()
    assert http_only["total"] == 7
    none = (await client.get("/chronos", params={"name": tag, "targetType": "MESSAGE"})).json()
    assert none["total"] == 0
    assert message.status_code == 201
    bad = await client.get("/chronos", params={"take": 0})
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "take"


async def test_runs_page_newest_first_and_read_by_id(
    client: httpx.AsyncClient, js: JetStreamContext
) -> None:
    created = await create(client, cron="every 1 hour")
    cid = created["id"]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        when = base + timedelta(hours=i)
        occ = occurrence_id(cid, when)
        rid = run_id(occ, 1)
        common = {"chrono_id": cid, "run_id": rid, "occurrence_id": occ, "scheduled_for": when}
        await publish_event(
            js,
            names.runs_subject(cid),
            RunStarted(**common, target_type=TargetType.HTTP, started_at=when),
        )
        ack = await publish_event(
            js,
            names.runs_subject(cid),
            RunCompleted(
                **common,
                target_type=TargetType.HTTP,
                status=RunStatus.SUCCESS,
                started_at=when,
                finished_at=when + timedelta(milliseconds=20),
                duration_ms=20,
                http_status=200,
                response_snippet="ok",
            ),
        )
    watermark = client._transport.app.state.runtime.state["watermark"]  # type: ignore[attr-defined]
    assert await watermark.wait_for(names.RUNS_STREAM, ack.seq, limit=10)
    page = (await client.get(f"/chronos/{cid}/runs", params={"take": 2})).json()
    assert page["total"] == 5
    got = [r["scheduledFor"] for r in page["items"]]
    assert got == ["2026-01-01T04:00:00Z", "2026-01-01T03:00:00Z"]
    run = (await client.get(f"/runs/{page['items'][0]['id']}")).json()
    assert run["status"] == "SUCCESS"
    assert run["httpStatus"] == 200
    chrono = (await client.get(f"/chronos/{cid}")).json()
    assert chrono["lastRunStatus"] == "SUCCESS"
    assert chrono["lastRunId"] == page["items"][0]["id"]
    assert (await client.get("/runs/nope")).status_code == 404


async def test_credential_headers_are_encrypted_in_the_event_and_redacted(
    client: httpx.AsyncClient, js: JetStreamContext
) -> None:
    secret = "Bearer s3cr3t-token-value"
    created = await create(
        client, headers={"Authorization": secret, "X-Api-Key": "k-123", "X-Trace": "t"}
    )
    assert created["headers"] == {"Authorization": "***", "X-Api-Key": "***", "X-Trace": "t"}
    stored = await js.get_last_msg(
        names.EVENTS_STREAM, names.aggregate_subject("chrono", created["id"])
    )
    assert stored.data is not None
    assert b"s3cr3t" not in stored.data
    assert b"k-123" not in stored.data
    assert b"enc:v1:" in stored.data
    # Echoing the redacted value back keeps the stored secret; a rename does not touch it.
    r = await client.patch(
        f"/chronos/{created['id']}",
        json={"headers": {"Authorization": "***", "X-Trace": "u"}},
    )
    assert r.status_code == 200, r.text
    stored2 = await js.get_last_msg(
        names.EVENTS_STREAM, names.aggregate_subject("chrono", created["id"])
    )
    assert stored2.data is not None
    assert b"s3cr3t" not in stored2.data
    assert b"***" not in stored2.data


async def test_request_latency_is_labelled_by_route_template(client: httpx.AsyncClient) -> None:
    created = await create(client)
    await client.get(f"/chronos/{created['id']}")
    metrics = (await client.get("/metrics")).text
    assert 'route="/chronos/{chrono_id}"' in metrics
    assert created["id"] not in metrics  # no unbounded labels


async def test_schedule_preview_normalizes_describes_and_lists_five_fire_times(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/schedules/preview", json={"cron": "todo dia às 8h", "timezone": "America/Sao_Paulo"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["schedule"]["type"] == "recurring"
    assert body["schedule"]["cron"] == "0 8 * * *"
    assert "08:00" in body["description"]
    runs = [datetime.fromisoformat(t) for t in body["nextRuns"]]
    assert len(runs) == 5
    assert runs == sorted(runs)
    assert all(t.astimezone(UTC).hour == 11 for t in runs)  # 08:00 in São Paulo (UTC-3)
    default_zone = await client.post("/schedules/preview", json={"cron": "every 6 hours"})
    assert default_zone.json()["schedule"]["timezone"] == "America/Sao_Paulo"


async def test_schedule_preview_refuses_bad_input_listing_the_accepted_forms(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/schedules/preview", json={"cron": "every blue moon"})
    assert r.status_code == 422
    field = r.json()["error"]["fields"][0]
    assert field["field"] == "cron"
    assert any("daily at 07:30" in form for form in field["accepted"])
    r = await client.post("/schedules/preview", json={"cron": "hourly", "timezone": "Nowhere/X"})
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "timezone"
