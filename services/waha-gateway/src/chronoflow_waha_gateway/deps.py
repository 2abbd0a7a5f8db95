"""``Annotated`` dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from chronoflow_waha_gateway.auth import KeyChecker
from chronoflow_waha_gateway.errors import GatewayError
from chronoflow_waha_gateway.follower import StatusFollower
from chronoflow_waha_gateway.sessions import SessionBook
from chronoflow_waha_gateway.settings import WahaGatewaySettings
from chronoflow_waha_gateway.waha_client import WahaClient


def _state(request: Request, name: str) -> object:
    return request.app.state.runtime.state[name]


async def _waha(request: Request) -> WahaClient:
    client = _state(request, "waha")
    assert isinstance(client, WahaClient)
    return client


async def _book(request: Request) -> SessionBook:
    book = _state(request, "book")
    assert isinstance(book, SessionBook)
    return book


async def _follower(request: Request) -> StatusFollower:
    follower = _state(request, "follower")
    assert isinstance(follower, StatusFollower)
    return follower


async def _settings(request: Request) -> WahaGatewaySettings:
    settings = request.app.state.runtime.settings
    assert isinstance(settings, WahaGatewaySettings)
    return settings


async def _require_key(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    checker = _state(request, "keys")
    assert isinstance(checker, KeyChecker)
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key or not await checker.is_valid(key.strip()):
        raise GatewayError(
            401,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


WahaDep = Annotated[WahaClient, Depends(_waha)]
BookDep = Annotated[SessionBook, Depends(_book)]
FollowerDep = Annotated[StatusFollower, Depends(_follower)]
SettingsDep = Annotated[WahaGatewaySettings, Depends(_settings)]
RequireKey = Depends(_require_key)
