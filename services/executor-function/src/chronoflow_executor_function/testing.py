"""Support for tests and benchmarks: a stand-in waha-gateway, a user API on loopback, run requests.

Not used by the service itself. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import PubAck

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoDefinition, ExecConfig, RetryPolicy, TargetType
from chronoflow_contracts.runs import (
    RunRequested,
    Trigger,
    occurrence_id,
    run_id,
    run_request_msg_id,
)
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_executor_function.app import create_app
from chronoflow_executor_function.settings import ExecutorFunctionSettings
from chronoflow_platform.publishing import publish_event

#: The users the original product's example function reads (its ``/users?overdue=true``).
USERS = [
    {"name": "Ana", "phone": "+55 11 99999-9999"},
    {"name": "Bruno", "phone": "+5511888888888"},
    {"name": "Carla", "phone": "5511777777777@c.us"},
]


@dataclass(frozen=True, slots=True)
class SentText:
    """One send the stand-in gateway accepted."""

    session: str
    chat_id: str
    text: str


@dataclass
class GatewayStandIn:
    """Answers ``WAHA_SEND_SUBJECT`` like the waha-gateway: records the send, returns a message.

    ``refuse`` (a chat id → error text) makes it answer ``{"error": ...}`` for that chat.
    """

    nc: NatsClient
    sent: list[SentText] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    _sub: Subscription | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def __aenter__(self) -> GatewayStandIn:
        self._sub = await self.nc.subscribe(names.WAHA_SEND_SUBJECT, cb=self._answer)
        await self.nc.flush()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _answer(self, msg: Msg) -> None:
        body = json.loads(msg.data)
        chat_id = body["chatId"]
        if chat_id in self.refuse:
            await msg.respond(json.dumps({"error": self.refuse[chat_id], "status": 422}).encode())
            return
        self.sent.append(SentText(session=body["session"], chat_id=chat_id, text=body["text"]))
        key = next(self._ids)
        answer = {"id": f"true_{chat_id}_{key:08d}", "to": chat_id, "session": body["session"]}
        await msg.respond(json.dumps(answer).encode())


@dataclass
class UserApi:
    """A local HTTP API the functions call: users, an echo, redirects anywhere, a counter."""

    base: str = ""
    requests: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return self.base + path

    async def __aenter__(self) -> UserApi:
        app = web.Application()
        app.router.add_get("/users", self._users)
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_get("/redirect", self._redirect)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _users(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        return web.json_response(USERS)

    async def _echo(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        body = (await request.read()).decode("utf-8", "replace")
        return web.json_response({"method": request.method, "body": body})

    async def _redirect(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        return web.Response(status=302, headers={"Location": request.query["to"]})


def function_definition(
    function_id: str,
    *,
    name: str = "function chrono",
    channel_id: str | None = None,
    extras: dict[str, Any] | None = None,
    retry: RetryPolicy | None = None,
    timeout_ms: int | None = None,
) -> ChronoDefinition:
    """A FUNCTION chrono definition (daily at 07:30 UTC; runs are requested directly)."""
    return ChronoDefinition(
        name=name,
        cron="daily at 07:30",
        timezone="UTC",
        schedule=NormalizedSchedule(
            type="recurring", cron="30 7 * * *", timezone="UTC", description="daily at 07:30"
        ),
        target_type=TargetType.FUNCTION,
        function_id=function_id,
        channel_id=channel_id,
        extras=extras or {},
        config=ExecConfig(
            retry=retry or RetryPolicy(attempts=1),
            timeout_ms=timeout_ms,
        ),
    )


def run_request(
    definition: ChronoDefinition,
    *,
    chrono_id: str | None = None,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
) -> RunRequested:
    """A RunRequested for one attempt of one occurrence, as the scheduler emits it."""
    chrono = chrono_id or new_id()
    when = scheduled_for or utc_now()
    occurrence = occurrence_id(chrono, when)
    return RunRequested(
        chrono_id=chrono,
        run_id=run_id(occurrence, attempt),
        occurrence_id=occurrence,
        scheduled_for=when,
        trigger=Trigger.SCHEDULE,
        attempt=attempt,
        target_type=TargetType.FUNCTION,
        chrono_version=1,
        chrono_name=definition.name,
        definition=definition,
    )


async def publish_run(js: JetStreamContext, request: RunRequested) -> PubAck:
    """Put ``request`` on the FUNCTION queue with the scheduler's message id."""
    return await publish_event(
        js,
        names.work_subject("function"),
        request,
        msg_id=run_request_msg_id(request.chrono_id, request.scheduled_for, request.attempt),
    )


async def until(check: Callable[[], Any], *, interval: float = 0.05) -> Any:
    """Poll ``check`` (plain or async) until it returns something truthy; bound it with
    ``asyncio.timeout``. Returns that value."""
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return outcome
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_executor(
    *,
    nats_url: str,
    database_url: str,
    cache_dir: str,
    environ: Mapping[str, str] | None = None,
    resolver: AbstractResolver | None = None,
    **env: str,
) -> AsyncIterator[FastAPI]:
    """executor-function with its real lifespan: development profile (loopback allowlisted
    unless ``CHRONOFLOW_EGRESS_ALLOW`` is given), four sandboxes, a short ack wait."""
    values = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_PROFILE": "development",
        "FUNCTION_CACHE_DIR": cache_dir,
        "FUNCTION_POOL_SIZE": "4",
        "EXECUTOR_FUNCTION_ACK_WAIT_SECONDS": "6",
        "EXECUTOR_FUNCTION_SHUTDOWN_GRACE_SECONDS": "2",
        **env,
    }
    app = create_app(
        ExecutorFunctionSettings.model_validate(values), resolver=resolver, environ=environ or {}
    )
    async with app.router.lifespan_context(app):
        yield app
