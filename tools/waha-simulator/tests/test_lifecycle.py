"""Session routes and WAHA's status lifecycle, every exchange checked against the contract."""

from __future__ import annotations

import json

import httpx

from chronoflow_waha_simulator.server import RunningSimulator
from chronoflow_waha_simulator.testing import WebhookSink, eventually


async def status(client: httpx.AsyncClient, name: str) -> str:
    response = await client.get(f"/api/sessions/{name}")
    assert response.status_code == 200
    return str(response.json()["status"])


async def reach(client: httpx.AsyncClient, name: str, wanted: str) -> None:
    async def there() -> bool:
        return await status(client, name) == wanted

    await eventually(there)


def announced(sink: WebhookSink, name: str) -> list[str]:
    bodies = [json.loads(hook.body) for hook in sink.received]
    return [b["payload"]["status"] for b in bodies if b["session"] == name]


async def pair(client: httpx.AsyncClient, name: str, phone: str | None = None) -> None:
    body = {} if phone is None else {"phoneNumber": phone}
    response = await client.post(f"/_sim/sessions/{name}/pair", json=body)
    assert response.status_code == 200, response.text


async def test_create_starts_then_asks_for_a_scan_then_works_once_paired(
    client: httpx.AsyncClient, sink: WebhookSink
) -> None:
    created = await client.post("/api/sessions", json={"name": "default"})
    assert created.status_code == 201
    assert created.json()["status"] == "STARTING"
    await reach(client, "default", "SCAN_QR_CODE")

    await pair(client, "default", phone="+55 11 99999-0000")
    info = (await client.get("/api/sessions/default")).json()
    assert info["status"] == "WORKING"
    assert info["me"] == {"id": "5511999990000@c.us", "pushName": "ChronoFlow Simulator"}
    await eventually(lambda: len(announced(sink, "default")) == 3)
    assert announced(sink, "default") == ["STARTING", "SCAN_QR_CODE", "WORKING"]


async def test_create_without_start_stays_stopped_and_is_listed_only_with_all(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/api/sessions", json={"name": "later", "start": False, "config": {"debug": True}}
    )
    assert created.status_code == 201
    assert created.json()["status"] == "STOPPED"
    assert created.json()["config"] == {"debug": True}
    assert (await client.get("/api/sessions")).json() == []
    listed = (await client.get("/api/sessions", params={"all": "true"})).json()
    assert [s["name"] for s in listed] == ["later"]

    started = await client.post("/api/sessions/later/start")
    assert started.status_code == 201
    assert started.json()["status"] == "STARTING"
    assert [s["name"] for s in (await client.get("/api/sessions")).json()] == ["later"]


async def test_a_paired_session_goes_back_to_working_after_stop_and_restart(
    client: httpx.AsyncClient, sink: WebhookSink
) -> None:
    await client.post("/api/sessions", json={"name": "s1"})
    await reach(client, "s1", "SCAN_QR_CODE")
    await pair(client, "s1")

    stopped = await client.post("/api/sessions/s1/stop")
    assert stopped.status_code == 201
    assert stopped.json()["status"] == "STOPPED"
    assert "me" not in stopped.json()
    again = await client.post("/api/sessions/s1/stop")  # idempotent
    assert again.json()["status"] == "STOPPED"

    await client.post("/api/sessions/s1/start")
    await reach(client, "s1", "WORKING")
    restarted = await client.post("/api/sessions/s1/restart")
    assert restarted.status_code == 201
    assert restarted.json()["status"] == "STARTING"
    await reach(client, "s1", "WORKING")
    await eventually(lambda: len(announced(sink, "s1")) == 9)
    assert announced(sink, "s1") == [
        "STARTING",
        "SCAN_QR_CODE",
        "WORKING",
        "STOPPED",
        "STARTING",
        "WORKING",
        "STOPPED",
        "STARTING",
        "WORKING",
    ]


async def test_logout_forgets_the_account_and_a_running_session_asks_for_a_new_scan(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/sessions", json={"name": "s2"})
    await reach(client, "s2", "SCAN_QR_CODE")
    await pair(client, "s2")

    out = await client.post("/api/sessions/s2/logout")
    assert out.status_code == 201
    assert out.json()["status"] == "STARTING"
    await reach(client, "s2", "SCAN_QR_CODE")

    await client.post("/api/sessions/s2/stop")
    stopped_logout = await client.post("/api/sessions/s2/logout")
    assert stopped_logout.json()["status"] == "STOPPED"  # a stopped session stays stopped


async def test_update_replaces_the_config_and_restarts_a_running_session(
    client: httpx.AsyncClient, raw_client: httpx.AsyncClient, sim: RunningSimulator, api_key: str
) -> None:
    await client.post("/api/sessions", json={"name": "s3", "config": {"debug": True}})
    await reach(client, "s3", "SCAN_QR_CODE")
    await pair(client, "s3")
    # WAHA's own examples send nulls the contract does not allow, so this one goes unchecked.
    config = {"metadata": {"user.id": "42"}, "proxy": None}
    updated = await raw_client.put(
        "/api/sessions/s3", json={"config": config}, headers={"X-Api-Key": api_key}
    )
    assert updated.status_code == 200
    assert updated.json()["config"] == {"metadata": {"user.id": "42"}}  # null means unset
    assert updated.json()["status"] == "STARTING"
    await reach(client, "s3", "WORKING")
    session = sim.state.sessions.get("s3")
    assert session is not None
    assert [s.value for s, _ in session.statuses] == ["STOPPED", "STARTING", "WORKING"]


async def test_delete_is_idempotent_and_the_session_is_gone(client: httpx.AsyncClient) -> None:
    await client.post("/api/sessions", json={"name": "gone"})
    deleted = await client.delete("/api/sessions/gone")
    assert deleted.status_code == 200
    assert deleted.content == b""
    assert (await client.delete("/api/sessions/gone")).status_code == 200
    missing = await client.get("/api/sessions/gone")
    assert missing.status_code == 404
    assert missing.json() == {
        "message": "Session not found",
        "error": "Not Found",
        "statusCode": 404,
    }


async def test_unknown_and_duplicate_sessions_get_wahas_errors(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/api/sessions/nope/start"),
        ("POST", "/api/sessions/nope/stop"),
        ("POST", "/api/sessions/nope/logout"),
        ("POST", "/api/sessions/nope/restart"),
        ("PUT", "/api/sessions/nope"),
    ]:
        body: dict[str, object] | None = {"config": {}} if method == "PUT" else None
        response = await client.request(method, path, json=body)
        assert response.status_code == 404, path
    await client.post("/api/sessions", json={"name": "dup", "start": False})
    duplicate = await client.post("/api/sessions", json={"name": "dup"})
    assert duplicate.status_code == 422
    assert duplicate.json()["message"] == "Session 'dup' already exists. Use PUT to update it."


async def test_a_failed_session_restarts_to_working_or_to_a_scan_if_logged_out(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/sessions", json={"name": "f"})
    await reach(client, "f", "SCAN_QR_CODE")
    await pair(client, "f")
    failed = await client.post("/_sim/sessions/f/fail", json={})
    assert failed.json()["status"] == "FAILED"
    await client.post("/api/sessions/f/restart")
    await reach(client, "f", "WORKING")

    await client.post("/_sim/sessions/f/fail", json={"loggedOut": True})
    await client.post("/api/sessions/f/restart")
    await reach(client, "f", "SCAN_QR_CODE")


async def test_pairing_outside_scan_qr_code_is_a_conflict(client: httpx.AsyncClient) -> None:
    await client.post("/api/sessions", json={"name": "p", "start": False})
    response = await client.post("/_sim/sessions/p/pair")
    assert response.status_code == 409
    assert (await client.post("/_sim/sessions/none/pair")).status_code == 404


async def test_a_generated_name_when_none_is_given(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/sessions", json={"start": False})
    assert created.status_code == 201
    assert created.json()["name"].startswith("session_")


async def test_expand_apps_lists_the_sessions_apps(client: httpx.AsyncClient) -> None:
    app = {"app": "calls", "id": "a1", "session": "", "config": {"dm": {"reject": True}}}
    await client.post("/api/sessions", json={"name": "apps", "start": False, "apps": [app]})
    one = await client.get("/api/sessions/apps", params={"expand": "apps"})
    assert one.json()["apps"] == [app]
    assert "apps" not in (await client.get("/api/sessions/apps")).json()
