"""WAHA's session routes (``/api/sessions``), with WAHA's status codes and bodies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from chronoflow_waha_simulator import ids
from chronoflow_waha_simulator.deps import ApiGuards, SimulatorDep
from chronoflow_waha_simulator.protocol import http_error, session_not_found
from chronoflow_waha_simulator.sessions import Session, SessionExistsError

router = APIRouter(prefix="/api/sessions", tags=["sessions"], dependencies=ApiGuards)


class SessionCreateRequest(BaseModel):
    """``SessionCreateRequest``."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    start: bool = True
    config: dict[str, Any] | None = None
    apps: list[dict[str, Any]] | None = None


class SessionUpdateRequest(BaseModel):
    """``SessionUpdateRequest`` (WAHA's examples also carry ``name``; it is ignored)."""

    model_config = ConfigDict(extra="allow")

    config: dict[str, Any] | None = None
    apps: list[dict[str, Any]] | None = None


def without_nulls(value: Any) -> Any:
    """Drop null members: the contract has no nullable config field, so absent means unset."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _existing(simulator: SimulatorDep, name: str) -> Session:
    session = simulator.sessions.get(name)
    if session is None:
        raise session_not_found()
    return session


ExpandQuery = Annotated[list[str] | None, Query()]


@router.get("", summary="List all sessions")
async def list_sessions(
    simulator: SimulatorDep, expand: ExpandQuery = None, all: bool = False
) -> list[dict[str, Any]]:
    """Running sessions, or every session with ``all=true``."""
    apps = "apps" in (expand or [])
    return [s.info(expand_apps=apps) for s in simulator.sessions.sessions(include_stopped=all)]


@router.post("", status_code=201, summary="Create a session")
async def create_session(body: SessionCreateRequest, simulator: SimulatorDep) -> dict[str, Any]:
    """Create (and by default start) a session; 422 if the name is taken."""
    name = body.name or f"session_{ids.ulid()}"
    config = without_nulls(body.config) if body.config is not None else None
    try:
        session = simulator.sessions.create(name, config=config, apps=body.apps)
    except SessionExistsError:
        raise http_error(422, f"Session '{name}' already exists. Use PUT to update it.") from None
    if body.start:
        simulator.sessions.start(session)
    return session.info()


@router.get("/{session}", summary="Get session information")
async def get_session(
    session: str, simulator: SimulatorDep, expand: ExpandQuery = None
) -> dict[str, Any]:
    """One session."""
    return _existing(simulator, session).info(expand_apps="apps" in (expand or []))


@router.put("/{session}", summary="Update a session")
async def update_session(
    session: str, body: SessionUpdateRequest, simulator: SimulatorDep
) -> dict[str, Any]:
    """Replace the config; a running session restarts with it."""
    target = _existing(simulator, session)
    config = without_nulls(body.config) if body.config is not None else None
    simulator.sessions.update(target, config=config, apps=body.apps)
    return target.info()


@router.delete("/{session}", summary="Delete the session")
async def delete_session(session: str, simulator: SimulatorDep) -> Response:
    """Stop, log out and delete; idempotent, with an empty 200."""
    simulator.sessions.delete(session)
    return Response(status_code=200)


@router.post("/{session}/start", status_code=201, summary="Start the session")
async def start_session(session: str, simulator: SimulatorDep) -> dict[str, Any]:
    """Start (idempotent)."""
    target = _existing(simulator, session)
    simulator.sessions.start(target)
    return target.info()


@router.post("/{session}/stop", status_code=201, summary="Stop the session")
async def stop_session(session: str, simulator: SimulatorDep) -> dict[str, Any]:
    """Stop (idempotent); the account stays linked."""
    target = _existing(simulator, session)
    simulator.sessions.stop(target)
    return target.info()


@router.post("/{session}/logout", status_code=201, summary="Logout from the session")
async def logout_session(session: str, simulator: SimulatorDep) -> dict[str, Any]:
    """Unlink the account; a running session starts again and asks for a new QR scan."""
    target = _existing(simulator, session)
    simulator.sessions.logout(target)
    return target.info()


@router.post("/{session}/restart", status_code=201, summary="Restart the session")
async def restart_session(session: str, simulator: SimulatorDep) -> dict[str, Any]:
    """Stop and start."""
    target = _existing(simulator, session)
    simulator.sessions.restart(target)
    return target.info()
