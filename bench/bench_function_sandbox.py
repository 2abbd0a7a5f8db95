"""Function sandbox benchmark: per-run overhead and throughput of a function making HTTP calls.

    .tools/bin/uv run --frozen --no-sync python bench/bench_function_sandbox.py

Prints the per-run overhead (p50/p99 of a trivial function, end to end through a worker) and
the runs per second of a function making 10 ``ctx.http`` calls against a local HTTP server
(in its own process, as a remote service would be). Targets on the 2-core box: overhead p50
<= 5 ms, >= 100 runs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from chronoflow_executor_function.sandbox import Limits, PoolConfig, SandboxPool, Termination
from chronoflow_executor_function.sandbox.testing import (
    LocalBridge,
    function_input,
    start_local_server,
)

TRIVIAL = "export default async function run(ctx) { return 1; }"
TEN_CALLS = """
export default async function run(ctx) {
  let total = 0;
  for (let i = 0; i < 10; i++) {
    const r = await ctx.http.get('@BASE@/users');
    total += r.data.length;
  }
  ctx.state.set('seen', total);
  return total;
}
"""


async def serve() -> None:
    """Run the local HTTP server until stdin closes; print its base URL first."""
    server, runner = await start_local_server()
    print(server.base, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def overhead(pool: SandboxPool, bridge: LocalBridge, runs: int) -> list[float]:
    limits = Limits(timeout_ms=5000)
    samples = []
    for i in range(runs + 20):
        started = time.perf_counter()
        result = await pool.run_function(TRIVIAL, function_input(), bridge, limits)
        elapsed = (time.perf_counter() - started) * 1000
        assert result.termination is Termination.COMPLETED, result
        if i >= 20:  # warm-up
            samples.append(elapsed)
    return samples


async def throughput(
    pool: SandboxPool, bridge: LocalBridge, base: str, runs: int, concurrency: int
) -> float:
    code = TEN_CALLS.replace("@BASE@", base)
    limits = Limits(timeout_ms=10_000, max_http=10)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(runs):
        queue.put_nowait(i)

    async def lane() -> None:
        while not queue.empty():
            queue.get_nowait()
            result = await pool.run_function(code, function_input(), bridge, limits)
            assert result.termination is Termination.COMPLETED, result
            assert result.value == 30

    await asyncio.gather(*(lane() for _ in range(min(concurrency, 8))))  # warm-up lanes
    for i in range(runs):
        queue.put_nowait(i)
    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return runs / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    assert server.stdin is not None
    base = (await server.stdout.readline()).decode().strip()
    try:
        with tempfile.TemporaryDirectory() as cache:
            config = PoolConfig(cache_dir=Path(args.cache_dir or cache), size=args.workers)
            async with SandboxPool(config) as pool, aiohttp.ClientSession() as session:
                bridge = LocalBridge(session, base)
                samples = await overhead(pool, bridge, args.runs)
                p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
                print(
                    f"trivial function, {len(samples)} sequential runs: per-run overhead "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, mean {statistics.fmean(samples):.2f} ms"
                    f"  (target: p50 <= 5 ms)"
                )
                concurrency = args.concurrency or 4 * args.workers
                rate = await throughput(pool, bridge, base, args.runs, concurrency)
                print(
                    f"10 ctx.http calls per run, {args.runs} runs, {concurrency} in flight, "
                    f"{args.workers} workers: {rate:.0f} runs/s ({rate * 10:.0f} requests/s)"
                    f"  (target: >= 100 runs/s)"
                )
    finally:
        server.stdin.close()
        await server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--concurrency", type=int, default=0, help="default: 4 per worker")
    parser.add_argument("--cache-dir", default="", help="compiled-module cache (default: temp)")
    options = parser.parse_args()
    asyncio.run(serve() if options.serve else main(options))
