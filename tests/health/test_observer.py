"""What the live follower reports about the node: latest.txt missing/present and the S3
Last-Modified of the current folder's playlist (never "now", never for an older folder)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import aclosing
from datetime import datetime

from monitor.ingest.live import FollowerSettings, SegmentCursor, follow_live
from monitor.ingest.slots import Segment
from tests.support.synthetic_node import SyntheticNode

E1 = 1717761600
E2 = E1 + 100
FAST = FollowerSettings(
    poll_interval_s=0.05, missing_grace_s=0.3, quiet_after_arrival_s=0.0, probe_ahead=1
)


class Heard:
    """A follower observer that keeps what it is told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    async def latest_missing(self) -> None:
        self.events.append(("missing",))

    async def latest_seen(self, epoch: int) -> None:
        self.events.append(("seen", epoch))

    async def playlist_modified(self, folder_epoch: int, last_modified: datetime) -> None:
        assert last_modified.utcoffset() is not None  # aware UTC, as S3 says it
        self.events.append(("playlist", folder_epoch, last_modified))

    def kinds(self) -> list[str]:
        return [event[0] for event in self.events]

    def playlists(self) -> list[tuple]:
        return [event[1:] for event in self.events if event[0] == "playlist"]


async def last_modified(node: SyntheticNode, epoch: int) -> datetime:
    head = await node.admin.head_object(Bucket=node.bucket, Key=node.key(epoch, "live.m3u8"))
    return head["LastModified"]


async def until(check, what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_missing_latest_then_present_and_only_real_playlist_changes(node, store):
    heard = Heard()

    async def node_starts_later() -> None:
        # Start the node only after several polls found no latest.txt (load-independent).
        await until(lambda: heard.kinds().count("missing") >= 3, "three missing polls")
        await node.put_segments(E1, [0, 1])
        await node.put_legacy_playlist(E1, range(2))
        await node.set_latest(E1)

    async with aclosing(follow_live(store, node.node, FAST, observer=heard)) as items:
        starter = asyncio.create_task(node_starts_later())
        first = await asyncio.wait_for(anext(items), 10)
        await starter
        assert isinstance(first, Segment) and first.ref.number == 1
        kinds = heard.kinds()
        assert kinds.count("missing") >= 3  # every poll while the node has no latest.txt
        assert kinds.index("seen") > max(i for i, k in enumerate(kinds) if k == "missing")
        assert heard.events[kinds.index("seen")] == ("seen", E1)
        first_modified = await last_modified(node, E1)
        assert heard.playlists() == [(E1, first_modified)]

        # The follower waits for live002.ts: many conditional polls, all 304, none reported.
        waiting = asyncio.create_task(anext(items))
        not_modified = store.stats.not_modified
        await asyncio.sleep(1.1)  # also puts the next upload in a later Last-Modified second
        assert store.stats.not_modified > not_modified + 5
        assert heard.playlists() == [(E1, first_modified)]
        await node.put_segment(E1, 2)
        await node.put_legacy_playlist(E1, range(3))
        second_modified = await last_modified(node, E1)
        assert second_modified > first_modified
        await asyncio.wait_for(waiting, 10)
        waiting = asyncio.create_task(anext(items))  # the follower polls only while iterated
        await until(lambda: len(heard.playlists()) == 2, "the new playlist to be reported")
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        assert heard.playlists() == [(E1, first_modified), (E1, second_modified)]


async def test_latest_deleted_then_restored_with_the_same_text_is_present_again(node, store):
    heard = Heard()
    await node.set_latest(E1)
    await node.put_segments(E1, [0])
    await node.put_legacy_playlist(E1, range(1))
    async with aclosing(follow_live(store, node.node, FAST, observer=heard)) as items:
        await asyncio.wait_for(anext(items), 10)
        waiting = asyncio.create_task(anext(items))
        await node.delete(f"{node.node}/latest.txt")
        await until(lambda: "missing" in heard.kinds(), "latest.txt reported missing")
        await node.set_latest(E1)  # the same bytes, so the same ETag as before
        await until(lambda: heard.kinds()[-1] == "seen", "latest.txt reported present again")
        assert heard.events[-1] == ("seen", E1)
        await node.put_segment(E1, 1)
        item = await asyncio.wait_for(waiting, 10)
    assert isinstance(item, Segment) and item.ref.number == 1


async def test_catching_up_an_older_folder_reports_the_current_folders_playlist(node, store):
    heard = Heard()
    await node.put_segments(E1, range(4))
    await node.put_legacy_playlist(E1, range(4))
    await node.put_segments(E2, range(1))
    await node.put_legacy_playlist(E2, range(1))
    await node.set_latest(E2)
    cursor = SegmentCursor(E1, 0)
    async with aclosing(follow_live(store, node.node, FAST, cursor=cursor, observer=heard)) as it:
        got = [await asyncio.wait_for(anext(it), 10) for _ in range(4)]
    assert [item.ref.number for item in got] == [0, 1, 2, 3]
    assert ("seen", E2) in heard.events
    current = await last_modified(node, E2)
    assert heard.playlists()  # reported while the follower was still in E1
    assert set(heard.playlists()) == {(E2, current)}  # E1's playlist says nothing about now
