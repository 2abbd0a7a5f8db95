"""Chrono creation through the REST API, read-your-writes included.

Starts a private nats-server and PostgreSQL, the projector and the api as separate processes
(as in production), then creates chronos with 1 client and with 16 concurrent clients and
prints chronos/s and latency percentiles, and for the concurrent run the CPU time each
process spent per create (from /proc), which says where the two cores went.

    .venv/bin/python bench/bench_api_create.py [--count 3000] [--clients 16]
        [--api-replicas 2] [--profile DIR]

``--api-replicas 2`` runs two api processes, as deploy/k8s does, with the clients spread
over them (read-your-writes holds on each: both follow the one projector's announcements).

``--profile DIR`` runs the api and the projector under ``py-spy record`` and leaves collapsed
stacks (flamegraph input) in DIR; py-spy's sampling costs CPU, so rates measured so are lower.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import httpx
from cryptography.fernet import Fernet

from chronoflow_devstack.embedded import NatsServer, Postgres, create_database, free_port
from chronoflow_platform import apikeys, db

BODY = {
    "name": "bench",
    "cron": "every 15 minutes",
    "url": "https://example.com/hook",
    "payload": {"hello": "world"},
    "headers": {"X-Trace": "1"},
}


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (not idle, not waiting for I/O)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICKS


def tree(root: int) -> list[int]:
    """``root`` and its descendants (PostgreSQL forks a backend per connection)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue  # exited while we looked
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_by_process(groups: dict[str, Callable[[], list[int]]]) -> dict[str, float]:
    """CPU seconds per named group of processes, as they are now (a process that exited is
    no longer counted; the services' processes live throughout a run), and of the machine."""
    usage: dict[str, float] = {"machine": machine_busy_seconds()}
    for name, members in groups.items():
        total = 0.0
        for pid in members():
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        usage[name] = total
    return usage


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def drive(apis: list[str], key: str, total: int, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_client = total // clients

    async def one_client(api: str) -> None:
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
    # Clients spread over the api replicas as a Service would spread their connections.
    await asyncio.gather(*(one_client(apis[i % len(apis)]) for i in range(clients)))
    return time.perf_counter() - t0, latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--api-replicas", type=int, default=1, help="api processes (deploy/k8s runs 2)"
    )
    parser.add_argument("--profile", type=Path, help="py-spy output directory")
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
        env = {
            **os.environ,
            "NATS_URL": nats.url,
            "DATABASE_URL": pg.url(),
            "LOG_LEVEL": "WARNING",
            "CHRONOFLOW_PROFILE": "development",
            # One key for every replica, so any of them can read what another sealed.
            "CHRONOFLOW_SECRETS_KEY": Fernet.generate_key().decode(),
        }
        modules = ["chronoflow_api.projector"] + ["chronoflow_api"] * args.api_replicas
        apis: list[str] = []
        for i, module in enumerate(modules):
            port = free_port()
            command = [sys.executable, "-m", module]
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                out = args.profile / f"{module}-{i}.txt"
                spy = [str(Path(sys.executable).with_name("py-spy")), "record", "-f", "raw"]
                command = [*spy, "-r", "200", "-o", str(out), "--", *command]
            procs.append(subprocess.Popen(command, env={**env, "HTTP_PORT": str(port)}))
            if module == "chronoflow_api":
                apis.append(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient() as c:
            for api in apis:
                for _ in range(200):
                    try:
                        if (await c.get(f"{api}/ready")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
        await drive(apis, key, 200, 4)  # warm-up
        assert nats.proc is not None
        assert pg.proc is not None
        api_pids = [p.pid for p in procs[1:]]
        projector_pid, nats_pid, pg_pid = procs[0].pid, nats.proc.pid, pg.proc.pid
        groups: dict[str, Callable[[], list[int]]] = {
            "api": lambda: [pid for root in api_pids for pid in tree(root)],
            "projector": lambda: tree(projector_pid),
            "nats-server": lambda: [nats_pid],
            "postgres": lambda: tree(pg_pid),  # a backend process per connection
            "load generator": lambda: [os.getpid()],  # this process alone, not its children
        }
        for clients, count in ((1, max(args.count // 4, 100)), (args.clients, args.count)):
            before = cpu_by_process(groups)
            elapsed, lat = await drive(apis, key, count, clients)
            after = cpu_by_process(groups)
            print(
                f"clients={clients:>3} created={len(lat):>6} "
                f"rate={len(lat) / elapsed:8.1f}/s "
                f"p50={statistics.median(lat) * 1000:6.1f}ms p99={pct(lat, 99) * 1000:6.1f}ms "
                f"max={max(lat) * 1000:6.1f}ms"
            )
            used = {name: after[name] - before[name] for name in after}
            # Other helpers, kernel threads. Interrupt time can be charged to a process and to
            # the machine's interrupt count both, so this may dip slightly below zero.
            used["everything else"] = used.pop("machine") - sum(used.values())
            print(
                "    CPU per create (share of one core): "
                + ", ".join(
                    f"{name} {seconds / len(lat) * 1e3:.2f} ms ({seconds / elapsed:.0%})"
                    for name, seconds in used.items()
                )
            )
    finally:
        for p in procs:
            # Under py-spy, stop the profiled child: py-spy writes its output once it exits.
            for pid in tree(p.pid)[1:] if args.profile else [p.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for p in procs:
            p.wait(20)
        nats.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
