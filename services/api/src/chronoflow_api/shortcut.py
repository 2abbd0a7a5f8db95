"""``POST /chronos`` without FastAPI's routing and dependency resolution, for the common request.

Creating chronos is the api's busiest write, and for it FastAPI's machinery (matching the
path against every route, resolving the key and services dependencies, reading and checking
the body through its parameter model, and the middleware between) cost about as much CPU as
the create itself. This ASGI shortcut, just inside the metrics middleware, answers a
well-formed JSON create directly with the same steps the route takes: the same API-key
check, the same body model, :meth:`Services.create_chrono` and the route's own response.

Anything unusual goes to FastAPI unchanged, the body replayed as it arrived: another path,
method or content type, a missing or invalid key, a body the model refuses. FastAPI then
answers it as it always has (so the 401 and 422 bodies are FastAPI's, byte for byte); the
route also stays the OpenAPI documentation. Only a create that has begun, whose append may
already have happened, is answered here whatever it raises: its errors go through the app's
own exception handlers, the ones the route's errors would reach.
"""

from __future__ import annotations

import json

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chronoflow_api.routes.chronos import created_response
from chronoflow_api.schemas import ChronoCreate
from chronoflow_api.service import Services
from chronoflow_platform.auth import require_key
from chronoflow_platform.errors import ApiError

_PATH = "/chronos"


class CreateChronoShortcut:
    """ASGI middleware: well-formed ``POST /chronos`` with a valid key here, the rest to ``app``.

    ``route`` is the route FastAPI would have chosen, set in the scope as routing sets it.
    """

    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the common create here; hand everything else on untouched."""
        if not _is_json_create(scope):
            await self.app(scope, receive, send)
            return
        received, body = await _read_body(receive)
        replay = _replaying(received, receive)
        if received[-1]["type"] != "http.request":
            await self.app(scope, replay, send)  # the client went away: as FastAPI handles it
            return
        request = Request(scope, replay)
        try:
            await require_key(request)
            # As FastAPI reads a JSON body: json.loads, then the model in Python mode.
            create = ChronoCreate.model_validate(json.loads(body))
        except Exception:
            # Whatever it is, FastAPI answers it its own way: a 401, a 422, or a 400 for a body
            # json.loads cannot take (one nested too deeply, say).
            await self.app(scope, replay, send)
            return
        # Set as routing sets it, so that the metrics label this request by its template.
        scope["route"] = self.route
        services: Services = request.app.state.runtime.state["services"]
        response: Response
        try:
            response = created_response(await services.create_chrono(create))
        except ApiError as exc:
            # The append may have happened: answered here, by the handler the route's error
            # would reach, never retried through FastAPI.
            response = await _error_response(request, exc)
        await response(scope, replay, send)


def _is_json_create(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != _PATH:
        return False
    if scope.get("root_path"):
        return False  # mounted under a prefix: routing knows how to strip it
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.lower() == b"application/json")
    return False


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """The messages read until the body is complete (or the client left), and the body."""
    received: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return received, b"".join(chunks)


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back what was already read, then goes on reading."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _error_response(request: Request, exc: ApiError) -> Response:
    # The handler Starlette's exception middleware would pick: that of the closest class.
    handlers = request.app.exception_handlers
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    response: Response = await handler(request, exc)
    return response
