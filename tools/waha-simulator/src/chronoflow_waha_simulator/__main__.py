"""Entry point: ``python -m chronoflow_waha_simulator`` or ``chronoflow-waha-simulator``."""

from __future__ import annotations

import logging

import uvicorn

from chronoflow_waha_simulator.app import create_app
from chronoflow_waha_simulator.settings import SimulatorSettings


def main() -> None:
    """Load settings from the environment and serve until SIGTERM/SIGINT."""
    settings = SimulatorSettings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)-5s %(name)s: %(message)s"
    )
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        ws="none",
    )


if __name__ == "__main__":
    main()
