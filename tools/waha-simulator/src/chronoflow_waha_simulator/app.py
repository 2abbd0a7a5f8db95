"""Builds the simulator's ASGI app: routes, WAHA-shaped errors, and a lifespan for its tasks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chronoflow_waha_simulator.protocol import WAHA_VERSION, WahaHTTPError, http_error
from chronoflow_waha_simulator.routes import auth, chatting, operations, sessions, sim
from chronoflow_waha_simulator.settings import SimulatorSettings
from chronoflow_waha_simulator.simulator import Simulator


def create_app(settings: SimulatorSettings) -> FastAPI:
    """The simulator; its state is at ``app.state.simulator`` (started by the lifespan)."""
    simulator = Simulator(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await simulator.start()
        try:
            yield
        finally:
            await simulator.aclose()

    app = FastAPI(
        title="ChronoFlow WAHA simulator",
        version=WAHA_VERSION,
        description="Behaves like WAHA's published contract; simulator controls are under /_sim.",
        lifespan=lifespan,
        docs_url="/_sim/docs",
        redoc_url=None,
        openapi_url="/_sim/openapi.json",
    )
    app.state.simulator = simulator

    @app.exception_handler(WahaHTTPError)
    async def waha_error(_: Request, exc: WahaHTTPError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # NestJS's ValidationPipe answers 400 with a list of messages, not FastAPI's 422.
        messages = [
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'body'} {err['msg']}"
            for err in exc.errors()
        ]
        return await waha_error(request, http_error(400, messages))

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = (
            f"Cannot {request.method} {request.url.path}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return await waha_error(request, http_error(exc.status_code, message))

    for module in (operations, sessions, auth, chatting, sim):
        app.include_router(module.router)
    return app
