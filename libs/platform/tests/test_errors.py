"""The stable error shape the api and the waha-gateway answer with, and the API-key guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from sqlalchemy.ext.asyncio import create_async_engine

from chronoflow_platform.auth import STATE_KEY, KeyChecker, require_key
from chronoflow_platform.errors import ApiError, FieldError, install_error_handlers


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    # Never connected: every request below is refused before a key is looked up.
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    app.state.runtime = SimpleNamespace(state={STATE_KEY: KeyChecker(engine)})

    @app.get("/conflict")
    async def conflicting() -> None:
        raise ApiError(
            409,
            "version_conflict",
            "moved on",
            current_version=3,
            fields=[FieldError(field="cron", message="bad", accepted=["daily"])],
        )

    @app.get("/limit")
    async def limited(n: Annotated[int, Query()]) -> int:
        return n

    @app.get("/guarded", dependencies=[Depends(require_key)])
    async def guarded() -> str:
        return "in"

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http
    await engine.dispose()


async def test_an_api_error_renders_in_the_stable_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "status": 409,
            "code": "version_conflict",
            "message": "moved on",
            "fields": [{"field": "cron", "message": "bad", "accepted": ["daily"]}],
            "currentVersion": 3,
        }
    }


async def test_fastapi_errors_render_in_the_same_shape(client: httpx.AsyncClient) -> None:
    invalid = await client.get("/limit", params={"n": "many"})
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert (error["code"], [f["field"] for f in error["fields"]]) == ("validation_error", ["n"])
    assert error["message"].startswith("n: ")
    missing = await client.get("/nowhere")
    assert missing.json() == {
        "error": {"status": 404, "code": "not_found", "message": "Not Found", "fields": []}
    }


@pytest.mark.parametrize("authorization", [None, "", "Basic abc", "Bearer", "Bearer "])
async def test_a_request_without_a_bearer_key_is_refused(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/guarded", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {
        "error": {
            "status": 401,
            "code": "unauthorized",
            "message": "a valid API key is required: Authorization: Bearer <key>",
            "fields": [],
        }
    }
