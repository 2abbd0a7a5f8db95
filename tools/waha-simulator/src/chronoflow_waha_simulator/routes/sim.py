"""The simulator's own controls under ``/_sim`` (not part of WAHA; no API key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from chronoflow_waha_simulator.deps import SimulatorDep
from chronoflow_waha_simulator.faults import Fault, FaultSpec
from chronoflow_waha_simulator.messages import DeliveredMessage
from chronoflow_waha_simulator.protocol import SessionStatus, http_error, session_not_found

SIM_PREFIX = "/_sim"

router = APIRouter(prefix=SIM_PREFIX, tags=["simulator"])


class PairRequest(BaseModel):
    """Body of ``POST /_sim/sessions/{session}/pair`` (all optional)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    phone_number: str | None = None
    push_name: str | None = None


class FailRequest(BaseModel):
    """Body of ``POST /_sim/sessions/{session}/fail``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    logged_out: bool = False
    """True: the device was removed on the phone, so a restart needs a new QR scan."""


@router.post("/sessions/{session}/pair", summary="Scan the QR (or enter the code) on the phone")
async def pair(
    session: str, simulator: SimulatorDep, body: PairRequest | None = None
) -> dict[str, Any]:
    """SCAN_QR_CODE → WORKING; 409 in any other status."""
    target = simulator.sessions.get(session)
    if target is None:
        raise session_not_found()
    if target.status is not SessionStatus.SCAN_QR_CODE:
        raise http_error(409, f"Session '{session}' is {target.status.value}, not SCAN_QR_CODE")
    body = body or PairRequest()
    simulator.sessions.pair(target, phone_number=body.phone_number, push_name=body.push_name)
    return target.info()


@router.post("/sessions/{session}/fail", summary="Make a running session FAILED")
async def fail(
    session: str, simulator: SimulatorDep, body: FailRequest | None = None
) -> dict[str, Any]:
    """Any status → FAILED, as when WhatsApp drops the linked device."""
    target = simulator.sessions.get(session)
    if target is None:
        raise session_not_found()
    simulator.sessions.fail(target, logged_out=(body or FailRequest()).logged_out)
    return target.info()


@router.get("/messages", summary="Every delivered message, oldest first")
async def list_messages(
    simulator: SimulatorDep,
    session: str | None = None,
    chatId: str | None = None,  # noqa: N803
) -> list[DeliveredMessage]:
    """The record, optionally of one session and/or one chat."""
    return simulator.messages.find(session=session, chat_id=chatId)


@router.delete("/messages", summary="Forget every delivered message")
async def clear_messages(simulator: SimulatorDep) -> dict[str, int]:
    """Empty the record."""
    return {"deleted": simulator.messages.clear()}


@router.get("/faults", summary="The faults in force (spent ones included)")
async def list_faults(simulator: SimulatorDep) -> list[Fault]:
    """With ``hits`` and ``remaining``."""
    return simulator.faults.all()


@router.post("/faults", status_code=201, summary="Put a fault in force")
async def add_fault(spec: FaultSpec, simulator: SimulatorDep) -> Fault:
    """See ``FaultSpec``."""
    return simulator.faults.add(spec)


@router.delete("/faults", summary="Remove every fault")
async def clear_faults(simulator: SimulatorDep) -> Response:
    """No fault stays in force."""
    simulator.faults.clear()
    return Response(status_code=204)


@router.delete("/faults/{fault_id}", summary="Remove one fault")
async def remove_fault(fault_id: int, simulator: SimulatorDep) -> Response:
    """404 if there is no such fault."""
    if not simulator.faults.remove(fault_id):
        raise http_error(404, f"No fault {fault_id}")
    return Response(status_code=204)


@router.get("/webhooks", summary="Every webhook delivery (or attempt), oldest first")
async def list_webhooks(simulator: SimulatorDep, flush: bool = False) -> list[dict[str, Any]]:
    """With ``flush=true``, first waits for queued deliveries to finish."""
    if flush:
        await simulator.webhooks.drain()
    return [d.as_json() for d in simulator.webhooks.deliveries]


@router.delete("/webhooks", summary="Forget the webhook delivery log")
async def clear_webhooks(simulator: SimulatorDep) -> Response:
    """Empty the log."""
    simulator.webhooks.clear()
    return Response(status_code=204)


@router.post("/reset", summary="Back to a fresh simulator")
async def reset(simulator: SimulatorDep) -> Response:
    """Delete sessions (no webhooks for it), faults, messages and the webhook log."""
    await simulator.reset()
    return Response(status_code=204)
