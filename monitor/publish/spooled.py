"""Delivery to a remote service through a disk spool: delivered once, in order, across outages.

The one mechanism behind the Redis, MQTT and webhook outputs. ``submit`` tries the service at
once while nothing waits; when the service is down (``DeliveryUnavailable``) the message goes to
the spool (``monitor/publish/spool.py``) and a background task delivers the spool, oldest first,
retrying after ``retry_delay(failures)`` (a fixed interval or a backoff), while new messages
queue behind it so the order never changes. The spool outlives restarts: ``start()`` resumes it.
When the spool's disk is full, messages wait in memory behind it (at most ``max_messages``, in
order) and go into the spool, or straight to the service, as soon as one of them takes them; only
those still waiting at ``close()`` are lost (logged). A message the service refuses for good
(``DeliveryRejected``) is given up: logged and counted by the deliverer, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.backoff import backoff_delay
from monitor.detect.wire import message_key
from monitor.health.logs import get_logger
from monitor.publish.spool import Spool, SpoolFull, SpoolNoSpace

log = get_logger(__name__)


class DeliveryUnavailable(Exception):
    """The service cannot take the message now (down, too slow, busy): spool it, retry later."""


class DeliveryRejected(Exception):
    """The service refused this message: retrying it would fail the same way."""


@dataclass
class SpoolStats:
    spooled: int = 0
    refused: int = 0  # spool full: the message was not accepted (logged)


class SpooledDelivery:
    def __init__(
        self,
        name: str,
        deliver: Callable[[dict[str, Any]], Awaitable[None]],
        spool_path: Path,
        max_messages: int,
        retry_delay: Callable[[int], float],
        stats: SpoolStats | None = None,
    ) -> None:
        self.name = name
        self.stats = stats if stats is not None else SpoolStats()
        self._deliver = deliver
        self._spool_path = Path(spool_path)
        self._max_messages = max_messages
        self._retry_delay = retry_delay
        self._spool: Spool | None = None
        self._lock = asyncio.Lock()
        self._healthy = True
        self._drainer: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._wake = asyncio.Event()  # the service is back: retry now, not after the delay
        # Messages the spool could not take (its disk is full), oldest first, behind the spool.
        self._held: deque[dict[str, Any]] = deque()
        self._spool_disk_full = False  # logged once per episode, not on every retry

    @property
    def spool(self) -> Spool | None:
        return self._spool

    @property
    def depth(self) -> int:
        """Messages waiting for the service: in the spool, and in memory when its disk is full."""
        return len(self._held) + (0 if self._spool is None else self._spool.depth)

    async def start(self) -> None:
        self._spool = await asyncio.to_thread(Spool, self._spool_path, self._max_messages)
        if self._spool.depth:
            log.info(
                "resuming spool",
                output=self.name,
                depth=self._spool.depth,
                path=str(self._spool_path),
            )
            self._healthy = False
            self._ensure_drainer()
        else:
            self._drained.set()

    async def submit(self, message: dict[str, Any]) -> None:
        """Deliver now, or queue behind what waits; ``SpoolFull`` when nothing more fits."""
        spool = self._require_spool()
        async with self._lock:
            if spool.depth == 0 and not self._held and self._healthy:
                try:
                    await self._deliver(message)
                    return
                except DeliveryUnavailable as error:
                    self._healthy = False
                    log.warning("output unavailable, spooling", output=self.name, error=str(error))
                except DeliveryRejected:
                    return
            await self._enqueue(spool, message)
            self._drained.clear()
        self._ensure_drainer()

    async def _enqueue(self, spool: Spool, message: dict[str, Any]) -> None:
        """Behind everything already waiting: into the spool, or into memory while the spool's
        disk is full."""
        if len(self._held) + spool.depth >= spool.max_messages:
            self.stats.refused += 1
            error = SpoolFull(f"spool {spool.path} holds {self.depth} messages (its limit)")
            log.error(
                "spool full: message refused",
                output=self.name,
                message_id=message_key(message),
                error=str(error),
            )
            raise error
        self._held.append(message)
        await self._unhold(spool)

    async def _unhold(self, spool: Spool) -> None:
        """Move the messages held in memory into the spool while its disk takes them."""
        moved = False
        while self._held:
            try:
                await asyncio.to_thread(spool.append, self._held[0])
            except SpoolNoSpace as error:
                if not self._spool_disk_full:
                    log.error(
                        "spool disk full: messages wait in memory",
                        output=self.name,
                        waiting=len(self._held),
                        error=str(error),
                    )
                    self._spool_disk_full = True
                return
            self._held.popleft()
            self.stats.spooled += 1
            moved = True
        if moved and self._spool_disk_full:
            log.info("spool disk has room again: held messages spooled", output=self.name)
            self._spool_disk_full = False

    async def wait_drained(self) -> None:
        await self._drained.wait()

    def wake(self) -> None:
        """Retry the spool now (the output knows its service is back, e.g. reconnected)."""
        self._wake.set()

    async def close(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None
        if self._spool is not None and self._spool.depth:
            log.warning("spool kept for next start", output=self.name, depth=self._spool.depth)
        if self._held:
            log.error(
                "spool disk full at close: messages not kept",
                output=self.name,
                lost=len(self._held),
                first_message_id=message_key(self._held[0]),
            )
        if self._spool is not None:
            await asyncio.to_thread(self._spool.close)
            self._spool = None

    def _require_spool(self) -> Spool:
        if self._spool is None:
            raise RuntimeError(f"{self.name} output used before start() or after close()")
        return self._spool

    def _ensure_drainer(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name=f"{self.name}-spool")

    async def _drain(self) -> None:
        spool = self._require_spool()
        failures = 0
        while True:
            self._wake.clear()
            async with self._lock:
                await self._unhold(spool)
                head = await asyncio.to_thread(spool.peek)
                if head is None and not self._held:
                    self._healthy = True
                    self._drained.set()
                    return
                # The spool is the older part; what memory holds comes after it.
                seq, message = head if head is not None else (None, self._held[0])
                try:
                    await self._deliver(message)
                except DeliveryUnavailable:
                    done = False
                except DeliveryRejected:
                    done = True  # given up (logged, counted): never retried
                else:
                    done = True
                if done:
                    done = await self._forget(spool, seq)
            if done:
                failures = 0
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._retry_delay(failures))
                failures += 1

    async def _forget(self, spool: Spool, seq: int | None) -> bool:
        """Drop a delivered message from the spool (``seq``) or memory; False if the spool's
        disk is too full even for that (it is delivered again later: receivers de-duplicate on
        the message id)."""
        if seq is None:
            self._held.popleft()
            return True
        try:
            await asyncio.to_thread(spool.remove, seq)
        except SpoolNoSpace as error:
            log.error(
                "spool disk full: cannot remove a delivered message",
                output=self.name,
                error=str(error),
            )
            return False
        return True


@dataclass(frozen=True)
class RetrySettings:
    """When a spooled output tries its service again: ``initial_s·2^n`` capped at ``max_s``,
    ±20 % jitter (``monitor/backoff.py``), counted from the first failure of an outage."""

    initial_s: float = field(default=1.0, metadata={"gt": 0.0})
    max_s: float = field(default=60.0, metadata={"gt": 0.0})

    def delays(self, rng: random.Random | None = None) -> Callable[[int], float]:
        source = rng or random.Random()
        return lambda failures: backoff_delay(
            failures, base_s=self.initial_s, max_s=self.max_s, rng=source, jitter=0.2
        )
