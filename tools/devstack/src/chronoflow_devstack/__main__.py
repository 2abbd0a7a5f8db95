"""``make run``: the whole system on one machine, on embedded NATS and PostgreSQL.

Starts nats-server and PostgreSQL (unless ``NATS_URL`` / ``DATABASE_URL`` point elsewhere),
applies migrations, creates a development API key, starts every service as its own process
with prefixed logs, waits until each is ready, prints where things are, and on Ctrl-C stops
everything. Data lives in ``CHRONOFLOW_DATA_DIR`` (default ``.data``), so a second run finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiohttp import web
from cryptography.fernet import Fernet

from chronoflow_devstack.demo import create_demo_chrono, start_sink
from chronoflow_devstack.embedded import NatsServer, Postgres, create_database, port_is_free
from chronoflow_egress import signing
from chronoflow_platform import apikeys, db, jetstream

log = logging.getLogger("devstack")

COLORS = ["36", "35", "33", "32", "34", "31", "96", "95", "93"]


@dataclass(frozen=True)
class ServiceSpec:
    """One process ``make run`` starts."""

    name: str
    module: str
    port: int


def _services(api_port: int, waha_sim: bool) -> list[ServiceSpec]:
    base = [
        ServiceSpec("api", "chronoflow_api", api_port),
        ServiceSpec("projector", "chronoflow_api.projector", api_port + 10),
        ServiceSpec("scheduler", "chronoflow_scheduler", api_port + 1),
        ServiceSpec("executor-http", "chronoflow_executor_http", api_port + 2),
        ServiceSpec("executor-message", "chronoflow_executor_message", api_port + 3),
        ServiceSpec("executor-function", "chronoflow_executor_function", api_port + 4),
        ServiceSpec("waha-gateway", "chronoflow_waha_gateway", api_port + 5),
    ]
    if waha_sim:
        base.append(ServiceSpec("waha-simulator", "chronoflow_waha_simulator", api_port + 6))
    return [s for s in base if importlib.util.find_spec(s.module) is not None]


async def _pump(name: str, color: str, stream: asyncio.StreamReader) -> None:
    prefix = f"\033[{color}m{name:>17} |\033[0m " if sys.stdout.isatty() else f"{name:>17} | "
    while line := await stream.readline():
        sys.stdout.write(prefix + line.decode(errors="replace"))
        sys.stdout.flush()


async def _wait_ready(client: httpx.AsyncClient, spec: ServiceSpec, limit: float) -> None:
    async with asyncio.timeout(limit):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                r = await client.get(f"http://127.0.0.1:{spec.port}/ready")
                if r.status_code == 200:
                    return
            await asyncio.sleep(0.2)


class DevStack:
    """The processes of one ``make run``; :meth:`stop` undoes whatever :meth:`start` did."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.data_dir = Path(env.get("CHRONOFLOW_DATA_DIR", ".data")).resolve()
        self.api_port = int(env.get("CHRONOFLOW_API_PORT", "8000"))
        self.env = env
        self.nats: NatsServer | None = None
        self.pg: Postgres | None = None
        self.children: list[tuple[ServiceSpec, asyncio.subprocess.Process]] = []
        self.pumps: list[asyncio.Task[None]] = []
        self.service_env: dict[str, str] = {}
        self.sink: web.AppRunner | None = None

    def _start_nats(self) -> str:
        if url := self.env.get("NATS_URL"):
            return url
        port = int(self.env.get("CHRONOFLOW_NATS_PORT", "4222"))
        if not port_is_free(port):
            raise SystemExit(f"port {port} is taken: set CHRONOFLOW_NATS_PORT or NATS_URL")
        self.nats = NatsServer(
            self.data_dir / "nats", port=port, log_file=self.data_dir / "logs" / "nats.log"
        )
        self.nats.start()
        print(f"nats-server   {self.nats.url} (JetStream store {self.nats.store_dir})")
        return self.nats.url

    def _start_postgres(self) -> str | None:
        if url := self.env.get("DATABASE_URL"):
            return url
        port = int(self.env.get("CHRONOFLOW_PG_PORT", "55432"))
        if not port_is_free(port):
            raise SystemExit(f"port {port} is taken: set CHRONOFLOW_PG_PORT or DATABASE_URL")
        self.pg = Postgres(
            self.data_dir / "postgres", port=port, log_file=self.data_dir / "logs" / "pg.log"
        )
        self.pg.start()
        print(f"postgres      127.0.0.1:{port} (data {self.pg.data_dir})")
        return None

    async def start(self) -> str:
        """Infrastructure, schema, streams, dev key, then every service. Returns the dev key."""
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        nats_url = await asyncio.to_thread(self._start_nats)
        database_url = await asyncio.to_thread(self._start_postgres)
        if database_url is None:
            assert self.pg is not None
            await create_database(self.pg.url(), "chronoflow")
            database_url = self.pg.url()
        await db.migrate_async(database_url)
        nc = await jetstream.connect(nats_url, name="devstack")
        await jetstream.provision_streams(nc.jetstream(), duplicate_window=600)
        await nc.drain()
        engine = db.create_engine(database_url, pool_size=1)
        _, key = await apikeys.create_key(
            engine, "development", self.env.get("CHRONOFLOW_DEV_API_KEY") or None
        )
        await engine.dispose()
        self.webhook_secret = self._kept_secret(
            "CHRONOFLOW_WEBHOOK_SECRET", "webhook.secret", signing.generate_secret
        )
        secrets_key = self._kept_secret(
            "CHRONOFLOW_SECRETS_KEY", "secrets.key", lambda: Fernet.generate_key().decode()
        )
        await self._start_services(nats_url, database_url, secrets_key)
        return key

    def _kept_secret(self, variable: str, filename: str, generate: Callable[[], str]) -> str:
        """The variable's value, else a secret generated once and kept in the data dir.

        Development only (production passes the variables): the secrets key must keep the
        event log's encrypted headers readable across runs, and the webhook secret must keep
        signatures verifiable by receivers across runs.
        """
        if value := self.env.get(variable):
            return value
        path = self.data_dir / filename
        if not path.exists():
            path.write_text(generate())
            path.chmod(0o600)
        return path.read_text().strip()

    def _simulator_env(self) -> dict[str, str]:
        """Wire the WAHA simulator to the gateway the way a real WAHA would be wired.

        Fresh keys per run: the simulator keeps its sessions in memory, so nothing outlives
        the run that would need them. The ``default`` session starts with the simulator and
        pairs itself after two seconds, so the seeded channel turns WORKING on its own and
        its status webhooks (HMAC-signed) reach the gateway.
        """
        api_key = self.env.get("WAHA_API_KEY") or secrets.token_urlsafe(24)
        hmac_key = self.env.get("WAHA_WEBHOOK_HMAC_KEY") or secrets.token_urlsafe(24)
        gateway = f"http://127.0.0.1:{self.api_port + 5}"
        return {
            "WAHA_API_KEY": api_key,
            "WAHA_WEBHOOK_HMAC_KEY": hmac_key,
            "WHATSAPP_HOOK_URL": f"{gateway}/waha/webhooks/sessions/status",
            "WHATSAPP_HOOK_HMAC_KEY": hmac_key,
            "WHATSAPP_START_SESSION": "default",
            "WAHA_SIM_AUTO_PAIR_SECONDS": self.env.get("WAHA_SIM_AUTO_PAIR_SECONDS", "2"),
        }

    async def _start_services(self, nats_url: str, database_url: str, secrets_key: str) -> None:
        waha_sim = not self.env.get("WAHA_BASE_URL")
        sim_port = self.api_port + 6
        env = {
            **self.env,
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "LOG_FORMAT": self.env.get("LOG_FORMAT", "console"),
            "CHRONOFLOW_PROFILE": self.env.get("CHRONOFLOW_PROFILE", "development"),
            # The development profile may reach services on this machine (the demo sink).
            "CHRONOFLOW_EGRESS_ALLOW": self.env.get("CHRONOFLOW_EGRESS_ALLOW", "127.0.0.0/8,::1"),
            "WAHA_BASE_URL": self.env.get("WAHA_BASE_URL", f"http://127.0.0.1:{sim_port}"),
            "WAHA_GATEWAY_URL": f"http://127.0.0.1:{self.api_port + 5}",
            "CHRONOFLOW_SECRETS_KEY": secrets_key,
            "CHRONOFLOW_WEBHOOK_SECRET": self.webhook_secret,
            "PYTHONUNBUFFERED": "1",
        }
        if waha_sim:
            env.update(self._simulator_env())
        self.service_env = env
        for i, spec in enumerate(_services(self.api_port, waha_sim)):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                spec.module,
                env={**env, "HTTP_PORT": str(spec.port)},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            self.children.append((spec, proc))
            assert proc.stdout is not None
            color = COLORS[i % len(COLORS)]
            self.pumps.append(asyncio.create_task(_pump(spec.name, color, proc.stdout)))

    async def wait_ready(self, limit: float = 90) -> None:
        """Until every service answers /ready with 200."""
        async with httpx.AsyncClient(timeout=2) as client:
            await asyncio.gather(*(_wait_ready(client, s, limit) for s, _ in self.children))

    async def seed_and_demo(self, key: str) -> None:
        """The default WAHA channel, and a demo chrono firing into a local sink."""
        seed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chronoflow_api", "seed", env={**self.env, **self.service_env}
        )
        await seed.wait()
        sink_port = self.api_port + 7
        self.sink = await start_sink(sink_port, self.webhook_secret)
        await create_demo_chrono(f"http://127.0.0.1:{self.api_port}", key, sink_port)

    async def stop(self) -> None:
        """SIGTERM every service, wait (kill stragglers), then stop NATS and Postgres."""
        for _, proc in self.children:
            if proc.returncode is None:
                proc.terminate()
        for spec, proc in self.children:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                log.warning("%s did not stop in time; killing it", spec.name)
                proc.kill()
                await proc.wait()
        for pump in self.pumps:
            pump.cancel()
        if self.sink is not None:
            await self.sink.cleanup()
        if self.nats is not None:
            await asyncio.to_thread(self.nats.stop)
        if self.pg is not None:
            await asyncio.to_thread(self.pg.stop)


async def run() -> int:
    """Start everything, wait for Ctrl-C (or SIGTERM), stop everything."""
    stack = DevStack(os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.ensure_future(_start_and_wait(stack))
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if starting in done:
            key = starting.result()
            print(
                "\nChronoFlow is up.\n"
                f"  API          http://127.0.0.1:{stack.api_port}\n"
                f"  API docs     http://127.0.0.1:{stack.api_port}/docs\n"
                f"  API key      {key}\n"
                f"  try          curl -H 'Authorization: Bearer {key}' "
                f"http://127.0.0.1:{stack.api_port}/chronos\n"
                f"  data         {stack.data_dir}\n"
                "Ctrl-C stops everything.\n",
                flush=True,
            )
            await stopping
        else:
            starting.cancel()
        return 0
    finally:
        print("\nstopping…", flush=True)
        await stack.stop()
        print("stopped.", flush=True)


async def _start_and_wait(stack: DevStack) -> str:
    key = await stack.start()
    await stack.wait_ready()
    await stack.seed_and_demo(key)
    return key


def main() -> None:
    """Console script ``chronoflow-devstack``."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    sys.exit(asyncio.run(run()))


if __name__ == "__main__":
    main()
