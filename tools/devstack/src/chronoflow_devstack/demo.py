"""What a developer sees firing after ``make run``: a local webhook sink and a demo chrono.

The sink prints every webhook it receives and whether its Standard Webhooks signature verifies
against the stack's webhook secret; the demo chrono posts to it every minute.
"""

from __future__ import annotations

import json
import logging

import httpx
from aiohttp import web

from chronoflow_egress import signing

log = logging.getLogger("demo-sink")


async def start_sink(port: int, webhook_secret: str) -> web.AppRunner:
    """Serve ``POST /webhook`` on 127.0.0.1:``port``, printing each delivery."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            signing.verify(webhook_secret, request.headers, body)
            signature = "verified"
        except signing.SignatureError as exc:
            signature = f"INVALID ({exc})"
        print(
            f"{'demo-sink':>17} | {request.method} {request.path} "
            f"webhook-id={request.headers.get('webhook-id', '-')} signature={signature} "
            f"body={body[:200].decode(errors='replace')}",
            flush=True,
        )
        return web.json_response({"received": True})

    app = web.Application()
    app.router.add_route("*", "/webhook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def create_demo_chrono(api: str, key: str, sink_port: int) -> str | None:
    """Create (once) a chrono posting to the sink every minute; returns its id."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=10) as client:
        existing = await client.get("/chronos", params={"name": "ChronoFlow demo"})
        if existing.status_code == 200 and existing.json()["total"]:
            return str(existing.json()["items"][0]["id"])
        r = await client.post(
            "/chronos",
            json={
                "name": "ChronoFlow demo",
                "description": "Created by make run: posts to the local demo sink every minute",
                "cron": "every minute",
                "url": f"http://127.0.0.1:{sink_port}/webhook",
                "payload": {"hello": "from ChronoFlow"},
            },
        )
        if r.status_code != 201:
            log.warning("could not create the demo chrono: %s", json.dumps(r.json()))
            return None
        return str(r.json()["id"])
