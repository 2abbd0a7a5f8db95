"""A sandbox worker process: ``python -m chronoflow_executor_function.sandbox.worker``.

It speaks the pipe protocol on stdin/stdout, runs one function at a time, and caps its own
address space once the engine is loaded, so whatever goes wrong inside it (an engine bug, a
runaway allocation) ends this process, never the service. Host operations are only asked
for here; the parent performs them.
"""

from __future__ import annotations

import os
import resource
import sys
import traceback
from pathlib import Path

from chronoflow_executor_function.sandbox import protocol
from chronoflow_executor_function.sandbox.compiled import EngineSettings
from chronoflow_executor_function.sandbox.engine import Sandbox


class _PipeChannel:
    def __init__(self, reader: protocol.FrameReader, out_fd: int) -> None:
        self._reader = reader
        self._out = out_fd

    def send(self, message: protocol.Message) -> None:
        protocol.write_message(self._out, message)

    def recv(self, timeout: float | None) -> protocol.Message | None:
        return self._reader.recv(timeout)


def _address_space() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def main() -> int:
    """Serve runs until the parent closes the pipe."""
    # Frames go to a private copy of stdout; fd 1 becomes stderr so that nothing else
    # (a stray print, a native library) can corrupt the protocol.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    reader = protocol.FrameReader(0)
    channel = _PipeChannel(reader, out_fd)
    init = reader.recv(None)
    if init is None or init["t"] != protocol.INIT:
        raise protocol.ProtocolError("expected init")
    sandbox = Sandbox(EngineSettings(**init["settings"]), Path(init["module_path"]))
    headroom = int(init.get("address_space_headroom", 0))
    if headroom:
        limit = _address_space() + headroom
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    channel.send({"t": protocol.READY, "pid": os.getpid()})
    while True:
        try:
            message = reader.recv(None)
        except EOFError:
            sandbox.close()
            return 0
        if message is None or message["t"] in (protocol.REPLY, protocol.ABORT):
            continue  # late answers for a run that has already ended
        if message["t"] != protocol.RUN:
            raise protocol.ProtocolError(f"unexpected {message['t']!r} between runs")
        try:
            result = sandbox.execute(message, channel)
        except EOFError:
            return 0  # the parent is gone or closing the pool: nobody to report to
        except Exception as exc:
            # A bug here, not in the function: report it, then exit rather than carry on.
            traceback.print_exc()
            failure = {"termination": "error", "error_message": f"internal sandbox error ({exc!r})"}
            channel.send(
                {"t": protocol.DONE, "run": message["run"], "retire": True, "result": failure}
            )
            return 1
        channel.send({"t": protocol.DONE, "run": message["run"], "result": result})


if __name__ == "__main__":
    sys.exit(main())
