"""executor-http end to end: RunRequested on cf.work.http → a real sink on 127.0.0.1 → history.

Real nats-server and PostgreSQL (the session's), the projector and the api in-process, the
executor in-process with its real lifespan. Only loopback is ever contacted: refusals of other
address classes are proven with the egress decision function, never with a live request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.abc import AbstractResolver
from cryptography.fernet import Fernet
from fastapi import FastAPI
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from standardwebhooks import Webhook

from chronoflow_devstack.embedded import NatsServer, free_port
from chronoflow_egress import BlockReason, EgressPolicy, StaticResolver, check_address
from chronoflow_executor_http.app import create_app
from chronoflow_executor_http.settings import ExecutorHttpSettings
from chronoflow_executor_http.testing import (
    WebhookSink,
    http_definition,
    huge,
    publish_run,
    redirect,
    run_request,
    slow,
    statuses,
)
from chronoflow_platform.executor.testing import run_history
from chronoflow_platform.header_secrets import HeaderCipher

# The Standard Webhooks test vector's secret: the executor signs with it, so the reference
# library and the documented snippet verify real deliveries with the published secret.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SECRETS_KEY = Fernet.generate_key().decode()
DOC = Path(__file__).resolve().parents[1] / "docs" / "egress-and-signing.md"

Snippet = Callable[..., bool]


def documented_snippet() -> Snippet:
    """``verify_webhook`` from the receiver snippet in docs/egress-and-signing.md, as written."""
    match = re.search(r"```python\n(# receiver-snippet\n.*?)```", DOC.read_text(), re.DOTALL)
    assert match, "the receiver snippet is missing from docs/egress-and-signing.md"
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)  # noqa: S102 - our own documentation, run as a receiver would
    verify: Snippet = namespace["verify_webhook"]
    return verify


@contextlib.asynccontextmanager
async def running_executor(
    nats_url: str, *, resolver: AbstractResolver | None = None, **env: str
) -> AsyncIterator[FastAPI]:
    """executor-http with its real lifespan (development profile, loopback allowlisted)."""
    values = {
        "NATS_URL": nats_url,
        "CHRONOFLOW_PROFILE": "development",
        "CHRONOFLOW_WEBHOOK_SECRET": VECTOR_SECRET,
        "CHRONOFLOW_SECRETS_KEY": SECRETS_KEY,
        "EXECUTOR_HTTP_CONCURRENCY": "20",
        **env,
    }
    app = create_app(ExecutorHttpSettings.model_validate(values), resolver=resolver)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    """A webhook receiver on 127.0.0.1."""
    async with WebhookSink() as receiver:
        yield receiver


@pytest.fixture
async def executor(nats_server: NatsServer, api: httpx.AsyncClient) -> AsyncIterator[FastAPI]:
    """The executor, started after the streams were emptied."""
    async with running_executor(nats_server.url) as app:
        yield app


def registry_of(app: FastAPI) -> CollectorRegistry:
    registry: CollectorRegistry = app.state.runtime.registry
    return registry


def sample(app: FastAPI, name: str, labels: dict[str, str] | None = None) -> float:
    value = registry_of(app).get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- the happy path ---------------------------------------------------------------------------


async def test_a_run_reaches_the_sink_once_signed_and_history_shows_it(
    js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink, executor: FastAPI
) -> None:
    sealed = HeaderCipher(SECRETS_KEY).seal({"Authorization": "Bearer s3cr3t", "X-Trace": "123"})
    assert sealed["Authorization"].startswith("enc:v1:")
    url = sink.on("/hook", statuses(201))
    request = run_request(
        http_definition(url, method="PUT", headers=sealed, payload={"hello": "mundo", "n": 1})
    )
    await publish_run(js, request)

    runs = await run_history(api, request.chrono_id)
    assert len(sink.received) == 1
    got = sink.received[0]
    assert got.method == "PUT"
    assert got.path == "/hook"
    assert got.body == b'{"hello":"mundo","n":1}'
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-trace"] == "123"
    # Decrypted only at send time.
    assert got.headers["authorization"] == "Bearer s3cr3t"
    assert got.headers["webhook-id"] == request.occurrence_id
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 30
    # The reference library and the documented snippet both accept the delivery.
    Webhook(VECTOR_SECRET).verify(got.body, got.headers)
    verify = documented_snippet()
    assert verify(VECTOR_SECRET, got.headers, got.body)
    assert not verify(VECTOR_SECRET, got.headers, got.body + b" ")
    assert not verify(
        "whsec_" + base64.b64encode(b"another-key" * 3).decode(), got.headers, got.body
    )
    # ... and the snippet itself reproduces the published test vector.
    vector_headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert verify(VECTOR_SECRET, vector_headers, VECTOR_BODY, now=VECTOR_TS)

    [run] = runs
    assert run["id"] == request.run_id
    assert run["status"] == "SUCCESS"
    assert run["httpStatus"] == 201
    assert run["responseSnippet"] == "status 201"
    assert run["attempt"] == 1
    assert run["willRetry"] is False
    assert run["durationMs"] >= 0
    assert at(run["finishedAt"]) >= at(run["startedAt"])
    assert run["errorMessage"] is None
    assert sample(executor, "chronoflow_runs_total", {"target": "http", "status": "SUCCESS"}) == 1
    assert (
        sample(
            executor,
            "chronoflow_http_responses_total",
            {"status_class": "2xx", "outcome": "success"},
        )
        == 1
    )
    assert sample(executor, "chronoflow_run_duration_seconds_count", {"target": "http"}) == 1
    assert sample(executor, "chronoflow_http_inflight_requests") == 0


# --- the failure table ------------------------------------------------------------------------


async def test_500_then_200_is_retried_and_both_attempts_are_recorded(
    js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink, executor: FastAPI
) -> None:
    request = run_request(http_definition(sink.on("/flaky", statuses(500, 200)), attempts=3))
    await publish_run(js, request)

    first, second = await run_history(api, request.chrono_id, attempts=2)
    assert (first["attempt"], first["status"], first["httpStatus"]) == (1, "FAILED", 500)
    assert first["willRetry"] is True
    assert first["errorMessage"] == "HTTP 500"
    assert first["responseSnippet"] == "status 500"
    assert (second["attempt"], second["status"], second["httpStatus"]) == (2, "SUCCESS", 200)
    assert second["willRetry"] is False
    assert first["id"] == request.run_id != second["id"]
    assert first["occurrenceId"] == second["occurrenceId"] == request.occurrence_id
    # The receiver sees one delivery id across the attempts, each freshly timestamped.
    assert [r.webhook_id for r in sink.received] == [request.occurrence_id] * 2
    assert at(second["startedAt"]) >= at(first["finishedAt"])
    assert sample(executor, "chronoflow_run_retries_total", {"target": "http"}) == 1


async def test_429_with_retry_after_waits_at_least_that_long(
    js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink, executor: FastAPI
) -> None:
    url = sink.on("/busy", statuses(429, 200, headers={"Retry-After": "2"}))
    # The policy alone would come back after 100 ms; Retry-After is the floor.
    request = run_request(http_definition(url, attempts=2, delay_ms=100))
    await publish_run(js, request)

    first, second = await run_history(api, request.chrono_id, attempts=2)
    assert (first["status"], first["httpStatus"], first["willRetry"]) == ("FAILED", 429, True)
    assert (second["status"], second["httpStatus"]) == ("SUCCESS", 200)
    waited = (at(second["startedAt"]) - at(first["finishedAt"])).total_seconds()
    assert waited >= 2.0, waited
    next_attempt_at = at(first["result"]["nextAttemptAt"])
    assert (next_attempt_at - at(first["finishedAt"])).total_seconds() >= 2.0
    assert at(second["startedAt"]) >= next_attempt_at


async def test_404_is_final(
    js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink, executor: FastAPI
) -> None:
    request = run_request(http_definition(sink.on("/gone", statuses(404)), attempts=3))
    await publish_run(js, request)

    [run] = await run_history(api, request.chrono_id)
    assert (run["status"], run["httpStatus"], run["willRetry"]) == ("FAILED", 404, False)
    assert run["errorMessage"] == "HTTP 404"
    await asyncio.sleep(0.5)  # a retry would have come after 100 ms
    assert len(sink.received) == 1
    assert sample(executor, "chronoflow_run_retries_total", {"target": "http"}) == 0
    assert (
        sample(
            executor,
            "chronoflow_http_responses_total",
            {"status_class": "4xx", "outcome": "http_error"},
        )
        == 1
    )


async def test_a_timeout_is_recorded_and_retried(
    js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink, executor: FastAPI
) -> None:
    url = sink.on("/slow", slow(1.0))
    request = run_request(http_definition(url, attempts=2, timeout_ms=300))
    await publish_run(js, request)

    first, second = await run_history(api, request.chrono_id, attempts=2)
    for run in (first, second):
        assert run["status"] == "TIMEOUT"
        assert run["httpStatus"] is None
        assert run["errorMessage"] == "no complete response within 300 ms"
        assert 300 <= run["durationMs"] < 1000
    assert (first["willRetry"], second["willRetry"]) == (True, False)
    assert (
        sample(
            executor,
            "chronoflow_http_responses_total",
            {"status_class": "none", "outcome": "timeout"},
        )
        == 2
    )


async def test_connection_refused_is_recorded_and_retried(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/nobody-listens"
    request = run_request(http_definition(closed, attempts=2))
    await publish_run(js, request)

    first, second = await run_history(api, request.chrono_id, attempts=2)
    for run in (first, second):
        assert run["status"] == "FAILED"
        assert run["httpStatus"] is None
        assert run["errorMessage"].startswith("connection error")
    assert (first["willRetry"], second["willRetry"]) == (True, False)


async def test_a_10_mb_response_is_read_up_to_the_cap(
    js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink, executor: FastAPI
) -> None:
    request = run_request(http_definition(sink.on("/big", huge(10 * 1024 * 1024))))
    await publish_run(js, request)

    [run] = await run_history(api, request.chrono_id)
    assert (run["status"], run["httpStatus"]) == ("SUCCESS", 200)
    assert run["responseSnippet"] == "x" * 1000
    assert run["result"]["truncated"] is True
    assert run["result"]["responseBytes"] == 1024 * 1024


# --- redirects and the egress policy ----------------------------------------------------------


async def test_a_redirect_to_loopback_is_blocked_when_loopback_is_not_allowlisted(
    nats_server: NatsServer, js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink
) -> None:
    # Only the name sink.test (pinned to the local sink by a fake resolver) is allowlisted:
    # 127.0.0.1 itself is not, so a redirect there must be refused before anything is sent.
    resolver = StaticResolver({"sink.test": ["127.0.0.1"]})
    named = f"http://sink.test:{sink.port}"
    sink.on("/to-loopback", redirect(sink.url("/inside")))
    sink.on("/to-named", redirect(f"{named}/final"))
    async with running_executor(
        nats_server.url, resolver=resolver, CHRONOFLOW_EGRESS_ALLOW=f"sink.test:{sink.port}"
    ) as executor:
        follow = run_request(
            http_definition(f"{named}/to-loopback", follow_redirects=True, attempts=3)
        )
        stay = run_request(http_definition(f"{named}/to-loopback"))
        allowed = run_request(http_definition(f"{named}/to-named", follow_redirects=True))
        for request in (follow, stay, allowed):
            await publish_run(js, request)

        [blocked] = await run_history(api, follow.chrono_id)
        [not_followed] = await run_history(api, stay.chrono_id)
        [followed] = await run_history(api, allowed.chrono_id)
        assert blocked["status"] == "FAILED"
        assert blocked["willRetry"] is False
        assert blocked["errorMessage"] == (
            f"egress blocked (loopback): 127.0.0.1:{sink.port} is not permitted"
        )
        assert sink.on_path("/inside") == []
        assert sample(executor, "chronoflow_egress_blocked_total", {"reason": "loopback"}) == 1
        # Redirects are not followed unless the chrono opts in; a 3xx is a success.
        assert (not_followed["status"], not_followed["httpStatus"]) == ("SUCCESS", 302)
        # An allowed next hop is followed.
        assert (followed["status"], followed["httpStatus"]) == ("SUCCESS", 200)
        assert followed["result"]["redirects"] == 1
        assert len(sink.on_path("/final")) == 1
    assert resolver.asked  # the name went through the guarded resolver


LOOPBACK_FORMS = [
    "127.0.0.1",
    "127.0.0.2",
    "127.1",
    "0x7f.1",
    "2130706433",
    "0x7f000001",
    "017700000001",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "localhost",
]
# Dotted forms with leading zeros never get as far as the guard: httpx refuses to parse them.
UNPARSEABLE_FORMS = ["0177.0.0.1", "127.000.000.001"]


async def test_every_loopback_form_is_blocked_and_counted_without_an_allowlist(
    nats_server: NatsServer, js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink
) -> None:
    # The production profile refuses any allowlist: loopback in every spelling is refused
    # before a connection is opened, so the sink never hears of it.
    async with running_executor(nats_server.url, CHRONOFLOW_PROFILE="production") as executor:
        forms = LOOPBACK_FORMS + UNPARSEABLE_FORMS
        requests = [
            run_request(http_definition(f"http://{host}:{sink.port}/ssrf", attempts=3))
            for host in forms
        ]
        for request in requests:
            await publish_run(js, request)
        for request, host in zip(requests, forms, strict=True):
            [run] = await run_history(api, request.chrono_id)
            assert run["status"] == "FAILED", host
            assert run["willRetry"] is False, host
            expected = (
                "egress blocked (loopback): "
                if host in LOOPBACK_FORMS
                else "invalid request: InvalidURL"
            )
            assert run["errorMessage"].startswith(expected), (host, run["errorMessage"])
        assert sink.received == []
        assert sample(executor, "chronoflow_egress_blocked_total", {"reason": "loopback"}) == len(
            LOOPBACK_FORMS
        )
        blocked = {"status_class": "none", "outcome": "blocked"}
        rejected = {"status_class": "none", "outcome": "rejected"}
        assert sample(executor, "chronoflow_http_responses_total", blocked) == len(LOOPBACK_FORMS)
        assert sample(executor, "chronoflow_http_responses_total", rejected) == len(
            UNPARSEABLE_FORMS
        )


# Every non-loopback form from issue 6 item 5, proven on the decision function: no request is
# ever sent to these addresses from a test.
SSRF_FORMS = [
    ("10.0.0.1", BlockReason.PRIVATE),
    ("172.16.5.4", BlockReason.PRIVATE),
    ("192.168.1.1", BlockReason.PRIVATE),
    ("fc00::1", BlockReason.PRIVATE),
    ("169.254.1.1", BlockReason.LINK_LOCAL),
    ("fe80::1", BlockReason.LINK_LOCAL),
    ("100.64.0.1", BlockReason.CGNAT),
    ("169.254.169.254", BlockReason.METADATA),
    ("fd00:ec2::254", BlockReason.METADATA),
    ("::ffff:169.254.169.254", BlockReason.METADATA),
    ("64:ff9b::a9fe:a9fe", BlockReason.METADATA),
    ("::ffff:10.0.0.1", BlockReason.PRIVATE),
    ("64:ff9b::a00:1", BlockReason.PRIVATE),
    ("0.0.0.0", BlockReason.UNSPECIFIED),  # noqa: S104 - an address under test, not a bind
    ("::", BlockReason.UNSPECIFIED),
]


@pytest.mark.parametrize(("address", "reason"), SSRF_FORMS)
def test_every_other_ssrf_form_is_refused_by_the_decision_function(
    address: str, reason: BlockReason
) -> None:
    decision = check_address(address, 443, EgressPolicy())
    assert not decision.allowed
    assert decision.reason == reason
    # The development allowlist (loopback only) lets none of them through either.
    development = EgressPolicy.from_allowlist("127.0.0.0/8,::1,localhost", allowlist_permitted=True)
    assert check_address(address, 443, development).reason == reason


async def test_loopback_is_reachable_only_with_the_allowlist_on(
    nats_server: NatsServer, js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink
) -> None:
    url = sink.on("/local", statuses(200))
    on = run_request(http_definition(url))
    off = run_request(http_definition(url))
    async with running_executor(nats_server.url):  # development: loopback allowlisted
        await publish_run(js, on)
        [run] = await run_history(api, on.chrono_id)
        assert run["status"] == "SUCCESS"
    async with running_executor(nats_server.url, CHRONOFLOW_PROFILE="production"):
        await publish_run(js, off)
        [run] = await run_history(api, off.chrono_id)
        assert run["status"] == "FAILED"
        assert run["errorMessage"].startswith("egress blocked (loopback)")
    assert [r.webhook_id for r in sink.received] == [on.occurrence_id]


# --- signing and durability -------------------------------------------------------------------


async def test_a_rotation_sends_one_signature_per_secret(
    nats_server: NatsServer, js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink
) -> None:
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    request = run_request(http_definition(sink.on("/rotate", statuses(200)), payload=[1, 2]))
    async with running_executor(
        nats_server.url, CHRONOFLOW_WEBHOOK_SECRET=f"{new},{VECTOR_SECRET}"
    ):
        await publish_run(js, request)
        await run_history(api, request.chrono_id)
    [got] = sink.received
    assert len(got.headers["webhook-signature"].split()) == 2
    verify = documented_snippet()
    for secret in (new, VECTOR_SECRET):
        Webhook(secret).verify(got.body, got.headers)
        assert verify(secret, got.headers, got.body)


async def test_a_retry_waits_in_jetstream_across_an_executor_restart(
    nats_server: NatsServer, js: JetStreamContext, api: httpx.AsyncClient, sink: WebhookSink
) -> None:
    url = sink.on("/later", statuses(503, 200))
    request = run_request(http_definition(url, attempts=2, delay_ms=1500))
    async with running_executor(nats_server.url):
        await publish_run(js, request)
        await sink.wait_for(1)
        [first] = await run_history(api, request.chrono_id)
    # No executor runs while the retry is due; the next one finds it waiting.
    assert first["willRetry"] is True
    await asyncio.sleep(2.0)
    assert len(sink.received) == 1
    async with running_executor(nats_server.url):
        first, second = await run_history(api, request.chrono_id, attempts=2)
    assert (second["attempt"], second["status"]) == (2, "SUCCESS")
    assert [r.webhook_id for r in sink.received] == [request.occurrence_id] * 2
