"""The shape every service shares: NATS (+ Postgres) in a lifespan, /health, /ready, /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chronoflow_platform import db, heap, jetstream
from chronoflow_platform.settings import BaseServiceSettings
from chronoflow_platform.telemetry import setup_service_tracing

log = logging.getLogger(__name__)

#: How many times, and how long apart, shutdown cancels a background loop that goes on.
_CANCEL_ROUNDS = 20
_CANCEL_WAIT_S = 0.5


@dataclass
class Runtime:
    """What a running service holds: connections, its metrics registry, its background tasks."""

    name: str
    settings: BaseServiceSettings
    nc: NatsClient
    js: JetStreamContext
    registry: CollectorRegistry
    engine: AsyncEngine | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def spawn(self, coro: Awaitable[Any], *, name: str) -> None:
        """Run a background loop for the service's lifetime; a crash in it is logged loudly."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed", name)
                raise

        self.tasks.append(asyncio.create_task(guarded(), name=name))

    async def stop_tasks(self) -> None:
        """Cancel the background loops and wait until each has ended.

        One cancel is not always enough on Python 3.11: ``asyncio.wait_for`` (which nats-py
        uses for every request) returns the reply instead of raising when the cancel races
        the reply's arrival, and the loop around it goes on. So a loop still running after a
        moment is cancelled again, at whatever it awaits next.
        """
        pending = {task for task in self.tasks if not task.done()}
        for _ in range(_CANCEL_ROUNDS):
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=_CANCEL_WAIT_S)
        if pending:
            log.error("background tasks did not stop: %s", sorted(t.get_name() for t in pending))
        await asyncio.gather(*(t for t in self.tasks if t.done()), return_exceptions=True)


Startup = Callable[[Runtime], Awaitable[None]]
Shutdown = Callable[[Runtime], Awaitable[None]]


def create_service_app(
    *,
    name: str,
    settings: BaseServiceSettings,
    needs_db: bool,
    on_startup: Startup | None = None,
    on_shutdown: Shutdown | None = None,
    registry: CollectorRegistry | None = None,
    app: FastAPI | None = None,
    synchronous_commit: bool = True,
) -> FastAPI:
    """Wrap (or build) a FastAPI app with the service lifespan and operational endpoints.

    The runtime is at ``app.state.runtime`` once the lifespan has started.
    """
    # Without this every counter and histogram also exposes a `<name>_created` gauge series:
    # twice the series, none of them in deploy/grafana/metrics.txt.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = registry or CollectorRegistry()

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        nc = await jetstream.connect(settings.nats_url, name=name)
        js = nc.jetstream()
        await jetstream.provision_streams(
            js,
            duplicate_window=settings.duplicate_window_seconds,
            replicas=settings.stream_replicas,
        )
        engine = (
            db.create_engine(
                settings.database_url.get_secret_value(), synchronous_commit=synchronous_commit
            )
            if needs_db
            else None
        )
        runtime = Runtime(
            name=name, settings=settings, nc=nc, js=js, registry=registry, engine=engine
        )
        app_.state.runtime = runtime
        try:
            if on_startup is not None:
                await on_startup(runtime)
            log.info("%s started", name)
            yield
        finally:
            await runtime.stop_tasks()
            if on_shutdown is not None:
                await on_shutdown(runtime)
            with contextlib.suppress(Exception):
                await nc.drain()
            if engine is not None:
                await engine.dispose()
            log.info("%s stopped", name)

    if app is None:
        app = FastAPI(title=f"ChronoFlow {name}", lifespan=lifespan)
    else:
        app.router.lifespan_context = lifespan
    setup_service_tracing(name, app)
    app.add_middleware(RequestMetrics, registry=registry)

    @app.get("/health", tags=["operations"], summary="Liveness: the process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/ready", tags=["operations"], summary="Readiness: NATS and Postgres reachable")
    async def ready() -> JSONResponse:
        runtime: Runtime | None = getattr(app.state, "runtime", None)
        checks: dict[str, str] = {}
        if runtime is None:
            return JSONResponse({"status": "starting", "checks": checks}, status_code=503)
        checks["nats"] = "ok" if runtime.nc.is_connected else "disconnected"
        if runtime.engine is not None:
            try:
                await asyncio.wait_for(db.ping(runtime.engine), timeout=2)
                checks["postgres"] = "ok"
            except Exception as exc:  # any failure means "not ready"; the type is reported
                checks["postgres"] = f"error: {type(exc).__name__}"
        crashed = [t.get_name() for t in runtime.tasks if t.done()]
        if crashed:
            checks["tasks"] = "stopped: " + ", ".join(crashed)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class RequestMetrics:
    """Pure ASGI middleware: request latency by route template (never the raw path, whose ids
    would explode the label set). Cheaper per request than a BaseHTTPMiddleware."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.duration = Histogram(
            "chronoflow_api_request_duration_seconds",
            "HTTP request latency by route template",
            ["route", "method", "status"],
            registry=registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and label it once the response has started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            if template not in _UNMEASURED:
                self.duration.labels(template, scope["method"], str(status)).observe(
                    time.perf_counter() - start
                )


_UNMEASURED = frozenset({"/metrics", "/health", "/ready"})


def serve(app: FastAPI, *, host: str, port: int, full_gc_threshold: int | None = None) -> None:
    """Run the app until SIGTERM/SIGINT; uvicorn finishes the lifespan so shutdown is clean.

    The heap is settled first (:func:`chronoflow_platform.heap.settle`, which receives
    ``full_gc_threshold``): everything imported and built so far stays for the process's life.
    """
    heap.settle(full_threshold=full_gc_threshold)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="uvloop",
        http="httptools",
    )
    uvicorn.Server(config).run()
