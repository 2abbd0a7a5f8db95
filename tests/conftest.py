"""Fixtures the end-to-end tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.fernet import Fernet
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.app import create_app as create_api
from chronoflow_api.projector.app import create_app as create_projector
from chronoflow_api.settings import ApiSettings, ProjectorSettings
from chronoflow_devstack.embedded import NatsServer
from chronoflow_platform import apikeys


@pytest.fixture
async def api(
    request: pytest.FixtureRequest,
    nats_server: NatsServer,
    database_url: str,
    clean_stack: JetStreamContext,
    engine: AsyncEngine,
) -> AsyncIterator[httpx.AsyncClient]:
    """The api and the projector, in-process, on empty streams and tables; a client holding a
    valid key. The header-sealing key is the test module's ``SECRETS_KEY`` when it has one
    (its executor opens what the api sealed), else a new one."""
    secrets_key = getattr(request.module, "SECRETS_KEY", None) or Fernet.generate_key().decode()
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_SECRETS_KEY": secrets_key,
        # A loaded machine (CI, parallel suites) can delay the projector past the default.
        "CHRONOFLOW_READ_YOUR_WRITES_TIMEOUT_SECONDS": "30",
    }
    projector = create_projector(ProjectorSettings.model_validate(env))
    app = create_api(ApiSettings.model_validate(env))
    _, key = await apikeys.create_key(engine, request.module.__name__)
    async with projector.router.lifespan_context(projector), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {key}"}
        ) as client:
            yield client
