"""The pure egress decision: may a request connect to this address and port?"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from chronoflow_egress.policy import EgressPolicy, IPAddress, IPNetwork


class BlockReason(enum.StrEnum):
    """Why a destination was refused; the value is the metric label."""

    SCHEME = "scheme"
    INVALID_HOST = "invalid_host"
    METADATA = "metadata"
    UNSPECIFIED = "unspecified"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link_local"
    CGNAT = "cgnat"
    PRIVATE = "private"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    NOT_GLOBAL = "not_global"


class EgressBlocked(Exception):  # noqa: N818 - the name says what happened to the request
    """The egress policy refused a request before any byte was sent to the destination.

    Not an ``httpx`` transport error on purpose: a refusal is permanent, never a reason to retry.
    The message names the reason and the host the caller asked for, never the resolved address
    (that would turn the error into an oracle for the internal network) nor the URL's path,
    query or credentials.
    """

    def __init__(
        self, reason: BlockReason, *, host: str, port: int, address: IPAddress | None = None
    ) -> None:
        super().__init__(f"egress blocked ({reason.value}): {host}:{port} is not permitted")
        self.reason = reason
        self.host = host
        self.port = port
        # For operators' logs only; kept out of the message on purpose.
        self.address = address


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ip_network(cidr) for cidr in cidrs)


# Cloud instance-metadata and platform endpoints. Checked first so the reason says METADATA
# even where the address also sits in a link-local or private block; 168.63.129.16 (Azure's
# wire server) is in public address space and would otherwise pass.
_METADATA = _networks(
    "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
    "169.254.170.2/32",  # AWS ECS task metadata
    "169.254.170.23/32",  # AWS EKS pod identity
    "100.100.100.200/32",  # Alibaba Cloud
    "168.63.129.16/32",  # Azure wire server
    "192.0.0.192/32",  # Oracle Cloud (legacy)
    "fd00:ec2::254/128",  # AWS IMDS over IPv6
    "fd00:ec2::23/128",  # AWS EKS pod identity over IPv6
)

# Order matters: the first block that contains the address names the reason.
_CLASSES: tuple[tuple[BlockReason, tuple[IPNetwork, ...]], ...] = (
    (BlockReason.METADATA, _METADATA),
    # Linux connects 0.0.0.0/8 to the local host.
    (BlockReason.UNSPECIFIED, _networks("0.0.0.0/8", "::/128")),
    (BlockReason.LOOPBACK, _networks("127.0.0.0/8", "::1/128")),
    (BlockReason.LINK_LOCAL, _networks("169.254.0.0/16", "fe80::/10")),
    (BlockReason.CGNAT, _networks("100.64.0.0/10")),
    (
        BlockReason.PRIVATE,
        _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10"),
    ),
    (BlockReason.MULTICAST, _networks("224.0.0.0/4", "ff00::/8")),
    # 240/4 includes the limited broadcast address; ::/8 holds the deprecated IPv4-compatible
    # (::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d) forms, refused rather than decoded.
    (BlockReason.RESERVED, _networks("240.0.0.0/4", "::/8")),
)

_IPV4_MAPPED = ip_network("::ffff:0:0/96")
_NAT64 = ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ip_network("2002::/16")


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address delivers to."""
    if address in _IPV4_MAPPED or address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> BlockReason | None:
    """The reason an address is not a public destination, or None if it is globally routable."""
    if isinstance(address, IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = classify(inner)
            # A 6to4 address wrapping a public IPv4 is still judged as the IPv6 it is.
            if reason is not None or address not in _SIX_TO_FOUR:
                return reason
        # A zone id ("fe80::1%eth0") does not change what the address is.
        address = IPv6Address(int(address))
    for reason, networks in _CLASSES:
        if any(address.version == net.version and address in net for net in networks):
            return reason
    if isinstance(address, IPv6Address) and address.is_reserved:
        return BlockReason.RESERVED
    if not address.is_global:
        return BlockReason.NOT_GLOBAL
    return None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one address: allowed, or blocked with a reason.

    ``effective`` is the address packets actually reach (the embedded IPv4 of a mapped or NAT64
    form), which is what the allowlist is matched against. ``allowlisted`` marks an address that
    passed only because an allowlist entry covers it.
    """

    address: IPAddress
    port: int
    effective: IPAddress
    reason: BlockReason | None
    allowlisted: bool = False

    @property
    def allowed(self) -> bool:
        return self.reason is None


def effective_address(address: IPAddress) -> IPAddress:
    """The address packets reach: the embedded IPv4 of a mapped or NAT64 form, else itself."""
    if isinstance(address, IPv6Address) and (address in _IPV4_MAPPED or address in _NAT64):
        inner = embedded_ipv4(address)
        if inner is not None:
            return inner
    return address


def check_address(
    ip: str | IPAddress, port: int, policy: EgressPolicy, *, host: str | None = None
) -> Decision:
    """Decide whether a connection to ``ip:port`` is permitted. Pure: no I/O, no resolution.

    ``host`` is the name the caller asked for, for host-name allowlist entries; the address
    itself must already be resolved.
    """
    address = ip_address(ip) if isinstance(ip, str) else ip
    effective = effective_address(address)
    reason = classify(address)
    if reason is not None and policy.allowlisted(effective, port, host):
        return Decision(address, port, effective, None, allowlisted=True)
    return Decision(address, port, effective, reason)


def _ipv4_part(text: str) -> int | None:
    """One part of a legacy IPv4 literal, as inet_aton and the WHATWG URL parser read it."""
    if not text.isascii():
        return None
    base = 10
    digits = text
    if text[:2].lower() == "0x":
        base, digits = 16, text[2:] or "0"
    elif len(text) > 1 and text.startswith("0"):
        base, digits = 8, text[1:]
    try:
        return int(digits, base) if digits and digits.isalnum() else None
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> IPv4Address | None:
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_part(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return IPv4Address(value)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host denotes if it is an IP literal in any form, else None.

    Reads every form the system resolver accepts without DNS: dotted quads, IPv6 (brackets and
    a ``%25`` zone id allowed), and the legacy decimal (``2130706433``), octal
    (``017700000001``, ``0177.0.0.1``), hex (``0x7f000001``) and short (``127.1``) IPv4 forms.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ip_address(text.replace("%25", "%", 1))
        except ValueError:
            return None
    return _legacy_ipv4(text)


def looks_like_literal(host: str) -> bool:
    """Whether aiohttp treats the host as an IP literal and so skips the resolver for it."""
    return ":" in host or host.replace(".", "").isdigit()
