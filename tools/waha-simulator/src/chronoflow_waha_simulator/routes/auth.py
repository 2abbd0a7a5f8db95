"""WAHA's pairing routes: ``GET /api/{session}/auth/qr`` and ``POST .../auth/request-code``."""

from __future__ import annotations

import base64
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from chronoflow_waha_simulator import ids
from chronoflow_waha_simulator.deps import ApiGuards, SimulatorDep
from chronoflow_waha_simulator.protocol import (
    SessionStatus,
    session_not_running,
    status_not_expected,
)
from chronoflow_waha_simulator.qr import render_png
from chronoflow_waha_simulator.sessions import Session
from chronoflow_waha_simulator.simulator import Simulator

router = APIRouter(prefix="/api/{session}/auth", tags=["pairing"], dependencies=ApiGuards)


class RequestCodeRequest(BaseModel):
    """``RequestCodeRequest``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    phone_number: str = Field(alias="phoneNumber", min_length=1)
    method: str | None = None


async def waiting_for_scan(simulator: Simulator, name: str) -> Session:
    """The running session once it asks for a scan; WAHA's 404 / 422 otherwise."""
    session = simulator.sessions.get(name)
    if session is None or not session.running:
        raise session_not_running(name)
    expected = [SessionStatus.SCAN_QR_CODE]
    if not await simulator.sessions.wait_for(
        session, expected, simulator.settings.status_wait_seconds
    ):
        raise status_not_expected(name, session.status, expected)
    return session


@router.get("/qr", summary="Get QR code for pairing WhatsApp API.", response_model=None)
async def get_qr(
    session: str,
    request: Request,
    simulator: SimulatorDep,
    format: Literal["image", "raw"] = "image",
) -> Response | dict[str, str]:
    """PNG by default, ``{mimetype, data}`` for ``Accept: application/json``, ``{value}`` raw."""
    target = await waiting_for_scan(simulator, session)
    value = target.qr or ""
    if format == "raw":
        return {"value": value}
    png = render_png(value)
    if "application/json" in request.headers.get("accept", ""):
        return {"mimetype": "image/png", "data": base64.b64encode(png).decode()}
    return Response(png, media_type="image/png")


@router.post("/request-code", status_code=201, summary="Request authentication code.")
async def request_code(
    session: str, body: RequestCodeRequest, simulator: SimulatorDep
) -> dict[str, str]:
    """A linking code for ``phoneNumber``; the simulated phone then pairs with that number."""
    target = await waiting_for_scan(simulator, session)
    target.pairing_phone = body.phone_number
    return {"code": ids.pairing_code()}
