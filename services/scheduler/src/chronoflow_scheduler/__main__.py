"""Entry point: ``python -m chronoflow_scheduler`` or ``chronoflow-scheduler``."""

from __future__ import annotations

from chronoflow_platform.logs import configure_logging
from chronoflow_platform.service import serve
from chronoflow_scheduler.app import create_app
from chronoflow_scheduler.service import FULL_COLLECTION_THRESHOLD
from chronoflow_scheduler.settings import SchedulerSettings


def main() -> None:
    """Load settings once, configure logging, serve until SIGTERM."""
    settings = SchedulerSettings()
    configure_logging("scheduler", level=settings.log_level, fmt=settings.log_format)
    serve(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        full_gc_threshold=FULL_COLLECTION_THRESHOLD,
    )


if __name__ == "__main__":
    main()
