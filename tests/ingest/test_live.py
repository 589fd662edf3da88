"""The live follower on a synthetic node that changes while it runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from monitor.ingest.live import FollowerSettings, SegmentCursor, cursor_after, follow_live
from monitor.ingest.s3 import open_store
from monitor.ingest.slots import Segment, SegmentGap
from monitor.timebase import from_epoch
from tests.support.s3_proxy import flaky_proxy
from tests.support.s3_store import store_settings
from tests.support.synthetic_node import STORE_KINDS

E1 = 1717761600  # 2024-06-07T12:00:00Z
E2 = E1 + 100
E3 = E2 + 300
FAST = FollowerSettings(
    poll_interval_s=0.05, missing_grace_s=0.3, quiet_after_arrival_s=0.0, probe_ahead=1
)


def at(epoch: float):
    return from_epoch(epoch)


async def take(items: AsyncIterator, count: int) -> list:
    out: list = []
    async with asyncio.timeout(10.0):
        while len(out) < count:
            out.append(await anext(items))
    return out


def brief(items: list) -> list[tuple]:
    return [
        (
            "seg" if isinstance(i, Segment) else i.reason,
            i.ref.folder_epoch if i.ref else None,
            i.ref.number if i.ref else None,
        )
        for i in items
    ]


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_default_start_is_newest_then_follows_segments_ahead_of_playlist(node, store):
    await node.set_latest(E1)
    await node.put_segments(E1, range(6))
    await node.put_legacy_playlist(E1, range(5))  # live005.ts is on S3 but not yet listed

    async def upload_later() -> None:
        await asyncio.sleep(0.2)
        await node.put_segment(E1, 6)

    async with aclosing(follow_live(store, node.node, FAST)) as items:
        uploader = asyncio.create_task(upload_later())
        got = await take(items, 3)
        await uploader
    assert brief(got) == [("seg", E1, 4), ("seg", E1, 5), ("seg", E1, 6)]
    assert [s.start_utc for s in got] == [at(E1 + 42), at(E1 + 52), at(E1 + 62)]
    assert all(s.timing_source == "number" and s.nominal_duration == 10.0 for s in got)
    assert got[2].data == node.sample(6)
    assert cursor_after(got[2]) == SegmentCursor(E1, 7)


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_pdt_rolling_playlist_times_exact(node, store):
    await node.set_latest(E1)
    await node.put_segments(E1, range(10))
    pdt = {n: at(E1 + 2.25 + 10 * n) for n in range(5, 10)}
    await node.put_pdt_playlist(E1, range(5, 10), pdt, media_sequence=5)
    cursor = SegmentCursor(E1, 3)  # rolled out of the playlist already
    async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
        got = await take(items, 7)
    assert brief(got) == [("seg", E1, n) for n in range(3, 10)]
    assert [s.start_utc for s in got] == [at(E1 + 2.25 + 10 * n) for n in range(3, 10)]
    assert {s.timing_source for s in got} == {"program-date-time"}
    assert all(s.start_utc.utcoffset() == timedelta(0) for s in got)


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_zero_byte_segment_is_an_empty_gap(node, store):
    await node.set_latest(E1)
    await node.put_segments(E1, [0, 2])
    await node.put_segment(E1, 1, empty=True)
    async with aclosing(follow_live(store, node.node, FAST, cursor=SegmentCursor(E1, 0))) as it:
        got = await take(it, 3)
    assert brief(got) == [("seg", E1, 0), ("empty", E1, 1), ("seg", E1, 2)]
    assert (got[1].start_utc, got[1].end_utc) == (at(E1 + 12), at(E1 + 22))


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_missing_latest_is_waited_for(node, store):
    async def node_starts_later() -> None:
        await asyncio.sleep(0.3)
        await node.put_segments(E1, [0, 1])  # no playlist yet either
        await node.set_latest(E1)

    with capture_logs() as logs:
        async with aclosing(follow_live(store, node.node, FAST)) as items:
            starter = asyncio.create_task(node_starts_later())
            got = await take(items, 1)
            await starter
            await node.put_segment(E1, 2)
            got += await take(items, 1)
    # many polls without latest.txt, one warning; without a playlist "now" is the newest key
    assert [e["event"] for e in logs].count("latest_txt_missing") == 1
    assert brief(got) == [("seg", E1, 1), ("seg", E1, 2)]


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_segments_uploaded_while_following(node, store):
    await node.set_latest(E1)

    async def node_uploads() -> None:
        for number in range(4):
            await asyncio.sleep(0.15)
            await node.put_segment(E1, number)
            await node.put_legacy_playlist(E1, range(number + 1))

    cursor = SegmentCursor(E1, 0)
    async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
        uploader = asyncio.create_task(node_uploads())
        got = await take(items, 4)
        await uploader
    assert brief(got) == [("seg", E1, n) for n in range(4)]
    assert [s.data for s in got] == [node.sample(n) for n in range(4)]


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_a_segment_that_never_comes_is_a_gap_after_grace_a_late_one_is_not(node, store):
    await node.set_latest(E1)
    await node.put_segments(E1, [0, 2, 4])  # 1 comes late (within grace), 3 never
    await node.put_legacy_playlist(E1, [0, 2, 4])

    async def late_upload() -> None:
        await asyncio.sleep(0.1)
        await node.put_segment(E1, 1)

    cursor = SegmentCursor(E1, 0)
    async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
        uploader = asyncio.create_task(late_upload())
        got = await take(items, 3)
        await uploader
        began = time.monotonic()
        gap = await anext(items)
        waited = time.monotonic() - began
        after = await take(items, 1)
    assert brief(got) == [("seg", E1, 0), ("seg", E1, 1), ("seg", E1, 2)]
    assert brief([gap, *after]) == [("missing", E1, 3), ("seg", E1, 4)]
    assert (gap.start_utc, gap.end_utc) == (at(E1 + 32), at(E1 + 42))
    assert FAST.missing_grace_s <= waited < FAST.missing_grace_s + 2.0


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_restart_finishes_old_tail_from_listing_then_new_folder(node, store):
    await node.put_segments(E1, [0, 1, 2, 5])  # 3, 4 missing; 5 never listed in the playlist
    await node.put_legacy_playlist(E1, [0, 1, 2])
    await node.put_segments(E2, [0, 1])
    await node.put_legacy_playlist(E2, [0, 1])
    await node.set_latest(E2)
    cursor = SegmentCursor(E1, 1)
    async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
        got = await take(items, 8)
    assert brief(got) == [
        ("seg", E1, 1),
        ("seg", E1, 2),
        ("missing", E1, 3),
        ("missing", E1, 4),
        ("seg", E1, 5),
        ("restart", None, None),
        ("seg", E2, 0),
        ("seg", E2, 1),
    ]
    assert (got[5].start_utc, got[5].end_utc) == (at(E1 + 62), at(E2 + 2))
    assert got[6].start_utc == at(E2 + 2)


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_restart_in_progress_waits_for_the_old_folders_last_upload(node, store):
    # the restart is happening now (the new epoch is not older than our clock), so the old
    # folder's last upload may still be in flight: the follower gives it the grace time
    new = int(time.time()) + 5
    old = new - 200
    await node.put_segments(old, [0, 1])
    await node.put_segments(new, [0])
    await node.set_latest(new)

    async def last_upload_of_old_folder() -> None:
        await asyncio.sleep(0.15)
        await node.put_segment(old, 2)

    settings = FollowerSettings(
        poll_interval_s=0.05, missing_grace_s=1.0, quiet_after_arrival_s=0.0, probe_ahead=1
    )
    cursor = SegmentCursor(old, 0)
    async with aclosing(follow_live(store, node.node, settings, cursor=cursor)) as items:
        uploader = asyncio.create_task(last_upload_of_old_folder())
        got = await take(items, 5)
        await uploader
    assert brief(got) == [
        ("seg", old, 0),
        ("seg", old, 1),
        ("seg", old, 2),
        ("restart", None, None),
        ("seg", new, 0),
    ]


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_resume_walks_every_folder_since_the_cursor(node, store):
    for epoch in (E1, E2, E3):
        await node.put_segments(epoch, [0, 1])
    await node.set_latest(E3)
    cursor = SegmentCursor(E1, 1)
    async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
        got = await take(items, 7)
    assert brief(got) == [
        ("seg", E1, 1),
        ("restart", None, None),
        ("seg", E2, 0),
        ("seg", E2, 1),
        ("restart", None, None),
        ("seg", E3, 0),
        ("seg", E3, 1),
    ]


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_start_at_reaches_back_through_the_archive(node, store):
    await node.put_segments(E1, range(6))
    await node.put_segments(E2, range(3))
    await node.set_latest(E2)
    start = at(E1 + 35)
    async with aclosing(follow_live(store, node.node, FAST, start_at=start)) as items:
        got = await take(items, 7)
    assert brief(got) == [
        ("seg", E1, 3),
        ("seg", E1, 4),
        ("seg", E1, 5),
        ("restart", None, None),
        ("seg", E2, 0),
        ("seg", E2, 1),
        ("seg", E2, 2),
    ]
    start = at(E2 + 15)
    async with aclosing(follow_live(store, node.node, FAST, start_at=start)) as items:
        assert brief(await take(items, 2)) == [("seg", E2, 1), ("seg", E2, 2)]


async def test_s3_outage_is_ridden_out(moto_server, node):
    await node.set_latest(E1)
    await node.put_segments(E1, [0, 1])
    async with (
        flaky_proxy(moto_server.endpoint_url, failures=6) as proxy,
        open_store(store_settings(proxy["url"], node.bucket, max_attempts=2)) as store,
    ):
        cursor = SegmentCursor(E1, 0)
        async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
            got = await take(items, 2)
        assert proxy["failed"] == 6
    assert brief(got) == [("seg", E1, 0), ("seg", E1, 1)]


@pytest.mark.parametrize("store_kind", STORE_KINDS)
async def test_gap_items_have_aware_utc_and_slot_refs(node, store):
    await node.set_latest(E1)
    await node.put_segments(E1, [0, 2])
    async with aclosing(follow_live(store, node.node, FAST, cursor=SegmentCursor(E1, 0))) as it:
        got = await take(it, 3)
    gap = got[1]
    assert isinstance(gap, SegmentGap) and gap.reason == "missing"
    assert gap.start_utc.utcoffset() == timedelta(0)
    assert gap.ref.key == f"{node.node}/hls/{E1}/live001.ts"
    assert cursor_after(gap) == SegmentCursor(E1, 2)


async def test_a_closed_folder_fetches_its_listed_tail_without_a_quiet_pause(node, store):
    # Slots 3 and 4 land just before the LIST that closes the superseded folder; slot 3 then
    # "arrives after a wait", whose quiet pause must not turn the listed slot 4 into a gap.
    settings = FollowerSettings(
        poll_interval_s=0.05, missing_grace_s=0.0, quiet_after_arrival_s=30.0, probe_ahead=0
    )
    await node.set_latest(E1)
    await node.put_segments(E1, range(3))
    latest_reads = 0
    waiting_from: int | None = None
    polled_while_waiting = asyncio.Event()
    tail_uploaded = False

    def count_latest(params, **_: object) -> None:
        nonlocal latest_reads
        if params.get("Key", "").endswith("latest.txt"):
            latest_reads += 1
            if waiting_from is not None and latest_reads >= waiting_from + 2:
                polled_while_waiting.set()  # a full poll of slot 3 went by

    async def upload_tail(params, **_: object) -> None:
        nonlocal tail_uploaded
        if not tail_uploaded and params.get("Prefix") == node.key(E1, ""):
            tail_uploaded = True
            await node.put_segments(E1, [3, 4])

    events = store.client.meta.events
    events.register("before-parameter-build.s3.GetObject", count_latest)
    events.register("before-parameter-build.s3.ListObjectsV2", upload_tail)
    cursor = SegmentCursor(E1, 0)
    async with aclosing(follow_live(store, node.node, settings, cursor=cursor)) as items:
        got = await take(items, 3)
        waiting_from = latest_reads
        waiting = asyncio.create_task(take(items, 3))
        async with asyncio.timeout(10.0):
            await polled_while_waiting.wait()
        await node.set_latest(E2)
        got += await waiting
    assert tail_uploaded
    assert brief(got) == [("seg", E1, n) for n in range(5)] + [("restart", None, None)]
