"""Live, end to end over the real protocol: a node in the moto S3 server uploads PyAV-encoded
AAC/MPEG-TS segments (chirps at known UTC times) while the follower runs, restarts into a new
folder whose playlist has PROGRAM-DATE-TIME, and the audio goes through the continuous decoder
(worker thread), the ring buffer and the window scheduler. Every chirp is found at its UTC time
to within two samples, in both folders, and no window spans the restart."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import aclosing
from datetime import datetime, timedelta

import numpy as np

from monitor.audio.chunks import AudioChunk, Window
from monitor.audio.decode import decode_stream
from monitor.audio.ring import RingBuffer, RingBufferSettings
from monitor.audio.windows import WindowScheduler
from monitor.ingest.live import FollowerSettings, SegmentCursor, follow_live
from monitor.timebase import from_epoch
from tests.support.aac import chirp, encode_segments, locate, noise, place

RATE = 48000
E1 = 1717761600  # 2024-06-07T12:00:00Z
E2 = E1 + 100  # the node restarts 100 s later
PDT_OFFSET = 2.5  # the new folder's PROGRAM-DATE-TIME says its audio began 2.5 s after E2
FAST = FollowerSettings(
    poll_interval_s=0.05, missing_grace_s=0.3, quiet_after_arrival_s=0.0, probe_ahead=1
)
BURST = chirp()


def signal_with_chirps(seconds: float, at_s: list[float], seed: int) -> np.ndarray:
    signal = noise(seconds, RATE, level=0.02, seed=seed)
    for at in at_s:
        place(signal, BURST, round(at * RATE))
    return signal


def found_at(windows: list[Window], truth: datetime) -> list[float]:
    """Error (samples) of the chirp's position in every window that holds all of it."""
    span = timedelta(seconds=BURST.shape[0] / RATE)
    errors = []
    for window in windows:
        if window.start_utc <= truth and truth + span <= window.end_utc:
            found = window.start_utc + timedelta(seconds=locate(window.samples, BURST) / RATE)
            errors.append((found - truth).total_seconds() * RATE)
    return errors


async def test_live_follow_decode_buffer_window_across_a_restart(node, store):
    first = encode_segments(signal_with_chirps(25, [5.0, 14.3], seed=1))  # 3 segments
    second = encode_segments(signal_with_chirps(25, [7.7, 21.0], seed=2))
    assert len(first) == len(second) == 3
    pdt = {n: from_epoch(E2 + PDT_OFFSET + 10 * n) for n in range(3)}

    await node.put(node.key(E1, "live000.ts"), first[0])
    await node.put_legacy_playlist(E1, [0])
    await node.set_latest(E1)

    async def node_runs() -> None:
        await asyncio.sleep(0.2)
        await node.put(node.key(E1, "live001.ts"), first[1])
        await node.put_legacy_playlist(E1, [0, 1])
        await asyncio.sleep(0.2)
        await node.put(node.key(E1, "live002.ts"), first[2])  # never listed: shut down
        await asyncio.sleep(0.2)
        for number in (0, 1):
            await node.put(node.key(E2, f"live{number:03d}.ts"), second[number])
        await node.put_pdt_playlist(E2, [0, 1], pdt)
        await node.set_latest(E2)
        await asyncio.sleep(0.2)
        await node.put(node.key(E2, "live002.ts"), second[2])  # late, not yet listed

    ring = RingBuffer(node.node, RingBufferSettings(capacity_s=60.0, sample_rate=RATE))
    scheduler = WindowScheduler(length_s=1.0, hop_s=0.5)
    windows: list[Window] = []
    done = ring.index_of(pdt[2] + timedelta(seconds=4.0))
    follower = follow_live(store, node.node, FAST, cursor=SegmentCursor(E1, 0))
    uploader = asyncio.create_task(node_runs())
    async with (
        asyncio.timeout(20.0),
        aclosing(follower) as segments,
        aclosing(decode_stream(segments)) as decoded,
    ):
        async for item in decoded:
            if isinstance(item, AudioChunk):
                ring.write(item)
                windows.extend(scheduler.ready(ring))
                if ring.end >= done:
                    break
            else:
                ring.mark_gap(item)
    await uploader

    truths = [
        from_epoch(E1 + 2.0 + 5.0),  # folder 1, segment 0 (number rule)
        from_epoch(E1 + 2.0 + 14.3),  # folder 1, segment 1: same decoder run
        pdt[0] + timedelta(seconds=7.7),  # folder 2, segment 0 (PDT)
        pdt[0] + timedelta(seconds=21.0),  # folder 2, segment 2 uploaded late
    ]
    for truth in truths:
        errors = found_at(windows, truth)
        assert errors, f"no window holds the chirp at {truth}"
        assert max(abs(e) for e in errors) <= 2, (truth, errors)

    [restart] = ring.gaps
    assert restart.reason == "restart"
    assert restart.end_utc == pdt[0]  # the new folder's first sample
    assert from_epoch(E1 + 22) < restart.start_utc < from_epoch(E1 + 32)  # folder 1's last audio
    assert not any(w.start_utc < restart.end_utc and w.end_utc > restart.start_utc for w in windows)
    assert scheduler.skipped_gap > 0
    # Windows are on the 0.5 s grid and contiguous up to the restart and after it.
    starts = [w.start_utc for w in windows]
    assert all(s.microsecond % 500_000 == 0 for s in starts)
    jumps = [b for a, b in itertools.pairwise(starts) if b - a != timedelta(seconds=0.5)]
    assert jumps == [min(s for s in starts if s >= restart.end_utc)]  # over the restart only
    assert ring.dropped_samples == 0
