"""What a write costs nats-server and the publisher: concurrent plain publishes against one
JetStream atomic batch, by batch size.

The recorders of run events (``chronoflow_platform.executor.recording``) and the scheduler's
batchers (``chronoflow_scheduler.emitter``) send what is queued together either way; this
measures where one becomes cheaper than the other (``ATOMIC_MIN_BATCH`` in
``chronoflow_platform.publishing``). A private nats-server with ``sync_interval: always``, as
``make run`` and the deployments configure it; a 400-byte message, roughly a run event; a
short pause between batches, so that each is stored alone, as at a moderate steady rate.

    .venv/bin/python bench/bench_jetstream_writes.py [--messages 3000] \
        [--sizes 1,2,5,10,20,30,50,100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig

from chronoflow_devstack.embedded import NatsServer
from chronoflow_platform.publishing import commit_atomic

_BODY = b"x" * 400
_PAUSE = 0.003


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def plain(nc: NatsClient, subject: str, size: int) -> None:
    """``size`` publishes in flight at once, each acknowledged on its own."""
    js = nc.jetstream()
    await asyncio.gather(
        *(
            js.publish(subject, _BODY, headers={"Nats-Msg-Id": uuid.uuid4().hex})
            for _ in range(size)
        )
    )


async def atomic(nc: NatsClient, subject: str, size: int) -> None:
    """One atomic batch of ``size``, acknowledged once on its commit (the recorders' path)."""
    await commit_atomic(
        nc,
        [(subject, _BODY, {"Nats-Msg-Id": uuid.uuid4().hex}) for _ in range(size)],
        ack_timeout=10,
    )


async def measure(mode: str, size: int, total: int) -> str:
    """Write ``total`` messages in batches of ``size`` to a fresh server; the costs per message."""
    with tempfile.TemporaryDirectory(prefix="cf-bench-writes-") as tmp:
        server = NatsServer(Path(tmp) / "nats")
        server.start()
        assert server.proc is not None
        try:
            nc = await nats.connect(server.url)
            await nc.jetstream().add_stream(
                StreamConfig(name="BENCH", subjects=["bench.>"], allow_atomic=True)
            )
            write = atomic if mode == "atomic" else plain
            server_before, own_before = cpu_seconds(server.proc.pid), time.process_time()
            started, written = time.perf_counter(), 0
            while written < total:
                await write(nc, f"bench.{written}", size)
                written += size
                await asyncio.sleep(_PAUSE)
            elapsed = time.perf_counter() - started
            server_ms = 1000 * (cpu_seconds(server.proc.pid) - server_before) / written
            own_ms = 1000 * (time.process_time() - own_before) / written
            await nc.close()
        finally:
            server.stop()
    return (
        f"  {mode:6s} {size:4d}: nats-server {server_ms:.3f} ms, publisher {own_ms:.3f} ms, "
        f"both {server_ms + own_ms:.3f} ms per message ({written / elapsed:,.0f} messages/s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sizes", default="1,2,5,10,20,30,50,100")
    args = parser.parse_args()
    print("CPU per stored message, by how many are written together:")
    for size in (int(s) for s in args.sizes.split(",")):
        print(await measure("plain", size, args.messages), flush=True)
        if size > 1:
            print(await measure("atomic", size, args.messages), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
