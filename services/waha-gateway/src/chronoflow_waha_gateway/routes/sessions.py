"""``/waha/sessions``: WAHA's session API through the gateway, behind ChronoFlow's API key.

The gateway talks to the one WAHA its configuration names; a client never chooses a URL.
Answers are WAHA's own ``SessionInfo`` objects; failures use the gateway's error shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from chronoflow_contracts.waha import SESSION_PATTERN
from chronoflow_waha_gateway.deps import BookDep, RequireKey, WahaDep
from chronoflow_waha_gateway.sessions import ABSENT
from chronoflow_waha_gateway.waha_client import WahaSession

router = APIRouter(prefix="/waha/sessions", tags=["waha"], dependencies=[RequireKey])

SessionName = Annotated[
    str, Path(pattern=SESSION_PATTERN, description="WAHA session name, e.g. default")
]
PNG = "image/png"
JSON = "application/json"


class SessionCreate(BaseModel):
    """A new session: WAHA starts it unless ``start`` is false."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="default", pattern=SESSION_PATTERN)
    start: bool = True
    config: dict[str, Any] | None = None


class SessionUpdate(BaseModel):
    """A session's new config (WAHA restarts a running session)."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = None


class CodeRequest(BaseModel):
    """Link by phone number instead of a QR scan."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    phone_number: str = Field(alias="phoneNumber", pattern=r"^\+?[1-9]\d{7,14}$")
    method: str | None = Field(default=None, max_length=32)


def _out(book: BookDep, info: WahaSession) -> dict[str, Any]:
    book.learn_session(info)
    return info.model_dump(mode="json", exclude_none=True)


@router.get("", summary="List sessions (stopped ones too unless all=false)")
async def list_sessions(
    waha: WahaDep, book: BookDep, all_: Annotated[bool, Query(alias="all")] = True
) -> list[dict[str, Any]]:
    return [_out(book, s) for s in await waha.list_sessions(include_stopped=all_)]


@router.post("", status_code=201, summary="Create a session (and start it)")
async def create_session(
    waha: WahaDep, book: BookDep, body: Annotated[SessionCreate, Body()]
) -> dict[str, Any]:
    return _out(book, await waha.create_session(body.name, start=body.start, config=body.config))


@router.get("/{session}", summary="One session")
async def get_session(waha: WahaDep, book: BookDep, session: SessionName) -> dict[str, Any]:
    return _out(book, await waha.get_session(session))


@router.put("/{session}", summary="Replace a session's config")
async def update_session(
    waha: WahaDep, book: BookDep, session: SessionName, body: Annotated[SessionUpdate, Body()]
) -> dict[str, Any]:
    return _out(book, await waha.update_session(session, config=body.config))


@router.delete("/{session}", status_code=204, summary="Stop, log out and delete a session")
async def delete_session(waha: WahaDep, book: BookDep, session: SessionName) -> Response:
    await waha.delete_session(session)
    book.learn(session, ABSENT)
    return Response(status_code=204)


@router.post("/{session}/start", summary="Start a session")
async def start_session(waha: WahaDep, book: BookDep, session: SessionName) -> dict[str, Any]:
    return _out(book, await waha.start_session(session))


@router.post("/{session}/stop", summary="Stop a session (the phone stays linked)")
async def stop_session(waha: WahaDep, book: BookDep, session: SessionName) -> dict[str, Any]:
    return _out(book, await waha.stop_session(session))


@router.post("/{session}/logout", summary="Unlink the phone")
async def logout_session(waha: WahaDep, book: BookDep, session: SessionName) -> dict[str, Any]:
    return _out(book, await waha.logout_session(session))


@router.post("/{session}/restart", summary="Stop and start a session")
async def restart_session(waha: WahaDep, book: BookDep, session: SessionName) -> dict[str, Any]:
    return _out(book, await waha.restart_session(session))


@router.get(
    "/{session}/auth/qr",
    summary="The pairing QR: PNG, or base64 JSON with Accept: application/json",
    responses={
        200: {
            "content": {
                PNG: {"schema": {"type": "string", "format": "binary"}},
                JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {"mimetype": {"type": "string"}, "data": {"type": "string"}},
                    }
                },
            }
        }
    },
    response_model=None,
)
async def get_qr(
    waha: WahaDep,
    session: SessionName,
    request: Request,
    format_: Annotated[Literal["image", "raw"], Query(alias="format")] = "image",
) -> Response | dict[str, str]:
    if format_ == "raw":
        return {"value": await waha.get_qr_value(session)}
    if wants_json(request.headers.get("accept", "")):
        image = await waha.get_qr_base64(session)
        return {"mimetype": image.mimetype, "data": image.data}
    png = await waha.get_qr_png(session)
    return Response(png, media_type=PNG, headers={"Cache-Control": "no-store"})


@router.post("/{session}/auth/request-code", summary="A code to link by phone number")
async def request_code(
    waha: WahaDep, session: SessionName, body: Annotated[CodeRequest, Body()]
) -> dict[str, str]:
    return {"code": await waha.request_code(session, body.phone_number, method=body.method)}


def wants_json(accept: str) -> bool:
    """Whether ``Accept`` prefers JSON to a PNG (by quality, then by order); PNG by default."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.lower() in (JSON, PNG) and quality > 0:
            candidate = (-quality, position, media.lower())
            best = candidate if best is None or candidate < best else best
    return best is not None and best[2] == JSON
