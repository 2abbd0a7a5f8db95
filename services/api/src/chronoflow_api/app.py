"""Builds the api service: routes, error shape, lifespan wiring and operational endpoints."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from chronoflow_api.deps import RequireKey
from chronoflow_api.domain import Policy
from chronoflow_api.errors import install_error_handlers
from chronoflow_api.routes import channels, chronos, functions, runs, schedules
from chronoflow_api.service import Services
from chronoflow_api.settings import ApiSettings
from chronoflow_api.shortcut import CreateChronoShortcut
from chronoflow_api.store import EventStore
from chronoflow_api.watermark import ProjectionWatermark
from chronoflow_platform.auth import KeyChecker
from chronoflow_platform.header_secrets import HeaderCipher
from chronoflow_platform.service import Runtime, create_service_app

log = logging.getLogger(__name__)


def _cipher(settings: ApiSettings) -> HeaderCipher:
    if settings.secrets_key is not None:
        return HeaderCipher(settings.secrets_key.get_secret_value())
    if settings.profile == "production":
        raise RuntimeError(
            "CHRONOFLOW_SECRETS_KEY is required in production: header secrets are encrypted "
            "with it before they enter the event log (generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())'`)"
        )
    log.warning("no CHRONOFLOW_SECRETS_KEY: using a throw-away key (development only)")
    return HeaderCipher(Fernet.generate_key().decode())


def _document_bearer_auth(app: FastAPI, guarded_routers: Iterable[APIRouter]) -> None:
    """Declare the API-key scheme in OpenAPI on every operation that checks it (the check reads
    the header itself, so no parameter documents it)."""
    guarded = {
        (route.path, method.lower())
        for router in guarded_routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # which FastAPI also keeps as app.openapi_schema, served from then on
        schema.setdefault("components", {})["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key"}
        }
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                if (path, method) in guarded:
                    operation["security"] = [{"apiKey": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: ApiSettings) -> FastAPI:
    """The api ASGI app; NATS and Postgres are connected in its lifespan."""
    cipher = _cipher(settings)
    policy = Policy(
        default_timezone=settings.default_timezone,
        allowed_methods=frozenset(
            m.strip().upper() for m in settings.allowed_methods.split(",") if m.strip()
        ),
    )

    async def startup(runtime: Runtime) -> None:
        assert runtime.engine is not None
        watermark = ProjectionWatermark(runtime.engine)
        await watermark.start(runtime.nc)
        store = EventStore(runtime.js, watermark, settings.read_your_writes_timeout_seconds)
        runtime.state["watermark"] = watermark
        runtime.state["keys"] = KeyChecker(runtime.engine)
        runtime.state["services"] = Services(
            engine=runtime.engine, store=store, policy=policy, cipher=cipher
        )

    async def shutdown(runtime: Runtime) -> None:
        watermark: ProjectionWatermark | None = runtime.state.get("watermark")
        if watermark is not None:
            await watermark.stop()

    app = FastAPI(
        # FastAPI's own OpenTelemetry instrumentation stays off: the server spans come from
        # setup_service_tracing (docs/operations.md, Tracing), which it would only duplicate,
        # and even with nothing to record it looks up the global tracer, meter and logger
        # providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        title="ChronoFlow API",
        version="1.0.0",
        description=(
            "Schedule HTTP webhooks, WhatsApp messages and JavaScript functions with natural "
            "language (English/Portuguese) or cron. Every endpoint but `/health`, `/ready` "
            "and `/metrics` needs `Authorization: Bearer <key>`."
        ),
    )
    install_error_handlers(app)
    guarded = (chronos.router, runs.router, channels.router, functions.router, schedules.router)
    for router in guarded:
        app.include_router(router, dependencies=[RequireKey])
    _document_bearer_auth(app, guarded)
    # Added first, so it sits inside the middleware create_service_app adds (request metrics,
    # and the server span when tracing is on): those see every create as before.
    create_route = next(
        route
        for route in chronos.router.routes
        if isinstance(route, APIRoute) and route.endpoint is chronos.create_chrono
    )
    app.add_middleware(CreateChronoShortcut, route=create_route)
    return create_service_app(
        name="api",
        settings=settings,
        needs_db=True,
        on_startup=startup,
        on_shutdown=shutdown,
        app=app,
    )
