"""Entry point: ``chronoflow-projector`` (serve) and ``chronoflow-projector rebuild``."""

from __future__ import annotations

import argparse
import asyncio
import json

from chronoflow_api.projector.app import create_app
from chronoflow_api.projector.rebuild import rebuild
from chronoflow_api.settings import ProjectorSettings
from chronoflow_platform import db, jetstream
from chronoflow_platform.logs import configure_logging
from chronoflow_platform.service import serve


async def _rebuild(settings: ProjectorSettings) -> dict[str, int]:
    nc = await jetstream.connect(settings.nats_url, name="projector-rebuild")
    engine = db.create_engine(settings.database_url.get_secret_value())
    try:
        return await rebuild(nc, engine)
    finally:
        await nc.drain()
        await engine.dispose()


def main() -> None:
    """``serve`` (default) runs the projector; ``rebuild`` replays the streams and exits."""
    parser = argparse.ArgumentParser(prog="chronoflow-projector")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "rebuild"])
    args = parser.parse_args()
    settings = ProjectorSettings()
    configure_logging("projector", level=settings.log_level, fmt=settings.log_format)
    if args.command == "rebuild":
        print(json.dumps({"rebuilt": asyncio.run(_rebuild(settings))}))
        return
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
