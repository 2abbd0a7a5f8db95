"""An aiohttp resolver that resolves once and hands the connector only addresses the policy allows.

aiohttp connects to exactly the addresses its resolver returns, so filtering here is what makes
the checked address the connected one: no second lookup exists for DNS rebinding to exploit.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from chronoflow_egress.decision import BlockReason, EgressBlocked, check_address
from chronoflow_egress.policy import EgressPolicy, IPAddress

logger = logging.getLogger(__name__)


class GuardedResolver(AbstractResolver):
    """Resolve through ``inner`` (the system resolver by default) and drop refused addresses.

    Raises :class:`EgressBlocked` when no resolved address is allowed. aiohttp never hands an
    IP-literal host to a resolver; :class:`chronoflow_egress.client.GuardedTransport` checks those.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        inner: AbstractResolver | None = None,
        on_blocked: Callable[[BlockReason], None] | None = None,
    ) -> None:
        self._policy = policy
        self._inner = inner
        self._on_blocked = on_blocked

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            # Created here, inside the running loop, which ThreadedResolver binds to.
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refusal: tuple[BlockReason, IPAddress | None] | None = None
        for result in results:
            try:
                decision = check_address(result["host"], port, self._policy, host=host)
            except ValueError:
                # Not an address at all: nothing we can vouch for, so never connect to it.
                refusal = refusal or (BlockReason.INVALID_HOST, None)
                continue
            if decision.reason is None:
                allowed.append(result)
            elif refusal is None:
                refusal = (decision.reason, decision.address)
        if refusal is None:
            return allowed
        if allowed:
            logger.info("egress: dropped refused answers for %s (%s)", host, refusal[0])
            return allowed
        if self._on_blocked is not None:
            self._on_blocked(refusal[0])
        raise EgressBlocked(refusal[0], host=host, port=port, address=refusal[1])

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
