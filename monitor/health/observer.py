"""The live follower's view of a node (``latest.txt``, playlist Last-Modified) → feed health.

This is what makes Absent and Offline reachable in the daemon: the follower calls these methods
as it polls (see ``monitor.ingest.live.FollowerObserver``), each one updates the feed's
``FeedHealth`` and a state change goes to ``on_status`` like the pipeline's own health changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from monitor.detect.records import FeedStatus
from monitor.health.feed_state import FeedHealth
from monitor.timebase import utc_now

OnStatus = Callable[[FeedStatus], Awaitable[None]]


@dataclass(slots=True)
class FollowerHealthObserver:
    health: FeedHealth
    on_status: OnStatus | None = None

    async def latest_missing(self) -> None:
        await self._note(self.health.note_latest_missing(utc_now()))

    async def latest_seen(self, epoch: int) -> None:
        await self._note(self.health.note_latest_present(utc_now()))

    async def playlist_modified(self, folder_epoch: int, last_modified: datetime) -> None:
        await self._note(self.health.note_playlist(last_modified, utc_now()))

    async def _note(self, change: FeedStatus | None) -> None:
        if change is not None and self.on_status is not None:
            await self.on_status(change)
