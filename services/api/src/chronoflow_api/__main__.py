"""Entry point: ``chronoflow-api`` serves; ``chronoflow-api keys …`` and ``… seed`` administer.

- ``chronoflow-api keys create --name ci`` prints a new key once (only its hash is stored).
- ``chronoflow-api keys revoke <id>`` revokes one.
- ``chronoflow-api migrate`` brings the database schema up to date (concurrent runs are safe).
- ``chronoflow-api seed`` creates the default WAHA channel (session ``default``) unless a
  channel for that session exists; safe to run on every deploy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from chronoflow_api.app import create_app
from chronoflow_api.seed import seed_default_channel
from chronoflow_api.settings import ApiSettings
from chronoflow_platform import apikeys, db
from chronoflow_platform.logs import configure_logging
from chronoflow_platform.service import serve


async def _keys(settings: ApiSettings, args: argparse.Namespace) -> int:
    engine = db.create_engine(settings.database_url.get_secret_value(), pool_size=1)
    try:
        if args.action == "create":
            key_id, key = await apikeys.create_key(engine, args.name)
            print(json.dumps({"id": key_id, "name": args.name, "key": key}))
            return 0
        if await apikeys.revoke_key(engine, args.id):
            print(json.dumps({"revoked": args.id}))
            return 0
        print(f"no active key with id {args.id}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


def main() -> None:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="chronoflow-api")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the REST API (default)")
    keys = commands.add_parser("keys", help="create or revoke API keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create")
    create.add_argument("--name", required=True)
    revoke = key_actions.add_parser("revoke")
    revoke.add_argument("id")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed", help="create the default WAHA channel if missing")
    args = parser.parse_args()

    settings = ApiSettings()
    configure_logging("api", level=settings.log_level, fmt=settings.log_format)
    if args.command == "keys":
        sys.exit(asyncio.run(_keys(settings, args)))
    if args.command == "migrate":
        db.migrate(settings.database_url.get_secret_value())
        return
    if args.command == "seed":
        print(json.dumps(asyncio.run(seed_default_channel(settings))))
        return
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
