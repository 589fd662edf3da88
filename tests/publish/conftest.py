"""Fixtures of the output tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real local HTTP endpoint (webhooks, apprise's json://)."""
    server = Receiver()
    await server.start()
    yield server
    await server.stop()
