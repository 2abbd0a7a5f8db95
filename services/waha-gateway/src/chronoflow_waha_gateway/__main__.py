"""Entry point: ``python -m chronoflow_waha_gateway`` or ``chronoflow-waha-gateway``."""

from __future__ import annotations

from chronoflow_platform.logs import configure_logging
from chronoflow_platform.service import serve
from chronoflow_waha_gateway.app import create_app
from chronoflow_waha_gateway.settings import WahaGatewaySettings


def main() -> None:
    """Load settings once, configure logging, serve until SIGTERM."""
    settings = WahaGatewaySettings()
    configure_logging("waha-gateway", level=settings.log_level, fmt=settings.log_format)
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
