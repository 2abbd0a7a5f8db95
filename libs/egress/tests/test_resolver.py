"""The guard at the resolver: resolve once, check every answer, return only what passed.

These call the resolver directly (resolve, then check) with a fake DNS table, so private and
metadata answers are judged without any connection being attempted.
"""

from __future__ import annotations

import pytest

from chronoflow_egress import (
    BlockReason,
    EgressBlocked,
    EgressPolicy,
    GuardedResolver,
    StaticResolver,
)

TABLE = {
    "internal.test": ["10.0.0.5", "192.168.1.1"],
    "metadata.test": ["169.254.169.254"],
    "nat64-metadata.test": ["64:ff9b::a9fe:a9fe"],
    "cgnat.test": ["100.64.0.1"],
    "rebind.test": ["93.184.215.14", "127.0.0.1"],
    "public.test": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "garbage.test": ["not-an-address"],
    "empty.test": [],
}


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("internal.test", BlockReason.PRIVATE),
        ("metadata.test", BlockReason.METADATA),
        ("nat64-metadata.test", BlockReason.METADATA),
        ("cgnat.test", BlockReason.CGNAT),
        ("garbage.test", BlockReason.INVALID_HOST),
    ],
)
async def test_names_resolving_to_refused_addresses_are_blocked(
    host: str, reason: BlockReason
) -> None:
    resolver = GuardedResolver(EgressPolicy(), inner=StaticResolver(TABLE))
    with pytest.raises(EgressBlocked) as raised:
        await resolver.resolve(host, 443)
    assert raised.value.reason is reason
    assert raised.value.host == host
    # The resolved address stays out of the message: it would map the internal network.
    assert "10.0.0.5" not in str(raised.value)
    assert "169.254" not in str(raised.value)


async def test_only_checked_answers_reach_the_connector() -> None:
    """A name answering public and loopback at once gets the public answer only: the loopback
    address is never handed to aiohttp, so it cannot be connected to (no DNS rebinding)."""
    resolver = GuardedResolver(EgressPolicy(), inner=StaticResolver(TABLE))
    answers = await resolver.resolve("rebind.test", 443)
    assert [a["host"] for a in answers] == ["93.184.215.14"]
    both = await resolver.resolve("public.test", 443)
    assert len(both) == 2


async def test_each_lookup_is_one_resolution() -> None:
    inner = StaticResolver(TABLE)
    resolver = GuardedResolver(EgressPolicy(), inner=inner)
    await resolver.resolve("public.test", 443)
    assert inner.asked == ["public.test"]


async def test_host_allowlist_lets_a_named_private_sink_through() -> None:
    policy = EgressPolicy.from_allowlist("internal.test:8080", allowlist_permitted=True)
    resolver = GuardedResolver(policy, inner=StaticResolver(TABLE))
    answers = await resolver.resolve("internal.test", 8080)
    assert [a["host"] for a in answers] == ["10.0.0.5", "192.168.1.1"]
    with pytest.raises(EgressBlocked):
        await resolver.resolve("internal.test", 8081)


async def test_an_empty_answer_is_passed_on_for_aiohttp_to_report() -> None:
    resolver = GuardedResolver(EgressPolicy(), inner=StaticResolver(TABLE))
    assert await resolver.resolve("empty.test", 443) == []
