"""Bucket content no node writes: odd digits, future epochs, huge objects. Each is logged and
counted and the feed goes on (or waits as if the node were absent); nothing raises out of the
follower or the archive reader, which would make the daemon restart the feed for ever."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from datetime import datetime

import pytest
from structlog.testing import capture_logs

from monitor.ingest.archive import read_archive
from monitor.ingest.live import FollowerSettings, SegmentCursor, follow_live
from monitor.ingest.numbers import parse_epoch, parse_segment_number
from monitor.ingest.playlist import PlaylistError, parse_playlist
from monitor.ingest.s3 import S3Settings, open_store
from monitor.ingest.slots import SegmentGap
from monitor.timebase import from_epoch
from tests.ingest.test_live import brief
from tests.support.s3_store import store_settings
from tests.support.synthetic_node import legacy_playlist

E1 = 1717761600  # 2024-06-07T12:00:00Z
FAST = FollowerSettings(
    poll_interval_s=0.05, missing_grace_s=0.3, quiet_after_arrival_s=0.0, probe_ahead=1
)


class RecordingObserver:
    """What the health board would hear from the follower."""

    def __init__(self) -> None:
        self.missing = 0
        self.seen: list[int] = []

    async def latest_missing(self) -> None:
        self.missing += 1

    async def latest_seen(self, epoch: int) -> None:
        self.seen.append(epoch)

    async def playlist_modified(self, folder_epoch: int, last_modified: datetime) -> None:
        pass


def test_bounded_integers() -> None:
    assert parse_segment_number("007") == 7
    assert parse_segment_number("9999999") == 9_999_999
    for bad in ("²", "１２", "", "-1", "+1", " 1", "10000000", "9" * 5000):
        assert parse_segment_number(bad) is None, bad
    assert parse_epoch("1717761600") == E1
    latest = from_epoch(E1 + 60)
    assert parse_epoch("1717761600", latest=latest) == E1
    for bad in ("1717761661", "1400000000", "99999999999999999999", "²", "9" * 5000):
        assert parse_epoch(bad, latest=latest) is None, bad


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("\u00b2", "latest_txt_unreadable"),  # str.isdigit() is True, int() fails
        ("9" * 5000, "latest_txt_unreadable"),  # over Python's int() digit limit
        ("99999999999999999999", "latest_txt_unreadable"),  # overflows datetime
        ("in-future", "latest_txt_in_future"),  # a day ahead of our clock
    ],
)
async def test_a_bad_latest_txt_is_absent_until_a_good_one_comes(node, store, text, kind):
    future = int(time.time()) + 86_400
    if text == "in-future":
        text = str(future)
        await node.put_segments(future, [0, 1])  # the folder must not be followed
    await node.put(f"{node.node}/latest.txt", text + "\n")
    await node.put_segments(E1, [0, 1, 2])
    observer = RecordingObserver()
    with capture_logs() as logs:
        async with aclosing(follow_live(store, node.node, FAST, observer=observer)) as items:
            waiting = asyncio.ensure_future(anext(items))
            await asyncio.sleep(0.4)  # several polls
            assert not waiting.done()
            polls = store.stats.rejected[kind]
            await node.set_latest(E1)
            async with asyncio.timeout(10):
                first = await waiting
    assert polls >= 2  # counted at every poll, re-read each time
    assert [e["event"] for e in logs].count(kind) == 1  # logged once
    assert observer.missing >= 1  # the feed is absent meanwhile
    assert observer.seen[0] == E1
    assert brief([first]) == [("seg", E1, 2)]


def test_a_playlist_with_a_huge_segment_number_is_a_playlist_error() -> None:
    for uri in ("live" + "9" * 5000 + ".ts", "live99999999999999999999.ts"):
        text = legacy_playlist([0]) + f"#EXTINF:10.0,\n{uri}\n"
        with pytest.raises(PlaylistError, match="out of range"):
            parse_playlist(text)
    with pytest.raises(PlaylistError):
        parse_playlist(legacy_playlist([0], media_sequence=10**30))


async def test_the_follower_rides_over_a_bad_playlist_and_bad_key_names(node, store):
    await node.set_latest(E1)
    await node.put_segments(E1, [0, 1])
    await node.put(node.key(E1, "live99999999999999999999.ts"), node.sample(0))
    text = legacy_playlist([0, 1]) + "#EXTINF:10.0,\nlive" + "9" * 5000 + ".ts\n"
    await node.put(node.key(E1, "live.m3u8"), text)
    cursor = SegmentCursor(E1, 0)
    async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
        async with asyncio.timeout(10):
            got = [await anext(items), await anext(items)]
    assert brief(got) == [("seg", E1, 0), ("seg", E1, 1)]
    assert store.stats.rejected["playlist_unreadable"] >= 1


async def test_the_archive_skips_and_counts_out_of_range_keys(node, store):
    await node.put_segments(E1, [0, 1])
    await node.put(node.key(E1, "live99999999999999999999.ts"), node.sample(0))
    await node.put(node.key(E1, "live.m3u8"), legacy_playlist([0]) + "live" + "9" * 5000 + ".ts\n")
    async with aclosing(
        read_archive(store, node.node, from_epoch(E1 + 2), from_epoch(E1 + 25))
    ) as it:
        got = [item async for item in it]
    assert brief(got) == [("seg", E1, 0), ("seg", E1, 1), ("missing", None, None)]
    assert store.stats.rejected["segment_name_out_of_range"] == 1


async def test_oversized_latest_and_playlist_are_refused_unread(moto_server, node):
    settings = store_settings(moto_server.endpoint_url, node.bucket, max_text_bytes=4096)
    await node.put(f"{node.node}/latest.txt", f"{E1}\n" + " " * 5000)
    await node.put_segments(E1, [0, 1])
    big = legacy_playlist(range(400))  # ~8 kB
    await node.put(node.key(E1, "live.m3u8"), big)
    observer = RecordingObserver()
    async with open_store(settings) as store:
        async with aclosing(follow_live(store, node.node, FAST, observer=observer)) as items:
            waiting = asyncio.ensure_future(anext(items))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert store.stats.rejected["latest_txt_too_large"] >= 2
            await node.set_latest(E1)
            async with asyncio.timeout(10):
                first = await waiting
        # the playlist was refused: "now" came from the keys
        assert brief([first]) == [("seg", E1, 1)]
        assert store.stats.rejected["playlist_too_large"] >= 1
        refused = store.stats.rejected["playlist_too_large"]
        assert store.stats.too_large >= 3
        # the archive reads no PDTs from it either, and goes on
        end = from_epoch(E1 + 22)
        async with aclosing(read_archive(store, node.node, from_epoch(E1 + 2), end)) as it:
            assert brief([i async for i in it]) == [("seg", E1, 0), ("seg", E1, 1)]
        assert store.stats.rejected["playlist_too_large"] == refused + 1
    assert observer.missing >= 1


async def test_a_large_playlist_is_parsed_off_the_event_loop(moto_server, node):
    numbers = range(60_000)
    text = legacy_playlist(numbers)
    started = time.perf_counter()
    parse_playlist(text)
    parse_s = time.perf_counter() - started
    assert parse_s > 0.2, "the playlist must take a while to parse for this test to mean much"
    settings = store_settings(moto_server.endpoint_url, node.bucket, max_text_bytes=8 << 20)
    await node.set_latest(E1)
    await node.put_segment(E1, 59_999)
    await node.put(node.key(E1, "live.m3u8"), text)
    stalls: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stalls.append(now - last)
            last = now

    async with open_store(settings) as store:
        ticking = asyncio.create_task(ticker())
        try:
            async with aclosing(follow_live(store, node.node, FAST)) as items:
                async with asyncio.timeout(30):
                    first = await anext(items)
        finally:
            ticking.cancel()
    assert brief([first]) == [("seg", E1, 59_999)]
    assert max(stalls) < parse_s / 2


def test_size_limits_have_bounds() -> None:
    for name in ("max_text_bytes", "max_segment_bytes"):
        with pytest.raises(ValueError, match=name):
            S3Settings(**{name: 10})
    with pytest.raises(ValueError, match="max_future_skew_s"):
        FollowerSettings(max_future_skew_s=0)


async def test_an_oversized_segment_is_a_gap_live_and_in_the_archive(moto_server, node):
    # real segments are ~110-200 kB; with a 64 KiB cap every one is refused unread
    settings = store_settings(moto_server.endpoint_url, node.bucket, max_segment_bytes=1 << 16)
    await node.set_latest(E1)
    await node.put_segments(E1, [0, 1])
    async with open_store(settings) as store:
        cursor = SegmentCursor(E1, 0)
        async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
            async with asyncio.timeout(10):
                live = [await anext(items)]
        end = from_epoch(E1 + 22)
        async with aclosing(read_archive(store, node.node, from_epoch(E1 + 2), end)) as it:
            archived = [i async for i in it]
    assert brief(live) == [("oversized", E1, 0)]
    assert isinstance(live[0], SegmentGap)
    assert (live[0].start_utc, live[0].end_utc) == (from_epoch(E1 + 2), from_epoch(E1 + 12))
    assert brief(archived) == [("oversized", E1, 0), ("oversized", E1, 1)]
