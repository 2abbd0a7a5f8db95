"""WAHA's ``POST /api/sendText``: refuses unless the session is WORKING, then records it."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from chronoflow_waha_simulator import ids
from chronoflow_waha_simulator.deps import ApiGuards, SimulatorDep
from chronoflow_waha_simulator.protocol import (
    SessionStatus,
    session_not_running,
    status_not_expected,
)

router = APIRouter(prefix="/api", tags=["chatting"], dependencies=ApiGuards)

SEND_TEXT = "/api/sendText"


class MessageTextRequest(BaseModel):
    """``MessageTextRequest``: ``chatId``, ``text`` and ``session`` are required."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    chat_id: str = Field(alias="chatId", min_length=1)
    text: str
    session: str = Field(min_length=1)
    id: str | None = None
    reply_to: str | None = None
    link_preview: bool | None = Field(default=None, alias="linkPreview")
    link_preview_high_quality: bool | None = Field(default=None, alias="linkPreviewHighQuality")


@router.post("/sendText", status_code=201, summary="Send a text message")
async def send_text(body: MessageTextRequest, simulator: SimulatorDep) -> dict[str, Any]:
    """Deliver a text as ``WAMessage``.

    Like WAHA: 404 when the session is not running (unknown or STOPPED), 422 when it is running
    but not WORKING after waiting ``WAHA_SIM_STATUS_WAIT_SECONDS``.
    """
    faults = simulator.faults
    request_body = body.model_dump(by_alias=True, exclude_none=True)
    if slow := faults.take(delay=True, path=SEND_TEXT, session=body.session, chat_id=body.chat_id):
        await asyncio.sleep(slow.spec.delay_seconds)
    session = simulator.sessions.get(body.session)
    if session is None or not session.running:
        raise session_not_running(body.session)
    expected = [SessionStatus.WORKING]
    if not await simulator.sessions.wait_for(
        session, expected, simulator.settings.status_wait_seconds
    ):
        raise status_not_expected(body.session, session.status, expected)
    if fault := faults.take(
        delay=False, path=SEND_TEXT, session=body.session, chat_id=body.chat_id
    ):
        raise fault.error(path=SEND_TEXT, method="POST", body=request_body)
    me = (session.me or {}).get("id", "")
    message = simulator.messages.record(
        message_id=ids.message_id(body.chat_id, body.id),
        session=body.session,
        chat_id=body.chat_id,
        text=body.text,
        reply_to=body.reply_to,
        link_preview=body.link_preview,
    )
    return {
        "id": message.id,
        "timestamp": message.timestamp,
        "from": me,
        "fromMe": True,
        "source": "api",
        "to": body.chat_id,
        "participant": me,
        "body": body.text,
        "hasMedia": False,
        "mediaUrl": "",
        "ack": 1,
        "ackName": "SERVER",
        "vCards": [],
        "_data": {"id": {"fromMe": True, "remote": body.chat_id, "_serialized": message.id}},
    }
