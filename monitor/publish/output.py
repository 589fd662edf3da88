"""The one interface every output implements."""

from __future__ import annotations

from typing import Protocol

from monitor.detect.records import Message


class OutputUnusable(Exception):
    """An output that cannot start at all (an unwritable folder, a port in use): a
    configuration error, reported in one line and never retried."""


class Output(Protocol):
    name: str

    async def start(self) -> None:
        """Open connections / bind sockets / resume delivery of anything spooled."""

    async def publish(self, message: Message) -> None:
        """Deliver one message, encoded with ``monitor.detect.wire.encode`` (raise on failure:
        the fan-out counts and logs it)."""

    async def close(self) -> None:
        """Deliver what can be delivered, then release everything."""
