"""Publish each message to every output through its own bounded queue and task.

A slow or failing output never blocks the producer or the other outputs: a failure is logged
and counted; a full queue drops the message *for that output only*, logged and counted (the
Redis output has its own disk spool, so its queue only fills if the disk itself stalls).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.detect.records import Message
from monitor.health.logs import get_logger
from monitor.publish.output import Output

log = get_logger(__name__)

_STOP = object()


@dataclass(frozen=True)
class FanoutSettings:
    queue_size: int = field(default=1000, metadata={"min": 1})
    close_timeout_s: float = 10.0  # how long close() waits for queues to drain


@dataclass
class OutputStats:
    published: int = 0
    failed: int = 0
    dropped: int = 0


class Fanout:
    def __init__(self, outputs: Sequence[Output], settings: FanoutSettings | None = None) -> None:
        self.settings = settings or FanoutSettings()
        names = [output.name for output in outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"output names must be unique, got {names}")
        self.outputs = list(outputs)
        self.stats = {name: OutputStats() for name in names}
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        for output in self.outputs:
            await output.start()
            queue: asyncio.Queue[Any] = asyncio.Queue(self.settings.queue_size)
            self._queues[output.name] = queue
            self._tasks[output.name] = asyncio.create_task(
                self._run(output, queue), name=f"output-{output.name}"
            )

    async def publish(self, message: Message) -> None:
        if not self._tasks:
            raise RuntimeError("Fanout.publish before start()")
        for name, queue in self._queues.items():
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self.stats[name].dropped += 1
                log.error(
                    "output queue full, message dropped for this output",
                    output=name,
                    message_id=message.message_id,
                    queue_size=queue.maxsize,
                )

    async def _run(self, output: Output, queue: asyncio.Queue[Any]) -> None:
        stats = self.stats[output.name]
        while True:
            message = await queue.get()
            if message is _STOP:
                return
            try:
                await output.publish(message)
                stats.published += 1
            except asyncio.CancelledError:
                raise
            except Exception as error:
                stats.failed += 1
                log.error(
                    "output failed to publish",
                    output=output.name,
                    message_id=message.message_id,
                    error=repr(error),
                )

    async def close(self) -> None:
        """Let each output finish its queue (bounded wait), then close it."""
        for queue in self._queues.values():
            # The queue may be full: wait for room rather than lose the stop marker.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.put(_STOP), self.settings.close_timeout_s)
        for output in self.outputs:
            task = self._tasks.pop(output.name, None)
            if task is not None:
                try:
                    await asyncio.wait_for(task, self.settings.close_timeout_s)
                except TimeoutError:
                    left = self._queues[output.name].qsize()
                    self.stats[output.name].dropped += left
                    log.error("output did not drain in time", output=output.name, left=left)
            try:
                await output.close()
            except Exception as error:
                log.error("output failed to close", output=output.name, error=repr(error))
