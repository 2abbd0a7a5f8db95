"""The channel aggregate: a WhatsApp session (through WAHA) that MESSAGE chronos send with."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from chronoflow_contracts.base import CamelModel, Event


class ChannelStatus(StrEnum):
    """The WAHA session status, as WAHA reports it."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    SCAN_QR_CODE = "SCAN_QR_CODE"
    WORKING = "WORKING"
    FAILED = "FAILED"


class ChannelConfig(CamelModel):
    """Provider settings of a channel."""

    session: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,64}$")


class ChannelDefinition(CamelModel):
    """Everything a client can set on a channel."""

    provider: Literal["WAHA"] = "WAHA"
    name: str
    config: ChannelConfig = Field(default_factory=ChannelConfig)


class ChannelEvent(Event):
    """An event of one channel."""

    channel_id: str


class ChannelCreated(ChannelEvent):
    """A channel was created."""

    TYPE: ClassVar[str] = "channel.created"
    VERSION: ClassVar[int] = 1
    definition: ChannelDefinition


class ChannelUpdated(ChannelEvent):
    """A channel's definition changed; carries the whole new definition."""

    TYPE: ClassVar[str] = "channel.updated"
    VERSION: ClassVar[int] = 1
    definition: ChannelDefinition


class ChannelDeleted(ChannelEvent):
    """A channel was removed."""

    TYPE: ClassVar[str] = "channel.deleted"
    VERSION: ClassVar[int] = 1


class ChannelStatusChanged(ChannelEvent):
    """WAHA reported a new status for the channel's session."""

    TYPE: ClassVar[str] = "channel.status_changed"
    VERSION: ClassVar[int] = 1
    session: str
    status: ChannelStatus
