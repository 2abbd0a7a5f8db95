"""Chrono creation through the REST API, read-your-writes included.

Starts a private nats-server and PostgreSQL, the projector and the api as separate processes
(as in production), then creates chronos with 1 client and with 16 concurrent clients and
prints chronos/s and latency percentiles.

    .venv/bin/python bench/bench_api_create.py [--count 3000] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

from chronoflow_devstack.embedded import NatsServer, Postgres, create_database, free_port
from chronoflow_platform import apikeys, db

BODY = {
    "name": "bench",
    "cron": "every 15 minutes",
    "url": "https://example.com/hook",
    "payload": {"hello": "world"},
    "headers": {"X-Trace": "1"},
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def drive(api: str, key: str, total: int, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_client = total // clients

    async def one_client() -> None:
        # aiohttp as the load generator: httpx's own transport costs ~1 ms of CPU per request,
        # which on a 2-core box would measure the client, not ChronoFlow.
        async with aiohttp.ClientSession(
            base_url=api, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            for _ in range(per_client):
                t0 = time.perf_counter()
                async with client.post("/chronos", json=BODY) as r:
                    body = await r.read()
                latencies.append(time.perf_counter() - t0)
                assert r.status == 201, body

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return time.perf_counter() - t0, latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cf-bench-"))
    work.chmod(0o755)
    nats = NatsServer(work / "nats")
    pg = Postgres(work / "pg", durable=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        nats.start()
        pg.start()
        await create_database(pg.url(), "chronoflow")
        await db.migrate_async(pg.url())
        engine = db.create_engine(pg.url(), pool_size=1)
        _, key = await apikeys.create_key(engine, "bench")
        await engine.dispose()
        api_port = free_port()
        env = {
            **os.environ,
            "NATS_URL": nats.url,
            "DATABASE_URL": pg.url(),
            "LOG_LEVEL": "WARNING",
            "CHRONOFLOW_PROFILE": "development",
        }
        for module in ("chronoflow_api.projector", "chronoflow_api"):
            port = api_port if module == "chronoflow_api" else free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module], env={**env, "HTTP_PORT": str(port)}
                )
            )
        api = f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient() as c:
            for _ in range(200):
                try:
                    if (await c.get(f"{api}/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        await drive(api, key, 200, 4)  # warm-up
        for clients, count in ((1, max(args.count // 4, 100)), (args.clients, args.count)):
            elapsed, lat = await drive(api, key, count, clients)
            print(
                f"clients={clients:>3} created={len(lat):>6} "
                f"rate={len(lat) / elapsed:8.1f}/s "
                f"p50={statistics.median(lat) * 1000:6.1f}ms p99={pct(lat, 99) * 1000:6.1f}ms "
                f"max={max(lat) * 1000:6.1f}ms"
            )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
        nats.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
