"""Restart a crashed task with exponential backoff and jitter, and say so; never give up quietly.

A task that returns normally is finished. A task that raises is logged, reported and restarted
after ``backoff`` (growing ×``factor`` up to ``max_s``, ± ``jitter``); a run that lasted longer
than ``reset_after_s`` resets the backoff. Cancellation (shutdown) passes straight through.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from monitor.backoff import backoff_delay
from monitor.health.logs import get_logger
from monitor.timebase import utc_now

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    initial_backoff_s: float = field(default=1.0, metadata={"min": 0.0})
    max_backoff_s: float = field(default=120.0, metadata={"min": 0.0})
    factor: float = field(default=2.0, metadata={"min": 1.0})
    jitter: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})  # ± delay fraction
    # a run this long counts as healthy again
    reset_after_s: float = field(default=300.0, metadata={"min": 0.0})


@dataclass(slots=True)
class TaskHealth:
    """Where one supervised task stands (the daemon keeps one per feed)."""

    name: str
    state: str = "starting"  # starting | running | backoff | finished
    restarts: int = 0
    runs: int = 0  # runs started (the first one included)
    last_error: str | None = None
    last_error_utc: datetime | None = None
    next_retry_s: float | None = None


async def supervise(
    name: str,
    run_once: Callable[[], Awaitable[None]],
    settings: SupervisorSettings,
    health: TaskHealth,
    *,
    on_crash: Callable[[str, BaseException], None] | None = None,
    rng: random.Random | None = None,
    stop: asyncio.Event | None = None,
    fatal: tuple[type[Exception], ...] = (),
) -> None:
    """Run ``run_once`` until it returns; restart it when it raises. A set ``stop`` ends the
    wait between restarts (the daemon is shutting down). A ``fatal`` error is a configuration
    fault no restart can mend: it is raised to the caller instead."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        started = time.monotonic()
        health.state = "running"
        health.runs += 1
        health.next_retry_s = None
        try:
            await run_once()
        except asyncio.CancelledError:
            raise
        except fatal:
            health.state = "finished"
            raise
        except Exception as error:
            if time.monotonic() - started >= settings.reset_after_s:
                attempt = 0
            attempt += 1
            delay = backoff_delay(
                attempt - 1,
                base_s=settings.initial_backoff_s,
                max_s=settings.max_backoff_s,
                rng=rng,
                factor=settings.factor,
                jitter=settings.jitter,
            )
            health.state = "backoff"
            health.restarts += 1
            health.last_error = f"{type(error).__name__}: {error}"
            health.last_error_utc = utc_now()
            health.next_retry_s = delay
            log.error(
                "task crashed; restarting",
                task=name,
                error=health.last_error,
                restart=health.restarts,
                retry_in_s=round(delay, 2),
                exc_info=error,
            )
            if on_crash is not None:
                on_crash(name, error)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    health.state = "finished"
                    return
            continue
        health.state = "finished"
        return
