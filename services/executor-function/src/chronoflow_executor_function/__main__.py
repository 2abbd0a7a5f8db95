"""Entry point: ``python -m chronoflow_executor_function`` or ``chronoflow-executor-function``."""

from __future__ import annotations

from chronoflow_executor_function.app import create_app
from chronoflow_executor_function.settings import ExecutorFunctionSettings
from chronoflow_platform.logs import configure_logging
from chronoflow_platform.service import serve


def main() -> None:
    """Load settings once, configure logging, serve until SIGTERM."""
    settings = ExecutorFunctionSettings()
    configure_logging("executor-function", level=settings.log_level, fmt=settings.log_format)
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
