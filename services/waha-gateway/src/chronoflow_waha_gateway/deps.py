"""``Annotated`` dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chronoflow_platform.auth import require_key
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


WahaDep = Annotated[WahaClient, Depends(_waha)]
BookDep = Annotated[SessionBook, Depends(_book)]
FollowerDep = Annotated[StatusFollower, Depends(_follower)]
SettingsDep = Annotated[WahaGatewaySettings, Depends(_settings)]
RequireKey = Depends(require_key)
