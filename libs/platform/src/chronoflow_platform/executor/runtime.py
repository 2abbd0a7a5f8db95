"""Plugging the executor runtime into a service's lifespan (see chronoflow_platform.service)."""

from __future__ import annotations

from chronoflow_contracts import names
from chronoflow_contracts.names import TargetKind
from chronoflow_platform.consumer_metrics import watch_consumers
from chronoflow_platform.executor.consumer import ConsumerOptions, Handler, WorkConsumer
from chronoflow_platform.executor.metrics import RunMetrics
from chronoflow_platform.executor.recording import EventRecorder
from chronoflow_platform.executor.runs import RunLedger
from chronoflow_platform.service import Runtime


def open_ledger(runtime: Runtime, metrics: RunMetrics) -> RunLedger:
    """The run ledger on the service's connection; :func:`close_ledger` ends it."""
    recorder = EventRecorder(runtime.nc, runtime.js)
    runtime.state["recorder"] = recorder
    return RunLedger(js=runtime.js, recorder=recorder, metrics=metrics)


async def close_ledger(runtime: Runtime) -> None:
    """Wait for run events being stored (once the consumer has stopped)."""
    recorder: EventRecorder | None = runtime.state.get("recorder")
    if recorder is not None:
        await recorder.close()


async def start_consumer(
    runtime: Runtime,
    target: TargetKind,
    handler: Handler,
    options: ConsumerOptions,
    metrics: RunMetrics,
) -> WorkConsumer:
    """Bind (or create) the target's durable and consume it for the service's lifetime."""
    consumer = WorkConsumer(runtime.nc, runtime.js, target, handler, options)
    await consumer.ensure()
    metrics.count_held(lambda: consumer.held)
    runtime.state["consumer"] = consumer
    runtime.spawn(consumer.run(), name=f"executor-{target}-consumer")
    watch_consumers(runtime, (names.WORK_STREAM, names.EXECUTOR_DURABLES[target]))
    return consumer
