"""The runtime every executor shares: the durable pull consumer, the run handler skeleton,
atomic-batch run recording, retries as JetStream ``@at`` schedules, settings, metrics.

An executor keeps only what is its own (sending an HTTP request, a WhatsApp text, running a
sandboxed function) and plugs it in as a :class:`~chronoflow_platform.executor.handler.RunExecutor`.
"""
