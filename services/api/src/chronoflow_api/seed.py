"""The seed command: the default WAHA channel (session ``default``), created idempotently."""

from __future__ import annotations

from sqlalchemy import select

from chronoflow_api.settings import ApiSettings
from chronoflow_contracts import names, new_id
from chronoflow_contracts.channels import ChannelConfig, ChannelCreated, ChannelDefinition
from chronoflow_platform import db, jetstream
from chronoflow_platform.publishing import publish_event
from chronoflow_platform.schema import channels

DEFAULT_SESSION = "default"


async def seed_default_channel(settings: ApiSettings) -> dict[str, str]:
    """Create the default channel unless one for session ``default`` exists.

    Two seeds racing each other still write one event: the message id is fixed, so
    JetStream drops the second inside its duplicate window.
    """
    engine = db.create_engine(settings.database_url.get_secret_value(), pool_size=1)
    nc = await jetstream.connect(settings.nats_url, name="api-seed")
    try:
        async with engine.connect() as conn:
            existing = await conn.scalar(
                select(channels.c.id).where(channels.c.config["session"].astext == DEFAULT_SESSION)
            )
        if existing is not None:
            return {"channelId": str(existing), "created": "false"}
        channel_id = new_id()
        event = ChannelCreated(
            channel_id=channel_id,
            definition=ChannelDefinition(
                name="WhatsApp (default session)", config=ChannelConfig(session=DEFAULT_SESSION)
            ),
        )
        await publish_event(
            nc.jetstream(),
            names.aggregate_subject("channel", channel_id),
            event,
            msg_id=f"seed-channel-{DEFAULT_SESSION}",
        )
        return {"channelId": channel_id, "created": "true"}
    finally:
        await nc.drain()
        await engine.dispose()
