"""Standard Webhooks signing against the published test vector and the reference library."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from chronoflow_egress.signing import (
    SignatureError,
    generate_secret,
    secret_key,
    sign,
    verify,
    webhook_headers,
)

# The vector every Standard Webhooks implementation reproduces.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

DOC = Path(__file__).resolve().parents[3] / "docs" / "egress-and-signing.md"


def test_the_published_vector_reproduces() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    # The prefix is optional, as in the reference implementations.
    assert sign(VECTOR_SECRET.removeprefix("whsec_"), VECTOR_ID, VECTOR_TS, VECTOR_BODY) == (
        VECTOR_SIGNATURE
    )


def test_the_vector_verifies() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TS + 10)


def test_rotation_sends_one_signature_per_secret() -> None:
    new = generate_secret()
    both = sign([VECTOR_SECRET, new], VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    first, second = both.split(" ")
    assert first == VECTOR_SIGNATURE
    assert second == sign(new, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    headers = webhook_headers([VECTOR_SECRET, new], VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TS)
    # A receiver holding only the old secret, or only the new one, accepts it.
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TS)
    verify(new, headers, VECTOR_BODY, now=VECTOR_TS)


def test_the_reference_library_verifies_our_headers() -> None:
    secret = generate_secret()
    body = b'{"chronoId": "c1", "text": "ol\xc3\xa1"}'
    headers = webhook_headers(secret, "run_01J", body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert Webhook(secret).verify(body, headers) == {"chronoId": "c1", "text": "olá"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, "no webhook"),
        ({"webhook-signature": "v2," + VECTOR_SIGNATURE[3:]}, "no webhook"),
        ({"webhook-signature": "v1,%%%"}, "no webhook"),
        ({"webhook-id": "msg_other"}, "no webhook"),
        ({"webhook-timestamp": str(VECTOR_TS + 1)}, "no webhook"),
        ({"webhook-timestamp": "16142653.30"}, "Unix time"),
        ({"webhook-id": ""}, "missing"),
    ],
)
def test_tampering_fails(change: dict[str, str], message: str) -> None:
    headers = {
        "Webhook-Id": VECTOR_ID,
        "Webhook-Timestamp": str(VECTOR_TS),
        "Webhook-Signature": VECTOR_SIGNATURE,
    }
    headers = {k.lower(): v for k, v in headers.items()} | change
    with pytest.raises(SignatureError, match=message):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TS)


def test_a_changed_body_fails() -> None:
    headers = webhook_headers(VECTOR_SECRET, VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TS)
    with pytest.raises(SignatureError):
        verify(VECTOR_SECRET, headers, VECTOR_BODY + b" ", now=VECTOR_TS)


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_or_future_timestamps_fail(skew: int) -> None:
    headers = webhook_headers(VECTOR_SECRET, VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TS)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TS + skew)
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TS + skew // 301 * 300)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_", "", "whsec_====="])
def test_bad_secrets_fail_without_echoing_them(secret: str) -> None:
    with pytest.raises(SignatureError) as raised:
        secret_key(secret)
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in str(raised.value)


def test_generated_secrets_are_long_enough_and_distinct() -> None:
    secrets = {generate_secret() for _ in range(20)}
    assert len(secrets) == 20
    assert all(len(secret_key(s)) == 32 for s in secrets)
    with pytest.raises(ValueError, match="24 to 64"):
        generate_secret(16)


def test_the_documented_receiver_snippet_verifies() -> None:
    """The Python snippet in docs/egress-and-signing.md, run as written, accepts our headers."""
    match = re.search(r"```python\n(# receiver-snippet\n.*?)```", DOC.read_text(), re.DOTALL)
    assert match, "the receiver snippet is missing from the docs"
    namespace: dict[str, object] = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    verify_webhook = namespace["verify_webhook"]
    assert callable(verify_webhook)

    secret = generate_secret()
    body = b'{"hello": "world"}'
    headers = webhook_headers([generate_secret(), secret], "run_1", body)
    assert verify_webhook(secret, headers, body) is True
    assert verify_webhook(secret, headers, body + b"!") is False
    vector = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert verify_webhook(VECTOR_SECRET, vector, VECTOR_BODY, now=VECTOR_TS) is True
