"""Support for tests and benchmarks: a stand-in waha-gateway, a user API on loopback, run requests.

Not used by the service itself. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from chronoflow_contracts import names
from chronoflow_contracts.chrono import ChronoDefinition, ExecConfig, RetryPolicy, TargetType
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply, WahaSendRequest
from chronoflow_executor_function.app import create_app
from chronoflow_executor_function.settings import ExecutorFunctionSettings
from chronoflow_platform.executor.testing import publish_run, run_request, until

__all__ = [
    "USERS",
    "GatewayStandIn",
    "SentText",
    "UserApi",
    "function_definition",
    "publish_run",
    "run_request",
    "running_executor",
    "until",
]

#: The users the original product's example function reads (its ``/users?overdue=true``).
USERS = [
    {"name": "Ana", "phone": "+55 11 99999-9999"},
    {"name": "Bruno", "phone": "+5511888888888"},
    {"name": "Carla", "phone": "5511777777777@c.us"},
]


@dataclass(frozen=True, slots=True)
class SentText:
    """One text the stand-in gateway accepted."""

    session: str
    chat_id: str
    text: str


@dataclass
class GatewayStandIn:
    """Answers ``WAHA_SEND_SUBJECT`` as the waha-gateway's contract says (``chronoflow_contracts
    .waha``): resolves ``channelId`` through ``sessions``, sends once per idempotency key.

    ``refuse`` (chat id → reply) answers that reply for a chat; ``pace`` (chat id → n) answers
    the first n requests for a chat with a retryable ``paced`` refusal.
    """

    nc: NatsClient
    sessions: dict[str, str] = field(default_factory=dict)
    refuse: dict[str, WahaSendReply] = field(default_factory=dict)
    pace: dict[str, int] = field(default_factory=dict)
    pace_retry_after: float = 0.1
    sent: list[SentText] = field(default_factory=list)
    requests: list[WahaSendRequest] = field(default_factory=list)
    _keys: dict[str, str] = field(default_factory=dict)
    _sub: Subscription | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def __aenter__(self) -> GatewayStandIn:
        self._sub = await self.nc.subscribe(
            names.WAHA_SEND_SUBJECT, queue=names.WAHA_GATEWAY_QUEUE, cb=self._answer
        )
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
        reply = self._reply(WahaSendRequest.model_validate_json(msg.data))
        await msg.respond(reply.model_dump_json(by_alias=True, exclude_none=True).encode())

    def _reply(self, request: WahaSendRequest) -> WahaSendReply:
        self.requests.append(request)
        chat = request.chat_id
        session = request.session or self.sessions.get(request.channel_id or "")
        if session is None:
            return WahaSendReply(
                ok=False,
                code=SendErrorCode.UNKNOWN_CHANNEL,
                error=f"channel {request.channel_id} does not exist (or is not a WAHA channel)",
            )
        if chat in self.refuse:
            return self.refuse[chat]
        if self.pace.get(chat, 0) > 0:
            self.pace[chat] -= 1
            return WahaSendReply(
                ok=False,
                code=SendErrorCode.PACED,
                error=f"session '{session}' sends at most 1 text(s) per second",
                retryable=True,
                retry_after=self.pace_retry_after,
            )
        key = request.idempotency_key
        if key is not None and key in self._keys:
            return WahaSendReply(
                ok=True,
                message_id=self._keys[key],
                session=session,
                chat_id=chat,
                deduplicated=True,
            )
        self.sent.append(SentText(session=session, chat_id=chat, text=request.text))
        message_id = f"true_{chat}_{next(self._ids):08d}"
        if key is not None:
            self._keys[key] = message_id
        return WahaSendReply(ok=True, message_id=message_id, session=session, chat_id=chat)


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
