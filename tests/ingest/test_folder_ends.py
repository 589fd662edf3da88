"""Gap records at the end of a folder say what happened: no gap runs past the next folder's
first audio, and the restart gap covers the time that really has no audio (from the old
folder's last decoded sample), live and in the archive."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from monitor.audio.chunks import AudioChunk
from monitor.audio.decode import decode_stream
from monitor.ingest.archive import read_archive
from monitor.ingest.live import SegmentCursor, follow_live
from monitor.ingest.playlist import segment_name
from monitor.ingest.slots import Segment, SegmentGap
from monitor.timebase import after_samples, from_epoch
from tests.ingest.test_live import FAST, brief
from tests.support.aac import encode_segments, noise

E1 = 1717761600
E2 = E1 + 25  # the node restarted 5 s into segment 2's slot [E1 + 22, E1 + 32)


def at(epoch: float):
    return from_epoch(epoch)


def spans(items: list) -> list[tuple]:
    return [(i.reason, i.start_utc, i.end_utc) for i in items if isinstance(i, SegmentGap)]


def assert_folder_end_is_told_right(got: list) -> None:
    assert brief(got) == [
        ("seg", E1, 0),
        ("seg", E1, 1),
        ("empty", E1, 2),
        ("restart", None, None),
        ("seg", E2, 0),
    ]
    assert spans(got) == [
        ("empty", at(E1 + 22), at(E2 + 2)),
        ("restart", at(E1 + 22), at(E2 + 2)),
    ]


async def empty_last_segment(node) -> None:
    await node.put_segments(E1, [0, 1])
    await node.put_segment(E1, 2, empty=True)
    await node.put_segments(E2, [0, 1])
    await node.set_latest(E2)


async def test_live_an_empty_last_segment_ends_at_the_next_folder_and_a_restart_follows(
    node, store
):
    await empty_last_segment(node)
    cursor = SegmentCursor(E1, 0)
    async with aclosing(follow_live(store, node.node, FAST, cursor=cursor)) as items:
        async with asyncio.timeout(10):
            got = [await anext(items) for _ in range(5)]
    assert_folder_end_is_told_right(got)


async def test_archive_an_empty_last_segment_ends_at_the_next_folder_and_a_restart_follows(
    node, store
):
    await empty_last_segment(node)
    async with aclosing(read_archive(store, node.node, at(E1 + 2), at(E2 + 12))) as items:
        got = [item async for item in items]
    assert_folder_end_is_told_right(got)


async def test_a_one_packet_last_segment_leaves_a_restart_gap_over_the_missing_time(node, store):
    # 20 s of audio and one more AAC frame: segment 2 is one packet, 940 bytes, as in the probe
    datas = encode_segments(noise(21, level=0.05, seed=2)[:, : 960_000 + 76])
    assert [len(d) > 100_000 for d in datas] == [True, True, False] and len(datas[2]) == 940
    later = E1 + 40  # the next folder's audio starts at E1 + 42
    for number, data in enumerate(datas):
        await node.put(node.key(E1, segment_name(number)), data)
    await node.put_segments(later, [0])
    await node.set_latest(later)

    async def decoded(source) -> list:
        async with aclosing(decode_stream(source)) as items:
            return [item async for item in items]

    live = follow_live(store, node.node, FAST, cursor=SegmentCursor(E1, 0))
    async with asyncio.timeout(20):
        got: list = []
        async with aclosing(decode_stream(live)) as items:
            async for item in items:
                got.append(item)
                if isinstance(item, AudioChunk) and item.source.folder_epoch == later:
                    break
    archived = await decoded(read_archive(store, node.node, at(E1 + 2), at(later + 12)))
    for items in (got, archived):
        chunks = [i for i in items if isinstance(i, AudioChunk)]
        last_old = [c for c in chunks if c.source.folder_epoch == E1][-1]
        assert last_old.source.number == 2  # the one packet continued the run: 1024 samples
        audio_end = after_samples(last_old.start_utc, last_old.frames, last_old.sample_rate)
        assert abs((audio_end - at(E1 + 22)).total_seconds()) < 0.05
        [restart] = [i for i in items if isinstance(i, SegmentGap)]
        assert (restart.reason, restart.start_utc, restart.end_utc) == (
            "restart",
            audio_end,
            at(later + 2),
        )
        assert not any(isinstance(i, Segment) for i in items)
