"""Every validation rule of SPEC section 3: one 422 shape naming the field and what is accepted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BASE = {"name": "v", "cron": "in 10 min", "url": "https://example.com/hook"}
CHANNEL_MISSING = "01936a2e-0000-7000-8000-00000000dead"

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown target type", {"targetType": "SMOKE"}, "targetType"),
    ("missing url", {"url": None}, "url"),
    ("non-http scheme", {"url": "ftp://example.com/x"}, "url"),
    ("file scheme", {"url": "file:///etc/passwd"}, "url"),
    ("no host", {"url": "http:///path"}, "url"),
    ("credentials in url", {"url": "https://user:pw@example.com/"}, "url"),
    ("method not allowed", {"method": "TRACE"}, "method"),
    ("unparseable schedule", {"cron": "whenever you feel like it"}, "cron"),
    ("unknown time zone", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("one-shot in the past", {"cron": "2020-01-01T00:00:00Z"}, "cron"),
    ("missing name", {"name": ""}, "name"),
    (
        "message without channel",
        {"targetType": "MESSAGE", "messageTemplate": "hi", "recipients": ["+5511999999999"]},
        "channelId",
    ),
    (
        "message without template",
        {"targetType": "MESSAGE", "channelId": CHANNEL_MISSING, "recipients": ["+5511999999999"]},
        "messageTemplate",
    ),
    (
        "empty recipients",
        {
            "targetType": "MESSAGE",
            "channelId": CHANNEL_MISSING,
            "messageTemplate": "hi",
            "recipients": [],
        },
        "recipients",
    ),
    (
        "recipient not a phone",
        {
            "targetType": "MESSAGE",
            "channelId": CHANNEL_MISSING,
            "messageTemplate": "hi",
            "recipients": ["call me"],
        },
        "recipients.0",
    ),
    (
        "unknown channel",
        {
            "targetType": "MESSAGE",
            "channelId": CHANNEL_MISSING,
            "messageTemplate": "hi",
            "recipients": ["+5511999999999"],
        },
        "channelId",
    ),
    ("function without id or code", {"targetType": "FUNCTION"}, "functionId"),
    ("unknown function", {"targetType": "FUNCTION", "functionId": CHANNEL_MISSING}, "functionId"),
    (
        "retry attempts out of range",
        {"config": {"retry": {"attempts": 0}}},
        "config.retry.attempts",
    ),
    ("unknown field", {"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("case", "overrides", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, case: str, overrides: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in (BASE | overrides).items() if v is not None}
    r = await client.post("/chronos", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["status"] == 422
    assert error["code"] == "validation_error"
    assert field in [f["field"] for f in error["fields"]], error
    assert error["message"]
    # Nothing was half-written.
    listed = (await client.get("/chronos", params={"name": body.get("name") or "v"})).json()
    assert all(c["url"] != body.get("url") or c["name"] != "v" for c in listed["items"])


async def test_accepted_values_are_listed(client: httpx.AsyncClient) -> None:
    r = await client.post("/chronos", json=BASE | {"method": "TRACE", "url": "gopher://x"})
    fields = {f["field"]: f for f in r.json()["error"]["fields"]}
    assert fields["method"]["accepted"] == ["DELETE", "GET", "PATCH", "POST", "PUT"]
    assert fields["url"]["accepted"] == ["http", "https"]
    r = await client.post("/chronos", json=BASE | {"cron": "sometimes"})
    cron = next(f for f in r.json()["error"]["fields"] if f["field"] == "cron")
    assert "in 10 min" in r.text or cron["accepted"]


async def test_a_valid_message_chrono_normalizes_nothing_it_should_not(
    client: httpx.AsyncClient,
) -> None:
    channel = (await client.post("/channels", json={"name": "wa"})).json()
    r = await client.post(
        "/chronos",
        json={
            "name": "Bom dia clientes",
            "cron": "todo dia as 08:00",
            "targetType": "MESSAGE",
            "channelId": channel["id"],
            "messageTemplate": "Bom dia!",
            "recipients": ["+55 11 99999-9999", "5511888888888@c.us", "120363-1234567890@g.us"],
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["method"] is None
    assert body["recipients"] == [
        "+55 11 99999-9999",
        "5511888888888@c.us",
        "120363-1234567890@g.us",
    ]
