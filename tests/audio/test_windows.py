"""Windows on the UTC grid: alignment, promptness, gaps, provenance, and end-to-end timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.audio.chunks import AudioChunk
from monitor.audio.decode import ContinuousDecoder
from monitor.audio.ring import RingBuffer, RingBufferSettings
from monitor.audio.windows import WindowScheduler
from monitor.ingest.slots import SegmentGap, SegmentRef
from monitor.timebase import from_epoch, samples_between
from tests.support.aac import as_segments, chirp, encode_segments, locate, noise, place

RATE = 1000
T0 = datetime(2024, 6, 7, 12, 0, 2, 300000, tzinfo=UTC)  # deliberately off the grid


def ref(number: int) -> SegmentRef:
    return SegmentRef("bucket", f"feed/hls/1717761600/live{number:03d}.ts", 1717761600, number)


def feed_chunks(sizes_s: list[float], start: datetime = T0) -> list[AudioChunk]:
    """Consecutive chunks of a ramp signal (value = sample index since ``start``)."""
    chunks, at = [], 0
    for number, size in enumerate(sizes_s):
        n = round(size * RATE)
        chunks.append(
            AudioChunk(
                "feed",
                start + timedelta(seconds=at / RATE),
                RATE,
                np.arange(at, at + n, dtype=np.float32).reshape(1, -1),
                ref(number),
            )
        )
        at += n
    return chunks


def run(chunks: list[AudioChunk], length_s: float = 2.0, hop_s: float = 0.5):
    ring = RingBuffer("feed", RingBufferSettings(capacity_s=30, sample_rate=RATE))
    scheduler = WindowScheduler(length_s, hop_s)
    windows = []
    for chunk in chunks:
        ring.write(chunk)
        windows.extend(scheduler.ready(ring))
    return windows, scheduler, ring


def test_windows_sit_on_the_utc_grid_whatever_the_chunking() -> None:
    live, _, _ = run(feed_chunks([10.0, 10.0]))
    replay, _, _ = run(feed_chunks([3.7, 1.1, 9.9, 5.3]))
    assert [w.start_utc for w in live] == [w.start_utc for w in replay]
    for a, b in zip(live, replay, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
    assert live[0].start_utc == datetime(2024, 6, 7, 12, 0, 2, 500000, tzinfo=UTC)
    epoch = from_epoch(0)
    for window in live:
        assert samples_between(epoch, window.start_utc, RATE) % 500 == 0
        assert window.samples.shape == (2000,) and window.hop_s == 0.5
    # Window k holds the ramp from its own start: samples are where the clock says.
    first = live[0]
    np.testing.assert_array_equal(first.samples, np.arange(200, 2200, dtype=np.float32))
    assert live[-1].end_utc <= T0 + timedelta(seconds=20)


def test_windows_come_out_as_soon_as_their_audio_is_in() -> None:
    ring = RingBuffer("feed", RingBufferSettings(capacity_s=30, sample_rate=RATE))
    scheduler = WindowScheduler(2.0, 0.5)
    chunks = feed_chunks([2.1, 0.5, 0.1])
    ring.write(chunks[0])  # audio to 12:00:04.400: the window from 02.5 needs 04.5
    assert scheduler.ready(ring) == []
    ring.write(chunks[1])  # to 04.900: windows from 02.5 (end 04.5) only
    assert [w.end_utc for w in scheduler.ready(ring)] == [T0 + timedelta(seconds=2.2)]
    ring.write(chunks[2])  # to 05.000: the window from 03.0 ends exactly there
    assert [w.start_utc for w in scheduler.ready(ring)] == [T0 + timedelta(seconds=0.7)]
    assert scheduler.ready(ring) == []
    assert scheduler.emitted == 2


def test_windows_overlapping_a_gap_are_skipped_and_counted() -> None:
    before = feed_chunks([5.0])
    after = feed_chunks([6.0], start=T0 + timedelta(seconds=8.0))
    after = [
        AudioChunk(c.feed, c.start_utc, c.sample_rate, c.samples, ref(8), gap_before=True)
        for c in after
    ]
    ring = RingBuffer("feed", RingBufferSettings(capacity_s=30, sample_rate=RATE))
    scheduler = WindowScheduler(2.0, 0.5)
    windows = []
    ring.write(before[0])
    windows += scheduler.ready(ring)
    ring.mark_gap(
        SegmentGap("feed", ref(5), T0 + timedelta(seconds=5), T0 + timedelta(seconds=8), "missing")
    )
    ring.write(after[0])
    windows += scheduler.ready(ring)
    gap_start, gap_end = T0 + timedelta(seconds=5), T0 + timedelta(seconds=8)
    assert all(w.end_utc <= gap_start or w.start_utc >= gap_end for w in windows)
    # Audio 02.3-07.3 and 10.3-16.3: starts 02.5 … 05.0 and 10.5 … 14.0 fit (6 + 8);
    # starts 05.5 … 10.0 overlap the gap (10).
    assert scheduler.skipped_gap == 10
    assert scheduler.emitted == len(windows) == 14
    assert [w.start_utc for w in windows][5:7] == [
        datetime(2024, 6, 7, 12, 0, 5, tzinfo=UTC),
        datetime(2024, 6, 7, 12, 0, 10, 500000, tzinfo=UTC),
    ]
    assert ring.gaps[0].reason == "missing"


def test_a_consumer_that_falls_behind_skips_overwritten_windows() -> None:
    ring = RingBuffer("feed", RingBufferSettings(capacity_s=5, sample_rate=RATE))
    scheduler = WindowScheduler(2.0, 1.0)
    chunks = feed_chunks([1.0] * 12)
    ring.write(chunks[0])
    assert scheduler.ready(ring) == []  # the grid's next start is 12:00:03
    for c in chunks[1:]:
        ring.write(c)
    windows = scheduler.ready(ring)
    # The buffer now holds 09.3-14.3: starts 03 … 09 were overwritten before they were cut.
    assert scheduler.skipped_overrun == 7
    assert [w.start_utc.second for w in windows] == [10, 11, 12]
    assert ring.dropped_samples > 0


def test_windows_across_segment_boundaries_carry_their_sources() -> None:
    windows, _, _ = run(feed_chunks([10.0, 10.0]))
    across = next(w for w in windows if len(w.sources) == 2)
    first, second = across.sources
    assert (first.ref.number, second.ref.number) == (0, 1)
    assert (
        first.offset_s == pytest.approx((across.start_utc - T0).total_seconds())
        and second.offset_s == 0.0
    )
    assert first.duration_s + second.duration_s == pytest.approx(across.duration_s)


def test_bad_window_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="> 0"):
        WindowScheduler(0, 1)
    ring = RingBuffer("feed", RingBufferSettings(capacity_s=30, sample_rate=RATE))
    ring.write(feed_chunks([1.0])[0])
    with pytest.raises(ValueError, match="whole number of samples"):
        WindowScheduler(1.0, 0.0005).ready(ring)


def test_a_tone_at_a_known_utc_time_is_found_there_after_decode_buffer_and_window() -> None:
    """Real AAC: encode → MPEG-TS segments → continuous decoder → ring buffer → windows."""
    rate = 48000
    signal = noise(31, rate, level=0.02, seed=7)
    burst = chirp()
    at_sample = 745_321  # in segment 1, 15.53 s after the stream's time zero
    place(signal, burst, at_sample)
    segments = as_segments(encode_segments(signal))
    truth = segments[0].start_utc + timedelta(seconds=at_sample / rate)
    decoder = ContinuousDecoder()
    ring = RingBuffer(segments[0].feed, RingBufferSettings(capacity_s=60, sample_rate=rate))
    scheduler = WindowScheduler(length_s=1.0, hop_s=0.25)
    windows = []
    for segment in segments:
        for chunk in decoder.feed(segment):
            assert isinstance(chunk, AudioChunk)
            ring.write(chunk)
            windows.extend(scheduler.ready(ring))
    containing = [
        w for w in windows if w.start_utc <= truth and truth + timedelta(seconds=0.2) <= w.end_utc
    ]
    assert len(containing) == 4  # starts 16.75, 17.00, 17.25, 17.50 (the chirp: 17.527-17.727)
    for window in containing:
        found = window.start_utc + timedelta(seconds=locate(window.samples, burst) / rate)
        assert abs((found - truth).total_seconds()) * rate <= 2
        assert window.sources[0].ref.number == 1
