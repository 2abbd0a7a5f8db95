"""``POST /chronos`` answered by the shortcut (:mod:`chronoflow_api.shortcut`) and by FastAPI's
route alike: the same status, headers and body for every kind of request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.js import JetStreamContext
from starlette.responses import Response

from chronoflow_api import shortcut
from chronoflow_api.app import create_app
from chronoflow_api.routes import chronos
from chronoflow_api.schemas import ChronoOut
from chronoflow_api.settings import ApiSettings
from chronoflow_contracts import names
from chronoflow_devstack.embedded import NatsServer

from .conftest import SECRETS_KEY

VALID = {
    "name": "shortcut",
    "cron": "every 15 minutes",
    "url": "https://example.com/hook",
    "payload": {"hello": "world"},
    "headers": {"Authorization": "Bearer secret", "X-Trace": "1"},
}
#: The shortcut takes exactly this content type ...
SHORTCUT = "application/json"
#: ... and hands this one, JSON to FastAPI as well, to the route.
ROUTE = "application/json; charset=utf-8"

CASES: list[tuple[str, bytes, str | None]] = [
    ("valid", json.dumps(VALID).encode(), "key"),
    ("rule broken", json.dumps(VALID | {"cron": "whenever"}).encode(), "key"),
    ("model refuses", json.dumps(VALID | {"colour": "blue"}).encode(), "key"),
    ("wrong type", json.dumps(VALID | {"isActive": "maybe"}).encode(), "key"),
    ("malformed JSON", b'{"name": ', "key"),
    ("not an object", b"[1, 2]", "key"),
    ("empty body", b"", "key"),
    ("not UTF-8", b'{"name": "\xff"}', "key"),
    ("nested too deeply", b"[" * 100_000 + b"]" * 100_000, "key"),
    ("no key", json.dumps(VALID).encode(), None),
    ("wrong key", json.dumps(VALID).encode(), "cf_wrong"),
    ("malformed JSON, no key", b"{", None),
    ("model refuses, no key", json.dumps({"name": ""}).encode(), None),
]
#: What differs between two creates of the same body.
_PER_CHRONO = {"id", "version", "createdAt", "updatedAt", "nextRunAt"}
_COMPARED_HEADERS = ("content-type", "content-length", "www-authenticate", "retry-after")


async def _post(
    anon: httpx.AsyncClient, body: bytes, key: str | None, content_type: str
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await anon.post("/chronos", content=body, headers=headers)


@pytest.mark.parametrize(("case", "body", "key"), CASES, ids=[c[0] for c in CASES])
async def test_the_shortcut_answers_as_the_route_does(
    anon: httpx.AsyncClient, api_key: str, case: str, body: bytes, key: str | None
) -> None:
    key = api_key if key == "key" else key
    fast = await _post(anon, body, key, SHORTCUT)
    routed = await _post(anon, body, key, ROUTE)
    assert fast.status_code == routed.status_code, (fast.text, routed.text)
    if routed.status_code != 201:
        assert fast.content == routed.content
        for name in _COMPARED_HEADERS:
            assert fast.headers.get(name) == routed.headers.get(name), name
        return
    created = [r.json() for r in (fast, routed)]
    assert [{k: v for k, v in c.items() if k not in _PER_CHRONO} for c in created] == [
        {k: v for k, v in created[1].items() if k not in _PER_CHRONO}
    ] * 2
    for r, chrono in zip((fast, routed), created, strict=True):
        assert r.headers["location"] == f"/chronos/{chrono['id']}"
        assert r.headers["etag"] == f'"{chrono["version"]}"'
        assert r.headers["content-type"] == "application/json"
        read = await anon.get(r.headers["location"], headers={"Authorization": f"Bearer {key}"})
        assert read.json() == chrono  # read-your-writes on both paths


async def test_a_plain_json_create_is_answered_by_the_shortcut(
    anon: httpx.AsyncClient, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[str] = []

    def counting(chrono: ChronoOut) -> Response:
        answered.append(chrono.id)
        return chronos.created_response(chrono)

    monkeypatch.setattr(shortcut, "created_response", counting)
    fast = await _post(anon, json.dumps(VALID).encode(), api_key, SHORTCUT)
    routed = await _post(anon, json.dumps(VALID).encode(), api_key, ROUTE)
    assert answered == [fast.json()["id"]]
    assert routed.status_code == 201
    # Both labelled by the route template.
    metrics = (await anon.get("/metrics")).text
    count = 'chronoflow_api_request_duration_seconds_count{method="POST",route="/chronos",'
    assert f'{count}status="201"}} 2.0' in metrics


@pytest.fixture
async def without_projector(
    nats_server: NatsServer, database_url: str, api_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The api alone: nothing projects, so every create outwaits read-your-writes."""
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_SECRETS_KEY": SECRETS_KEY,
        "CHRONOFLOW_READ_YOUR_WRITES_TIMEOUT_SECONDS": "0.3",
    }
    api = create_app(ApiSettings.model_validate(env))
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://api",
            headers={"Authorization": f"Bearer {api_key}"},
        ) as client:
            yield client


@pytest.mark.parametrize("content_type", [SHORTCUT, ROUTE])
async def test_a_stored_create_the_projection_missed_is_a_503_appended_once(
    without_projector: httpx.AsyncClient, js: JetStreamContext, content_type: str
) -> None:
    r = await _post(without_projector, json.dumps(VALID).encode(), None, content_type)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    error = r.json()["error"]
    assert error["code"] == "projection_lagging"
    # Stored once: the create was not handed on to the route after its append.
    info = await js.stream_info(names.EVENTS_STREAM)
    assert info.state.last_seq == error["currentVersion"]
