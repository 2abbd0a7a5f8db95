"""Builds the waha-gateway service: the WAHA client, the session routes, the webhook, the send
responder and the status reconcile loop."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from fastapi import FastAPI

from chronoflow_platform.auth import KeyChecker
from chronoflow_platform.service import Runtime, create_service_app
from chronoflow_waha_gateway.db import ChannelDirectory
from chronoflow_waha_gateway.errors import install_error_handlers
from chronoflow_waha_gateway.follower import StatusFollower, watch_channels
from chronoflow_waha_gateway.handlers import SendResponder
from chronoflow_waha_gateway.metrics import GatewayMetrics
from chronoflow_waha_gateway.pacing import Pacer
from chronoflow_waha_gateway.record import SentRecord, open_bucket
from chronoflow_waha_gateway.routes import sessions, webhooks
from chronoflow_waha_gateway.sending import Sender
from chronoflow_waha_gateway.sessions import SessionBook
from chronoflow_waha_gateway.settings import WahaGatewaySettings
from chronoflow_waha_gateway.transport import WahaTransport
from chronoflow_waha_gateway.waha_client import WahaClient, WahaError

log = logging.getLogger(__name__)


def create_app(
    settings: WahaGatewaySettings, *, waha_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The waha-gateway ASGI app; NATS, Postgres and the WAHA client live in its lifespan.

    ``waha_transport`` replaces the HTTP transport to WAHA (tests check the contract with it).
    """
    app = FastAPI(
        title="ChronoFlow waha-gateway",
        description="WhatsApp sessions through WAHA, WAHA's webhooks, and paced sends.",
    )
    install_error_handlers(app)
    app.include_router(sessions.router)
    app.include_router(webhooks.router)

    async def start(runtime: Runtime) -> None:
        assert runtime.engine is not None
        # Wall-clock time: session observations are ordered against WAHA's event times.
        clock = time.time
        waha = WahaClient(
            settings.waha_base_url,
            settings.waha_api_key,
            timeout=settings.waha_timeout_seconds,
            transport=waha_transport or WahaTransport(),
        )
        runtime.state["waha"] = waha
        metrics = GatewayMetrics.register(runtime.registry)
        book = SessionBook(waha=waha, metrics=metrics, clock=clock)
        directory = ChannelDirectory(runtime.engine, clock=time.monotonic)
        record = SentRecord(await open_bucket(runtime.js, replicas=settings.stream_replicas))
        pacer = Pacer(
            rate_per_second=settings.send_rate_per_second,
            jitter_s=settings.send_jitter_ms / 1000,
            max_wait_s=settings.send_max_wait_seconds,
            clock=time.monotonic,
        )
        sender = Sender(
            waha=waha,
            book=book,
            pacer=pacer,
            directory=directory,
            record=record,
            metrics=metrics,
            rate_limit_pause_s=settings.rate_limit_pause_seconds,
        )
        follower = StatusFollower(
            js=runtime.js, waha=waha, directory=directory, book=book, clock=clock
        )
        runtime.state.update(book=book, follower=follower, keys=KeyChecker(runtime.engine))
        responder = SendResponder(runtime.nc, sender)
        await responder.start()
        runtime.state["responder"] = responder
        runtime.spawn(watch_channels(runtime.js, follower), name="waha-channel-watch")
        runtime.spawn(
            _reconcile_forever(follower, settings.status_poll_seconds), name="waha-reconcile"
        )
        if settings.webhook_hmac_key is None:
            log.warning(
                "WAHA_WEBHOOK_HMAC_KEY is not set: session.status webhooks are accepted unsigned "
                "(development profile only)"
            )
        log.info(
            "WAHA at %s; sends paced at %s per session",
            settings.waha_base_url,
            f"{settings.send_rate_per_second:g}/s" if pacer.enabled else "no limit",
        )

    async def stop(runtime: Runtime) -> None:
        responder: SendResponder | None = runtime.state.get("responder")
        if responder is not None:
            await responder.stop()
        waha: WahaClient | None = runtime.state.get("waha")
        if waha is not None:
            await waha.aclose()

    return create_service_app(
        name="waha-gateway",
        settings=settings,
        needs_db=True,
        on_startup=start,
        on_shutdown=stop,
        app=app,
    )


async def _reconcile_forever(follower: StatusFollower, period_s: float) -> None:
    """Catch the channels up with WAHA now and then; WAHA being away is only a warning."""
    while True:
        try:
            changed = await follower.reconcile()
        except WahaError as exc:
            log.warning("cannot read the sessions from WAHA: %s", exc)
        except Exception:
            log.exception("reconciling channel statuses failed")
        else:
            if changed:
                log.info("reconcile corrected %d channel statuses", changed)
        await asyncio.sleep(period_s)
