"""WAHA's webhook signature and the QR route's content negotiation, as pure functions."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from chronoflow_waha_gateway.routes.sessions import wants_json
from chronoflow_waha_gateway.webhooks import sign, signature_valid
from chronoflow_waha_simulator.webhooks import sign as simulator_sign

BODY = b'{"event":"session.status","session":"default","payload":{"status":"WORKING"}}'


def test_the_signature_is_hex_hmac_sha512_of_the_raw_body_as_waha_makes_it() -> None:
    expected = hmac.new(b"k3y", BODY, hashlib.sha512).hexdigest()
    assert sign(BODY, "k3y") == expected == simulator_sign(BODY, "k3y")


def test_a_right_signature_is_accepted_in_any_case() -> None:
    signature = sign(BODY, "k3y")
    assert signature_valid(BODY, "k3y", signature, "sha512")
    assert signature_valid(BODY, "k3y", signature.upper(), None)


@pytest.mark.parametrize(
    ("body", "key", "signature", "algorithm"),
    [
        (BODY, "k3y", None, "sha512"),
        (BODY, "k3y", "", "sha512"),
        (BODY, "other", sign(BODY, "k3y"), "sha512"),
        (BODY + b" ", "k3y", sign(BODY, "k3y"), "sha512"),
        (BODY, "k3y", sign(BODY, "k3y")[:-2], "sha512"),
        (BODY, "k3y", sign(BODY, "k3y"), "sha256"),
        (BODY, "k3y", "é" * 128, "sha512"),
    ],
    ids=["missing", "empty", "wrong-key", "body-changed", "truncated", "algorithm", "non-ascii"],
)
def test_anything_else_is_refused(
    body: bytes, key: str, signature: str | None, algorithm: str
) -> None:
    assert not signature_valid(body, key, signature, algorithm)


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        ("", False),
        ("*/*", False),
        ("image/png", False),
        ("application/json", True),
        ("application/json, image/png", True),
        ("image/png, application/json", False),
        ("image/png;q=0.5, application/json", True),
        ("application/json;q=0", False),
        ("text/html,application/xhtml+xml,image/avif,image/webp,*/*;q=0.8", False),
    ],
)
def test_the_qr_is_json_only_when_json_is_preferred(accept: str, json: bool) -> None:
    assert wants_json(accept) is json
