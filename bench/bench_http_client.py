"""Throughput of the guarded egress client against a local sink, next to plain httpx and aiohttp.

Run: .tools/bin/uv run --frozen --no-sync python bench/bench_http_client.py [-n 2000] [-c 50]

Every request goes to an aiohttp server started in this process on 127.0.0.1, so client and
server share the same event loop and CPU, as the figures in issue 6 were measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from chronoflow_egress import EgressPolicy, build_client, send_capped
from chronoflow_egress.signing import generate_secret, webhook_headers

Send = Callable[[int], Awaitable[int]]


async def _sink(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


async def start_sink() -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/hook", _sink)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


async def drive(send: Send, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Send ``requests`` requests from ``concurrency`` workers; return wall time and latencies."""
    latencies: list[float] = []
    next_index = iter(range(requests))

    async def worker() -> None:
        for i in next_index:
            started = time.perf_counter()
            status = await send(i)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"sink answered {status}")

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.perf_counter() - started, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(name: str, elapsed: float, latencies: list[float]) -> dict[str, float | str]:
    row: dict[str, float | str] = {
        "client": name,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }
    print(
        f"{name:<44} {row['requests_per_s']:>9} req/s   "
        f"p50 {row['p50_ms']:>7} ms   p99 {row['p99_ms']:>7} ms"
    )
    return row


async def main(requests: int, concurrency: int, plain: bool, as_json: bool) -> None:
    runner, port = await start_sink()
    url = f"http://127.0.0.1:{port}/hook"
    body = json.dumps({"chronoId": "bench", "payload": "x" * 200}).encode()
    secret = generate_secret()
    rows: list[dict[str, float | str]] = []
    print(f"{requests} POSTs, {concurrency} concurrent, to {url}")
    try:
        policy = EgressPolicy.from_allowlist(f"127.0.0.1:{port}", allowlist_permitted=True)
        async with build_client(policy, max_connections=concurrency) as guarded:

            async def guarded_signed(i: int) -> int:
                headers = webhook_headers(secret, f"run_{i}", body)
                request = guarded.build_request("POST", url, content=body, headers=headers)
                return (await send_capped(guarded, request, deadline=30)).status

            async def guarded_plain(i: int) -> int:
                return (await guarded.post(url, content=body)).status_code

            await drive(guarded_plain, 100, concurrency)
            rows.append(
                report(
                    "guarded (aiohttp transport) + sign + cap",
                    *await drive(guarded_signed, requests, concurrency),
                )
            )
            rows.append(
                report(
                    "guarded (aiohttp transport), client.post",
                    *await drive(guarded_plain, requests, concurrency),
                )
            )

        # The same transport without the guard: what the guard itself costs.
        async with httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=concurrency))
        ) as unguarded:

            async def unguarded_post(i: int) -> int:
                return (await unguarded.post(url, content=body)).status_code

            await drive(unguarded_post, 100, concurrency)
            rows.append(
                report(
                    "unguarded httpx + AiohttpTransport",
                    *await drive(unguarded_post, requests, concurrency),
                )
            )

        async with aiohttp.ClientSession() as session:

            async def raw(i: int) -> int:
                async with session.post(url, data=body) as response:
                    await response.read()
                    return response.status

            await drive(raw, 100, concurrency)
            rows.append(report("raw aiohttp (reference)", *await drive(raw, requests, concurrency)))

        if plain:
            async with httpx.AsyncClient() as default:

                async def plain_httpx(i: int) -> int:
                    return (await default.post(url, content=body)).status_code

                await drive(plain_httpx, 100, concurrency)
                rows.append(
                    report(
                        "plain httpx, default transport",
                        *await drive(plain_httpx, requests, concurrency),
                    )
                )
    finally:
        await runner.cleanup()
    if as_json:
        print(json.dumps(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--no-plain", action="store_true", help="skip plain httpx (slow)")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, not args.no_plain, args.json))
