"""The record of texts sent, by idempotency key, in a JetStream key-value bucket.

A run that is redelivered (its executor died mid-list) or retried after an answer that never
arrived asks again for texts that may already be out; the record answers with the first
message id instead of sending a second copy. It lives in JetStream, so a gateway restart keeps
it; entries expire after ``SENT_TTL_S``, far beyond any redelivery.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from chronoflow_contracts import names

log = logging.getLogger(__name__)

#: How long a sent text is remembered (a chrono's retries may span days).
SENT_TTL_S = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class SentText:
    """A text WAHA accepted."""

    message_id: str
    session: str
    chat_id: str
    sent_at: str


async def open_bucket(js: JetStreamContext, *, replicas: int = 1) -> KeyValue:
    """The bucket, created on first use."""
    try:
        return await js.key_value(names.WAHA_SENT_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(
            KeyValueConfig(
                bucket=names.WAHA_SENT_BUCKET,
                description="waha-gateway: texts sent, by idempotency key",
                history=1,
                ttl=SENT_TTL_S,
                storage=StorageType.FILE,
                replicas=replicas,
            )
        )


class SentRecord:
    """Looks sends up and remembers them."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @staticmethod
    def key(idempotency_key: str) -> str:
        """The bucket key: a digest, since chat ids hold characters keys may not."""
        return hashlib.sha256(idempotency_key.encode()).hexdigest()

    async def find(self, idempotency_key: str) -> SentText | None:
        """The text sent under this key, if any."""
        try:
            entry = await self._kv.get(self.key(idempotency_key))
        except KeyNotFoundError:
            return None
        try:
            return SentText(**json.loads(entry.value or b"{}"))
        except (TypeError, ValueError):
            log.warning("unreadable entry in %s; treating it as absent", names.WAHA_SENT_BUCKET)
            return None

    async def remember(self, idempotency_key: str, sent: SentText) -> None:
        """Record a text WAHA accepted."""
        await self._kv.put(self.key(idempotency_key), json.dumps(asdict(sent)).encode())
