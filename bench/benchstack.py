"""What the end-to-end benchmarks share: a private nats-server + PostgreSQL, and the services.

A ``Stack`` lives in a temporary directory: nats-server (fsync on every write, as ``make
run``) and a durable PostgreSQL from ``chronoflow_devstack.embedded``, the streams provisioned
and the schema migrated. ``spawn`` starts a service module as its own process (as deployed),
logging to ``<name>.log`` in that directory, and returns once it answers ``/ready``.

Environment knobs: ``BENCH_LOG_LEVEL`` (services' log level, WARNING by default),
``BENCH_PROFILE=<service name>`` (run that service under cProfile, ``<name>.prof``),
``BENCH_KEEP`` (keep the data directory and logs).

The scripts run as ``python bench/<file>.py``, so this directory is on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from chronoflow_devstack.embedded import NatsServer, Postgres, create_database, free_port
from chronoflow_platform import db, jetstream

DUPLICATE_WINDOW = 600.0


@dataclass
class Service:
    """A service process and where it answers."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def rss_mb(self) -> float:
        """Resident memory of the process, in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kb) / 1024

    async def samples(self, name: str) -> dict[str, float]:
        """A metric's samples from its /metrics, by label set."""
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5)).text
        found = {}
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                found[key[len(name) :]] = float(value)
        return found

    async def metric(self, name: str) -> float | None:
        """A metric from its /metrics (the sum over its labels)."""
        values = await self.samples(name)
        return sum(values.values()) if values else None

    def kill(self) -> None:
        """kill -9."""
        self.proc.kill()
        self.proc.wait()


class Stack:
    """nats-server + PostgreSQL in a temporary directory, and the service processes.

    ``env`` is added to every service's environment (before what ``spawn`` is given).
    """

    def __init__(self, prefix: str, **env: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.dir.chmod(0o755)
        self.nats = NatsServer(self.dir / "nats", log_file=self.dir / "nats.log")
        self.pg = Postgres(self.dir / "pg", durable=True, log_file=self.dir / "pg.log")
        self.services: list[Service] = []
        self.env = env

    async def start(self) -> tuple[NatsClient, JetStreamContext]:
        """Start the servers, migrate the schema, provision the streams; connect."""
        self.nats.start()
        self.pg.start()
        await create_database(self.pg.url(), "chronoflow")
        await db.migrate_async(self.pg.url())
        nc = await jetstream.connect(self.nats.url, name="bench")
        js = nc.jetstream()
        await jetstream.provision_streams(js, duplicate_window=DUPLICATE_WINDOW)
        return nc, js

    async def spawn(self, name: str, module: str, **env: str) -> Service:
        """Start ``python -m module`` as ``name``; returns once it answers /ready."""
        port = free_port()
        full_env = {
            **os.environ,
            "NATS_URL": self.nats.url,
            "DATABASE_URL": self.pg.url(),
            "HTTP_PORT": str(port),
            "LOG_FORMAT": "console",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            **self.env,
            "CHRONOFLOW_DUPLICATE_WINDOW_SECONDS": str(DUPLICATE_WINDOW),
            **env,
        }
        with (self.dir / f"{name}.log").open("ab") as out:
            # BENCH_PROFILE=<service name> runs that service under cProfile (<name>.prof).
            profile = (
                ["-m", "cProfile", "-o", str(self.dir / f"{name}.prof")]
                if os.environ.get("BENCH_PROFILE") == name
                else []
            )
            proc = subprocess.Popen(
                [sys.executable, *profile, "-m", module], env=full_env, stdout=out, stderr=out
            )
        service = Service(name, proc, port)
        self.services.append(service)
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                        return service
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.dir / (name + '.log')}")
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{name} did not become ready")

    def stop_service(self, service: Service) -> None:
        """SIGTERM one service (kill -9 after 20 s) and forget it."""
        self._terminate([service])
        self.services.remove(service)

    def stop(self) -> None:
        """Stop the services (SIGTERM, kill -9 after 20 s) and the servers; remove the data
        directory unless ``BENCH_KEEP`` is set."""
        self._terminate(self.services)
        self.pg.stop()
        self.nats.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _terminate(services: list[Service]) -> None:
        for service in services:
            if service.proc.poll() is None:
                service.proc.terminate()
        for service in services:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.proc.wait(20)
            if service.proc.poll() is None:
                service.kill()
