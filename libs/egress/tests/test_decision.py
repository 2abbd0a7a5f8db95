"""The pure decision function over every address form, and IP literals read from URLs."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoflow_egress import BlockReason, EgressPolicy, check_address, classify, literal_address

OFF = EgressPolicy()
R = BlockReason

BLOCKED = [
    ("10.0.0.1", R.PRIVATE),
    ("172.16.0.1", R.PRIVATE),
    ("172.31.255.254", R.PRIVATE),
    ("192.168.1.1", R.PRIVATE),
    ("169.254.169.254", R.METADATA),
    ("169.254.170.2", R.METADATA),
    ("100.100.100.200", R.METADATA),
    ("168.63.129.16", R.METADATA),
    ("fd00:ec2::254", R.METADATA),
    ("169.254.1.1", R.LINK_LOCAL),
    ("100.64.0.1", R.CGNAT),
    ("100.127.255.254", R.CGNAT),
    ("127.0.0.1", R.LOOPBACK),
    ("127.255.255.254", R.LOOPBACK),
    ("::1", R.LOOPBACK),
    ("::ffff:127.0.0.1", R.LOOPBACK),
    ("::ffff:10.0.0.1", R.PRIVATE),
    ("::ffff:169.254.169.254", R.METADATA),
    ("64:ff9b::a9fe:a9fe", R.METADATA),
    ("64:ff9b::7f00:1", R.LOOPBACK),
    ("64:ff9b::a00:1", R.PRIVATE),
    ("64:ff9b::6440:1", R.CGNAT),
    ("2002:7f00:1::", R.LOOPBACK),
    ("2002:a9fe:a9fe::1", R.METADATA),
    ("0.0.0.0", R.UNSPECIFIED),  # noqa: S104 - an address under test, not a bind
    ("0.1.2.3", R.UNSPECIFIED),
    ("::", R.UNSPECIFIED),
    ("fe80::1", R.LINK_LOCAL),
    ("fe80::1%eth0", R.LINK_LOCAL),
    ("fc00::1", R.PRIVATE),
    ("fd12:3456::1", R.PRIVATE),
    ("fec0::1", R.PRIVATE),
    ("224.0.0.1", R.MULTICAST),
    ("239.255.255.250", R.MULTICAST),
    ("ff02::1", R.MULTICAST),
    ("240.0.0.1", R.RESERVED),
    ("255.255.255.255", R.RESERVED),
    ("::7f00:1", R.RESERVED),
    ("::ffff:0:7f00:1", R.RESERVED),
    ("100::1", R.RESERVED),
    ("192.0.2.1", R.NOT_GLOBAL),
    ("198.18.0.1", R.NOT_GLOBAL),
    ("2001:db8::1", R.NOT_GLOBAL),
    ("2001::1", R.NOT_GLOBAL),
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_refused_addresses_carry_their_reason(address: str, reason: BlockReason) -> None:
    decision = check_address(address, 443, OFF)
    assert not decision.allowed
    assert decision.reason is reason


@pytest.mark.parametrize("address", ALLOWED)
def test_globally_routable_addresses_pass(address: str) -> None:
    decision = check_address(address, 443, OFF)
    assert decision.allowed
    assert not decision.allowlisted


def test_mapped_and_nat64_forms_are_judged_by_the_embedded_ipv4() -> None:
    assert check_address("::ffff:10.0.0.1", 80, OFF).effective == IPv4Address("10.0.0.1")
    nat64 = check_address("64:ff9b::a9fe:a9fe", 80, OFF)
    assert nat64.effective == IPv4Address("169.254.169.254")
    assert nat64.reason is R.METADATA


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7F000001:8080/",
        "http://017700000001/",
        "http://127.1/",
        "http://127.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
    ],
)
def test_loopback_in_any_url_literal_form_is_loopback(url: str) -> None:
    host = httpx.URL(url).host
    address = literal_address(host)
    assert address is not None
    assert check_address(address, 80, OFF).reason is R.LOOPBACK


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0x00.0x00.0x01", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("3232235777", "192.168.1.1"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[fe80::1%25eth0]", "fe80::1%eth0"),
    ],
)
def test_legacy_literal_forms_are_read_as_the_resolver_reads_them(host: str, expected: str) -> None:
    assert literal_address(host) == ip_address(expected)


@pytest.mark.parametrize(
    "host", ["example.com", "1e100.net", "0x7g000001", "256.1.1.1", "4294967296", "1..2", "", "a:b"]
)
def test_names_and_malformed_numbers_are_not_literals(host: str) -> None:
    assert literal_address(host) is None


def test_allowlisted_networks_pass_and_say_so() -> None:
    policy = EgressPolicy.from_allowlist("127.0.0.0/8,::1", allowlist_permitted=True)
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"):
        decision = check_address(address, 8080, policy)
        assert decision.allowed, address
        assert decision.allowlisted
    assert check_address("10.0.0.1", 8080, policy).reason is R.PRIVATE
    assert not check_address("8.8.8.8", 443, policy).allowlisted


def test_host_and_port_entries_match_only_that_name_and_port() -> None:
    policy = EgressPolicy.from_allowlist("sink.test:8080,127.0.0.1:9000", allowlist_permitted=True)
    assert check_address("10.0.0.7", 8080, policy, host="SINK.test.").allowlisted
    assert check_address("10.0.0.7", 8081, policy, host="sink.test").reason is R.PRIVATE
    assert check_address("10.0.0.7", 8080, policy, host="other.test").reason is R.PRIVATE
    assert check_address("10.0.0.7", 8080, policy).reason is R.PRIVATE
    assert check_address("127.0.0.1", 9000, policy).allowlisted
    assert check_address("127.0.0.1", 9001, policy).reason is R.LOOPBACK


ipv4 = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)


@given(ipv4)
def test_every_wrapped_ipv4_is_judged_as_the_ipv4(address: IPv4Address) -> None:
    mapped = IPv6Address(0xFFFF_0000_0000 | int(address))
    nat64 = IPv6Address((0x64_FF9B << 96) | int(address))
    assert classify(mapped) == classify(address)
    assert classify(nat64) == classify(address)


@given(ipv4)
def test_every_numeric_spelling_reads_back(address: IPv4Address) -> None:
    value = int(address)
    assert literal_address(str(value)) == address
    assert literal_address(hex(value)) == address
    assert literal_address("0" + oct(value)[2:]) == address
    assert literal_address(str(address)) == address
