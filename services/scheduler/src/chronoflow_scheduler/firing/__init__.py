"""What happens when a chrono's schedule fires (see :mod:`chronoflow_scheduler.firing.service`)."""

from chronoflow_scheduler.firing.service import FireService, FireTiming

__all__ = ["FireService", "FireTiming"]
