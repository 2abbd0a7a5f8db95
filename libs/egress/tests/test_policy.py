"""Allowlist syntax, profiles and the configuration errors a typo produces."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from chronoflow_egress import (
    ALLOW_ENV_VAR,
    DEVELOPMENT_ALLOWLIST,
    AllowEntry,
    EgressConfigError,
    EgressPolicy,
    parse_allowlist,
)


def test_every_entry_form_parses() -> None:
    entries = parse_allowlist(
        "127.0.0.0/8, ::1 ,[::1]:8443,10.1.2.3,192.168.0.9:9000,localhost:8080,Sink.Test.,fd00::/8,"
    )
    assert entries == (
        AllowEntry(network=ip_network("127.0.0.0/8")),
        AllowEntry(network=ip_network("::1/128")),
        AllowEntry(network=ip_network("::1/128"), port=8443),
        AllowEntry(network=ip_network("10.1.2.3/32")),
        AllowEntry(network=ip_network("192.168.0.9/32"), port=9000),
        AllowEntry(host="localhost", port=8080),
        AllowEntry(host="sink.test"),
        AllowEntry(network=ip_network("fd00::/8")),
    )
    assert [str(e) for e in entries[2:6]] == [
        "[::1]:8443",
        "10.1.2.3/32",
        "192.168.0.9:9000",
        "localhost:8080",
    ]


@pytest.mark.parametrize(
    "entry",
    [
        "10.0.0.1/8",
        "300.0.0.0/8",
        "localhost:http",
        "localhost:0",
        "localhost:70000",
        "*.example.com",
        "bad host",
        "[::1",
        "[127.0.0.1]:80",
        "[::1]8080",
        "fe80::zz",
        "under_score.test",
        "http://example.com",
    ],
)
def test_invalid_entries_name_the_variable(entry: str) -> None:
    with pytest.raises(EgressConfigError, match=ALLOW_ENV_VAR) as raised:
        EgressPolicy.from_allowlist(f"127.0.0.1,{entry}", allowlist_permitted=True)
    assert repr(entry) in str(raised.value)


def test_production_refuses_a_non_empty_allowlist() -> None:
    with pytest.raises(EgressConfigError, match="does not permit"):
        EgressPolicy.from_env({ALLOW_ENV_VAR: "127.0.0.0/8"}, allowlist_permitted=False)
    assert EgressPolicy.from_env({}, allowlist_permitted=False).allow == ()
    assert EgressPolicy.from_env({ALLOW_ENV_VAR: " , "}, allowlist_permitted=False).allow == ()


def test_development_reads_the_variable() -> None:
    policy = EgressPolicy.from_env(
        {ALLOW_ENV_VAR: "127.0.0.0/8,localhost:8080"}, allowlist_permitted=True
    )
    assert len(policy.allow) == 2
    assert EgressPolicy.from_allowlist(DEVELOPMENT_ALLOWLIST, allowlist_permitted=True).allow


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV_VAR, "10.9.0.0/16")
    assert EgressPolicy.from_env(allowlist_permitted=True).allow == (
        AllowEntry(network=ip_network("10.9.0.0/16")),
    )


@pytest.mark.parametrize("hops", [-1, 21])
def test_redirect_bound_is_enforced(hops: int) -> None:
    with pytest.raises(EgressConfigError, match="max_redirects"):
        EgressPolicy(max_redirects=hops)
