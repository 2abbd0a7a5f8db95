"""The api and the projector running in-process against the session's real NATS and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.app import create_app
from chronoflow_api.projector.app import create_app as create_projector
from chronoflow_api.settings import ApiSettings, ProjectorSettings
from chronoflow_devstack.embedded import NatsServer
from chronoflow_platform import apikeys

SECRETS_KEY = Fernet.generate_key().decode()


@pytest.fixture
async def api_key(engine: AsyncEngine) -> str:
    """A valid API key."""
    _, key = await apikeys.create_key(engine, "pytest")
    return key


@pytest.fixture
async def anon(nats_server: NatsServer, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running api + projector, without credentials."""
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_SECRETS_KEY": SECRETS_KEY,
        "DEFAULT_TIMEZONE": "America/Sao_Paulo",
        "ALLOWED_METHODS": "GET,POST,PUT,PATCH,DELETE",
    }
    projector = create_projector(ProjectorSettings.model_validate(env))
    api = create_app(ApiSettings.model_validate(env))
    async with projector.router.lifespan_context(projector), api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
async def client(anon: httpx.AsyncClient, api_key: str) -> httpx.AsyncClient:
    """A client of a running api + projector, with a valid key."""
    anon.headers["Authorization"] = f"Bearer {api_key}"
    return anon
