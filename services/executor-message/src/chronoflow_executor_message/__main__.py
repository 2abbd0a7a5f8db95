"""Entry point: ``python -m chronoflow_executor_message`` or ``chronoflow-executor-message``."""

from __future__ import annotations

from chronoflow_executor_message.app import create_app
from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_platform.logs import configure_logging
from chronoflow_platform.service import serve


def main() -> None:
    """Load settings once, configure logging, serve until SIGTERM."""
    settings = ExecutorMessageSettings()
    configure_logging("executor-message", level=settings.log_level, fmt=settings.log_format)
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
