"""The egress policy: which destinations an outgoing request may reach, read from configuration."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Protocol, TypeAlias

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network

ALLOW_ENV_VAR = "CHRONOFLOW_EGRESS_ALLOW"
# What the development profile allowlists when the variable is unset: the local demo's sinks.
DEVELOPMENT_ALLOWLIST = "127.0.0.0/8,::1,localhost"
DEFAULT_MAX_REDIRECTS = 5
# A redirect chain longer than this is a loop or an attack, whatever a caller asks for.
MAX_REDIRECTS_LIMIT = 20

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class EgressConfigError(ValueError):
    """The egress configuration cannot be used; the message names the setting at fault."""


def normalise_host(host: str) -> str:
    """Lower-case a host name and drop a trailing root dot, as DNS compares names."""
    return host.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One allowlist entry: a network (any port, or one port) or a host name (any port, or one)."""

    network: IPNetwork | None = None
    host: str | None = None
    port: int | None = None

    def matches(self, address: IPAddress, port: int, host: str | None) -> bool:
        """Whether a connection to ``address:port``, reached through ``host``, is allowlisted."""
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address.version == self.network.version and address in self.network
        return host is not None and normalise_host(host) == self.host

    def __str__(self) -> str:
        target = str(self.network) if self.network is not None else str(self.host)
        if self.port is None:
            return target
        if self.network is not None and self.network.version == 6:
            return f"[{self.network.network_address}]:{self.port}"
        if self.network is not None:
            return f"{self.network.network_address}:{self.port}"
        return f"{target}:{self.port}"


def _parse_port(text: str, entry: str, source: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise EgressConfigError(f"{source}: {entry!r} has an invalid port {text!r}")
    return int(text)


def _single_address(text: str) -> IPAddress | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _host_entry(host: str, port: int | None, entry: str, source: str) -> AllowEntry:
    address = _single_address(host)
    if address is not None:
        return AllowEntry(network=ip_network(address), port=port)
    name = normalise_host(host)
    if not _HOSTNAME.fullmatch(name) or len(name) > 253:
        raise EgressConfigError(
            f"{source}: {entry!r} is not a host, host:port, IP address or CIDR network"
        )
    return AllowEntry(host=name, port=port)


def parse_allow_entry(entry: str, *, source: str = ALLOW_ENV_VAR) -> AllowEntry:
    """Parse one entry: ``10.1.0.0/16``, ``::1``, ``[::1]:8080``, ``127.0.0.1:9000``,
    ``sink.local:8080`` or ``sink.local``.
    """
    text = entry.strip()
    if "/" in text:
        try:
            return AllowEntry(network=ip_network(text, strict=True))
        except ValueError as exc:
            raise EgressConfigError(f"{source}: {entry!r} is not a valid CIDR network") from exc
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        address = _single_address(inside)
        if not bracket or address is None or address.version != 6:
            raise EgressConfigError(f"{source}: {entry!r} is not a valid [IPv6]:port entry")
        if not rest:
            return AllowEntry(network=ip_network(address))
        if not rest.startswith(":"):
            raise EgressConfigError(f"{source}: {entry!r} is not a valid [IPv6]:port entry")
        return AllowEntry(network=ip_network(address), port=_parse_port(rest[1:], entry, source))
    if text.count(":") > 1:
        address = _single_address(text)
        if address is None:
            raise EgressConfigError(f"{source}: {entry!r} is not a valid IPv6 address")
        return AllowEntry(network=ip_network(address))
    host, colon, port_text = text.partition(":")
    port = _parse_port(port_text, entry, source) if colon else None
    return _host_entry(host, port, entry, source)


def parse_allowlist(text: str, *, source: str = ALLOW_ENV_VAR) -> tuple[AllowEntry, ...]:
    """Parse a comma-separated allowlist; blank items (a trailing comma) are skipped."""
    return tuple(parse_allow_entry(item, source=source) for item in text.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """What outgoing requests may reach: globally routable addresses, plus the allowlist.

    ``allowlist_permitted`` is False in the production profile, where a non-empty allowlist is
    a configuration error rather than something silently ignored.
    """

    allow: tuple[AllowEntry, ...] = ()
    allowlist_permitted: bool = False
    max_redirects: int = DEFAULT_MAX_REDIRECTS

    def __post_init__(self) -> None:
        if self.allow and not self.allowlist_permitted:
            raise EgressConfigError(
                f"{ALLOW_ENV_VAR} is set, but this profile does not permit an egress allowlist "
                "(production refuses one); unset it or run the development profile"
            )
        if not 0 <= self.max_redirects <= MAX_REDIRECTS_LIMIT:
            raise EgressConfigError(
                f"max_redirects must be between 0 and {MAX_REDIRECTS_LIMIT}, "
                f"got {self.max_redirects}"
            )

    @classmethod
    def from_allowlist(
        cls,
        text: str | None,
        *,
        allowlist_permitted: bool,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        source: str = ALLOW_ENV_VAR,
    ) -> EgressPolicy:
        """Build a policy from an allowlist string such as ``"127.0.0.0/8,localhost:8080"``."""
        return cls(
            allow=parse_allowlist(text or "", source=source),
            allowlist_permitted=allowlist_permitted,
            max_redirects=max_redirects,
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        allowlist_permitted: bool,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ) -> EgressPolicy:
        """Build a policy from ``CHRONOFLOW_EGRESS_ALLOW`` in ``environ`` (default: os.environ)."""
        env = os.environ if environ is None else environ
        return cls.from_allowlist(
            env.get(ALLOW_ENV_VAR),
            allowlist_permitted=allowlist_permitted,
            max_redirects=max_redirects,
        )

    def allowlisted(self, address: IPAddress, port: int, host: str | None = None) -> bool:
        """Whether an allowlist entry covers this connection."""
        return any(entry.matches(address, port, host) for entry in self.allow)


class EgressSettings(Protocol):
    """What a service's settings say about egress (every executor's settings have both)."""

    @property
    def profile(self) -> str:
        """``development`` or ``production``."""

    @property
    def egress_allow(self) -> str | None:
        """``CHRONOFLOW_EGRESS_ALLOW``, or None when it is unset."""


def egress_policy(settings: EgressSettings) -> EgressPolicy:
    """A service's policy: development allowlists loopback unless told otherwise (an empty
    ``CHRONOFLOW_EGRESS_ALLOW`` switches that off); production refuses any allowlist."""
    development = settings.profile == "development"
    allow = settings.egress_allow
    if allow is None and development:
        allow = DEVELOPMENT_ALLOWLIST
    return EgressPolicy.from_allowlist(allow, allowlist_permitted=development)
