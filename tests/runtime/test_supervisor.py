"""Supervision: crashed tasks restart with exponential backoff and jitter, and say so."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from monitor.runtime.supervisor import SupervisorSettings, TaskHealth, supervise

FAST = SupervisorSettings(initial_backoff_s=0.02, max_backoff_s=0.1, factor=2.0, jitter=0.2)


async def test_a_crashing_task_is_restarted_and_reported_until_it_succeeds() -> None:
    runs: list[float] = []
    crashes: list[str] = []

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) < 4:
            raise ConnectionError(f"S3 went away ({len(runs)})")

    health = TaskHealth("feed:rpi_test")
    await supervise(
        "feed:rpi_test",
        flaky,
        FAST,
        health,
        on_crash=lambda name, error: crashes.append(f"{name}: {error}"),
    )
    assert len(runs) == 4
    assert health.restarts == 3 and health.runs == 4 and health.state == "finished"
    assert health.last_error == "ConnectionError: S3 went away (3)"
    assert crashes == [f"feed:rpi_test: S3 went away ({i})" for i in (1, 2, 3)]
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps[0] >= 0.016 and gaps[1] >= 0.032 and gaps[2] >= 0.064


async def test_stop_ends_the_wait_between_restarts() -> None:
    stop = asyncio.Event()
    slow = SupervisorSettings(initial_backoff_s=60, max_backoff_s=60)

    async def broken() -> None:
        stop.set()
        raise RuntimeError("always")

    health = TaskHealth("feed:x")
    started = time.monotonic()
    await supervise("feed:x", broken, slow, health, stop=stop)
    assert time.monotonic() - started < 5
    assert health.state == "finished" and health.restarts == 1


async def test_cancellation_passes_through() -> None:
    async def forever() -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(supervise("t", forever, FAST, TaskHealth("t")))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
