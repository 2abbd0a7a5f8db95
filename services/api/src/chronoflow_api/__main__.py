"""Entry point: ``python -m chronoflow_api`` or ``chronoflow-api``."""

from __future__ import annotations

from chronoflow_api.app import create_app
from chronoflow_api.settings import ApiSettings
from chronoflow_platform.logs import configure_logging
from chronoflow_platform.service import serve


def main() -> None:
    """Load settings once, configure logging, serve until SIGTERM."""
    settings = ApiSettings()
    configure_logging("api", level=settings.log_level, fmt=settings.log_format)
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
