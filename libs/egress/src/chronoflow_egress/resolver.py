"""An aiohttp resolver that resolves once and hands the connector only addresses the policy allows.

aiohttp connects to exactly the addresses its resolver returns, so filtering here is what makes
the checked address the connected one: no second lookup exists for DNS rebinding to exploit.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from chronoflow_egress.decision import BlockReason, EgressBlocked, check_address
from chronoflow_egress.policy import EgressPolicy, IPAddress, normalise_host

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
    ) -> None:
        self._policy = policy
        self._inner = inner

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
        raise EgressBlocked(refusal[0], host=host, port=port, address=refusal[1])

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


class StaticResolver(AbstractResolver):
    """Answers from a fixed table instead of DNS, and records what it was asked.

    For tests: put it under :class:`GuardedResolver` (``build_client(resolver=...)``) to see how
    the guard treats any answer, without a DNS server. An unknown name fails as DNS would.
    """

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {normalise_host(host): list(addresses) for host, addresses in table.items()}
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        addresses = self.table.get(normalise_host(host))
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the static table")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass
