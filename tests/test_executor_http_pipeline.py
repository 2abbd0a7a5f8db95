"""The whole pipeline: api → scheduler → executor-http → a sink on 127.0.0.1 → projector → api.

Every service runs in-process with its real lifespan on the session's nats-server and
PostgreSQL; the chrono is created over the REST API like a client would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from chronoflow_api.app import create_app as create_api
from chronoflow_api.projector.app import create_app as create_projector
from chronoflow_api.settings import ApiSettings, ProjectorSettings
from chronoflow_devstack.embedded import NatsServer
from chronoflow_egress.signing import generate_secret
from chronoflow_executor_http.app import create_app as create_executor
from chronoflow_executor_http.settings import ExecutorHttpSettings
from chronoflow_executor_http.testing import WebhookSink, statuses, until
from chronoflow_platform import apikeys
from chronoflow_platform.executor.testing import TERMINAL
from chronoflow_scheduler.app import create_app as create_scheduler
from chronoflow_scheduler.settings import SchedulerSettings

SECRET = generate_secret()


@pytest.fixture
async def client(
    nats_server: NatsServer, database_url: str, clean_stack: JetStreamContext, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """A REST client of the api, with the projector, scheduler and executor-http running."""
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_SECRETS_KEY": Fernet.generate_key().decode(),
        "CHRONOFLOW_PROFILE": "development",
        "CHRONOFLOW_WEBHOOK_SECRET": SECRET,
    }
    apps = [
        create_projector(ProjectorSettings.model_validate(env)),
        create_scheduler(SchedulerSettings.model_validate(env)),
        create_executor(ExecutorHttpSettings.model_validate(env)),
    ]
    api = create_api(ApiSettings.model_validate(env))
    _, key = await apikeys.create_key(engine, "pipeline test")
    async with (
        apps[0].router.lifespan_context(apps[0]),
        apps[1].router.lifespan_context(apps[1]),
        apps[2].router.lifespan_context(apps[2]),
        api.router.lifespan_context(api),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api),
            base_url="http://api",
            headers={"Authorization": f"Bearer {key}"},
        ) as rest,
    ):
        yield rest


async def runs_of(client: httpx.AsyncClient, chrono_id: str, count: int) -> list[dict[str, Any]]:
    """The chrono's runs once ``count`` of them ended, oldest first."""
    found: list[dict[str, Any]] = []

    async def ended() -> bool:
        nonlocal found
        response = await client.get(f"/chronos/{chrono_id}/runs")
        found = response.json()["items"]
        return sum(1 for r in found if r["status"] in TERMINAL) >= count

    async with asyncio.timeout(20):
        await until(ended, interval=0.1)
    return sorted(found, key=lambda r: (r["scheduledFor"], r["attempt"]))


async def test_a_chrono_created_over_rest_fires_signed_and_is_recorded(
    client: httpx.AsyncClient,
) -> None:
    async with WebhookSink() as sink:
        url = sink.on("/hook", statuses(500, 200))
        created = await client.post(
            "/chronos",
            json={
                "name": "pipeline",
                "cron": "in 2 seconds",
                "url": url,
                "method": "POST",
                "headers": {"Authorization": "Bearer top-secret", "X-Custom": "1"},
                "payload": {"hello": "world"},
                "config": {"retry": {"attempts": 2, "backoff": "fixed", "delayMs": 200}},
            },
        )
        assert created.status_code == 201, created.text
        chrono = created.json()
        assert chrono["headers"]["Authorization"] == "***"

        first, second = await runs_of(client, chrono["id"], 2)
        assert (first["status"], first["httpStatus"], first["willRetry"]) == ("FAILED", 500, True)
        assert (second["status"], second["httpStatus"], second["willRetry"]) == (
            "SUCCESS",
            200,
            False,
        )
        assert first["trigger"] == second["trigger"] == "SCHEDULE"
        assert [r.webhook_id for r in sink.received] == [first["occurrenceId"]] * 2
        for received in sink.received:
            assert received.headers["authorization"] == "Bearer top-secret"
            assert received.body == b'{"hello":"world"}'
            Webhook(SECRET).verify(received.body, received.headers)

        async def shown() -> bool:
            view = (await client.get(f"/chronos/{chrono['id']}")).json()
            return bool(view["lastRunStatus"] == "SUCCESS" and view["lastRunId"] == second["id"])

        async with asyncio.timeout(10):
            await until(shown)

        # A manual trigger runs now, through the same path.
        triggered = await client.post(f"/chronos/{chrono['id']}/trigger")
        assert triggered.status_code in (200, 201, 202), triggered.text
        runs = await runs_of(client, chrono["id"], 3)
        manual = [r for r in runs if r["trigger"] == "MANUAL"]
        assert len(manual) == 1
        assert manual[0]["status"] == "SUCCESS"
        assert len(sink.received) == 3
