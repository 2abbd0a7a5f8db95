"""Versioned event contracts, shared schemas and NATS names: the seams between services."""

from chronoflow_contracts.base import CamelModel, Event, new_id, utc_now
from chronoflow_contracts.registry import EVENT_MODELS, LATEST, UnknownEventError, decode, encode

__all__ = [
    "EVENT_MODELS",
    "LATEST",
    "CamelModel",
    "Event",
    "UnknownEventError",
    "decode",
    "encode",
    "new_id",
    "utc_now",
]
