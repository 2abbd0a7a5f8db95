"""Channels and functions: CRUD through events, versions, checksums, inline function code."""

from __future__ import annotations

import hashlib

import httpx

CODE = "export default async function run(ctx) { ctx.log('hi'); return 1 }"


async def test_channel_crud(client: httpx.AsyncClient) -> None:
    created = await client.post("/channels", json={"name": "wa", "config": {"session": "s1"}})
    assert created.status_code == 201, created.text
    ch = created.json()
    assert ch["provider"] == "WAHA"
    assert ch["status"] == "STOPPED"
    assert (await client.get(f"/channels/{ch['id']}")).json() == ch
    renamed = await client.patch(
        f"/channels/{ch['id']}", json={"name": "wa2", "version": ch["version"]}
    )
    assert renamed.json()["name"] == "wa2"
    stale = await client.patch(
        f"/channels/{ch['id']}", json={"name": "x", "version": ch["version"]}
    )
    assert stale.status_code == 409
    listed = (await client.get("/channels")).json()
    assert ch["id"] in [c["id"] for c in listed["items"]]
    assert (await client.delete(f"/channels/{ch['id']}")).status_code == 204
    assert (await client.get(f"/channels/{ch['id']}")).status_code == 404
    bad = await client.post("/channels", json={"name": "x", "provider": "TELEGRAM"})
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "provider"
    bad = await client.post("/channels", json={"name": "x", "config": {"session": "a b/c"}})
    assert bad.status_code == 422


async def test_function_versions_and_checksum(client: httpx.AsyncClient) -> None:
    created = (await client.post("/functions", json={"name": "f", "code": CODE})).json()
    assert created["functionVersion"] == 1
    assert created["checksum"] == hashlib.sha256(CODE.encode()).hexdigest()
    assert created["runtime"] == "quickjs-wasm"
    assert created["code"] == CODE
    new_code = CODE.replace("hi", "hello")
    updated = (await client.patch(f"/functions/{created['id']}", json={"code": new_code})).json()
    assert updated["functionVersion"] == 2
    assert updated["checksum"] == hashlib.sha256(new_code.encode()).hexdigest()
    listed = (await client.get("/functions")).json()
    item = next(f for f in listed["items"] if f["id"] == created["id"])
    assert item["code"] is None  # lists leave the code out
    assert (await client.delete(f"/functions/{created['id']}")).status_code == 204
    assert (await client.get(f"/functions/{created['id']}")).status_code == 404


async def test_inline_function_code_on_a_chrono_saves_a_function(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/chronos",
        json={
            "name": "Cobrança atrasados",
            "cron": "daily at 07:30",
            "targetType": "FUNCTION",
            "functionCode": CODE,
            "functionLimits": {"timeoutMs": 10000, "maxHttp": 5, "maxMessages": 50},
            "extras": {"segment": "overdue"},
        },
    )
    assert r.status_code == 201, r.text
    chrono = r.json()
    function = (await client.get(f"/functions/{chrono['functionId']}")).json()
    assert function["code"] == CODE
    assert function["limits"]["maxHttp"] == 5
    assert chrono["extras"] == {"segment": "overdue"}
