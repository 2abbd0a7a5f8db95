"""``/channels``: WhatsApp channels (WAHA sessions)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from chronoflow_api import queries
from chronoflow_api.deps import IfMatch, ServicesDep
from chronoflow_api.errors import not_found
from chronoflow_api.routes.chronos import ERRORS, Skip, Take
from chronoflow_api.schemas import ChannelCreate, ChannelOut, ChannelPatch, Page

router = APIRouter(prefix="/channels", tags=["channels"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_channel(
    body: ChannelCreate, services: ServicesDep, response: Response
) -> ChannelOut:
    """Create a channel for a WAHA session."""
    channel = await services.create_channel(body)
    response.headers["Location"] = f"/channels/{channel.id}"
    return channel


@router.get("", responses=ERRORS)
async def list_channels(services: ServicesDep, skip: Skip = 0, take: Take = 20) -> Page[ChannelOut]:
    """Channels, newest first."""
    items, total = await queries.list_channels(services.engine, skip=skip, take=take)
    return Page[ChannelOut](items=items, total=total, skip=skip, take=take)


@router.get("/{channel_id}", responses=ERRORS)
async def get_channel(channel_id: str, services: ServicesDep) -> ChannelOut:
    """One channel with its session status."""
    channel = await queries.get_channel(services.engine, channel_id)
    if channel is None:
        raise not_found("channel", channel_id)
    return channel


@router.patch("/{channel_id}", responses=ERRORS)
async def update_channel(
    channel_id: str, body: ChannelPatch, services: ServicesDep, if_match: IfMatch
) -> ChannelOut:
    """Rename or re-point a channel."""
    return await services.update_channel(channel_id, body, if_match)


@router.delete("/{channel_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_channel(channel_id: str, services: ServicesDep, if_match: IfMatch) -> None:
    """Delete a channel."""
    await services.delete_channel(channel_id, if_match)
