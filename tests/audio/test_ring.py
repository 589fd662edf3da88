"""The UTC-indexed ring buffer: exact reads, overwrite counting, the gap map, overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.audio.chunks import AudioChunk
from monitor.audio.ring import AudioUnavailable, RingBuffer, RingBufferSettings
from monitor.ingest.slots import SegmentGap, SegmentRef

RATE = 1000
T0 = datetime(2024, 6, 7, 12, 0, 2, tzinfo=UTC)


def ref(number: int) -> SegmentRef:
    return SegmentRef("bucket", f"feed/hls/1717761600/live{number:03d}.ts", 1717761600, number)


def chunk(
    start_s: float,
    values: np.ndarray,
    number: int = 0,
    gap_before: bool = False,
    offset_s: float = 0.0,
) -> AudioChunk:
    return AudioChunk(
        feed="feed",
        start_utc=T0 + timedelta(seconds=start_s),
        sample_rate=RATE,
        samples=values.astype(np.float32).reshape(1, -1),
        source=ref(number),
        gap_before=gap_before,
        source_offset_s=offset_s,
    )


def ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)


def buffer(capacity_s: float = 5.0) -> RingBuffer:
    return RingBuffer("feed", RingBufferSettings(capacity_s=capacity_s, sample_rate=RATE))


def test_reads_by_utc_across_chunks_and_the_wrap() -> None:
    ring = buffer(capacity_s=3.0)
    for i in range(5):  # 5 s into a 3 s buffer: the storage wraps
        ring.write(chunk(i, ramp(i * RATE, RATE), number=i))
    assert ring.time_of(ring.start) == T0 + timedelta(seconds=2)
    assert ring.time_of(ring.end) == T0 + timedelta(seconds=5)
    read = ring.read(T0 + timedelta(seconds=2.5), T0 + timedelta(seconds=4.25))
    np.testing.assert_array_equal(read.samples, ramp(2500, 1750))
    assert not read.contains_gap
    assert [(s.ref.number, s.offset_s, s.duration_s) for s in read.sources] == [
        (2, 0.5, 0.5),
        (3, 0.0, 1.0),
        (4, 0.0, 0.25),
    ]


def test_overwrite_counts_unreleased_samples_only() -> None:
    ring = buffer(capacity_s=2.0)
    for i in range(5):
        ring.write(chunk(i, ramp(0, RATE)))
    assert ring.dropped_samples == 3 * RATE  # nobody consumed anything
    with pytest.raises(AudioUnavailable, match="not in the buffer"):
        ring.read(T0, T0 + timedelta(seconds=1))

    consumed = buffer(capacity_s=2.0)
    for i in range(5):
        consumed.write(chunk(i, ramp(0, RATE)))
        consumed.release(consumed.end)
    assert consumed.dropped_samples == 0

    behind = buffer(capacity_s=2.0)
    behind.write(chunk(0, ramp(0, RATE)))
    behind.release(behind.index_of(T0) + 600)
    behind.write(chunk(1, ramp(0, 2 * RATE)))  # pushes out the first second
    assert behind.dropped_samples == 400


def test_holes_are_not_counted_as_overrun() -> None:
    # A consumer that keeps up (released to the write head) loses nothing to a long hole, nor
    # when the zero-filled hole is later pushed out by new audio.
    ring = buffer(capacity_s=2.0)
    ring.write(chunk(0, ramp(0, RATE)))
    ring.release(ring.end - 300)  # the tail of a window still waiting for audio
    ring.write(chunk(10, ramp(0, RATE), gap_before=True))  # 9 s hole, longer than the buffer
    assert [(g.start_utc, g.end_utc) for g in ring.gaps] == [
        (T0 + timedelta(seconds=1), T0 + timedelta(seconds=10))
    ]
    ring.write(chunk(11, ramp(0, RATE)))  # pushes the zero-filled part out
    assert ring.dropped_samples == 0 and ring.gaps == []

    # The same when the hole is shorter than the buffer but the chunk after it is not.
    medium = buffer(capacity_s=2.0)
    medium.write(chunk(0, ramp(0, RATE)))
    medium.release(medium.end - 300)
    medium.write(chunk(2.5, ramp(0, RATE), gap_before=True))  # pushes out [0, 1.5 s)
    assert medium.dropped_samples == 0 and len(medium.gaps) == 1

    short = buffer(capacity_s=2.0)
    short.write(chunk(0, ramp(0, RATE)))
    short.release(short.end)
    short.write(chunk(1.5, ramp(0, RATE), gap_before=True))  # 0.5 s hole, never released
    short.write(chunk(2.5, ramp(0, 1500)))  # pushes out the hole and 0.5 s of audio
    assert short.dropped_samples == RATE // 2


def test_a_chunk_longer_than_the_buffer_keeps_its_newest_samples() -> None:
    ring = buffer(capacity_s=1.0)
    ring.write(chunk(0, ramp(0, 2500)))
    assert ring.dropped_samples == 1500
    np.testing.assert_array_equal(ring.read_index(ring.start, ring.end).samples, ramp(1500, 1000))


def test_gap_map_records_the_reason_and_zero_fills() -> None:
    ring = buffer()
    ring.write(chunk(0, np.ones(RATE)))
    gap = SegmentGap(
        "feed", ref(1), T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), "missing"
    )
    ring.mark_gap(gap)
    ring.write(chunk(2.021, np.ones(RATE), number=2, gap_before=True, offset_s=0.021))
    [record] = ring.gaps
    assert record.reason == "missing"
    assert (record.start_utc, record.end_utc) == (
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=2.021),
    )
    read = ring.read(T0 + timedelta(seconds=0.5), T0 + timedelta(seconds=2.5))
    assert read.contains_gap and read.gaps == (record,)
    np.testing.assert_array_equal(read.samples[500:1521], 0)
    assert read.samples[:500].min() == 1 and read.samples[1521:].min() == 1
    assert read.sources[-1].offset_s == pytest.approx(0.021)
    assert not ring.read(T0 + timedelta(seconds=2.1), T0 + timedelta(seconds=3)).contains_gap

    # A jump with no gap notice is still a gap, and says so.
    ring.write(chunk(3.5, np.ones(10), gap_before=True))
    assert ring.gaps[-1].reason == "discontinuity"


def test_gap_records_leave_with_the_audio() -> None:
    ring = buffer(capacity_s=2.0)
    ring.write(chunk(0, np.ones(RATE)))
    ring.write(chunk(1.5, np.ones(RATE), gap_before=True))
    assert len(ring.gaps) == 1
    ring.write(chunk(2.5, np.ones(2 * RATE)))
    assert ring.gaps == []


def test_small_misalignments_are_deterministic() -> None:
    ring = buffer()
    ring.write(chunk(0, ramp(0, RATE)))
    # One sample late (rounding): continues exactly, no gap.
    ring.write(chunk(1.001, ramp(1000, RATE)))
    assert ring.gaps == [] and ring.time_of(ring.end) == T0 + timedelta(seconds=2)
    # A new run anchored 10 samples before the head: its head is dropped, old audio stays.
    ring.write(chunk(1.990, np.full(RATE, -1.0), gap_before=True))
    assert ring.overlap_samples == 10
    read = ring.read(T0 + timedelta(seconds=1.98), T0 + timedelta(seconds=2.01))
    np.testing.assert_array_equal(read.samples[:20], ramp(1980, 20))
    np.testing.assert_array_equal(read.samples[20:], -1.0)
    # Entirely in the past: dropped whole.
    ring.write(chunk(0.5, np.full(100, 777.5), gap_before=True))
    assert (
        ring.overlap_samples == 110 and 777.5 not in ring.read_index(ring.start, ring.end).samples
    )


def test_bad_input_is_refused_clearly() -> None:
    ring = buffer()
    with pytest.raises(AudioUnavailable, match="empty"):
        _ = ring.start
    with pytest.raises(ValueError, match="Hz"):
        ring.write(AudioChunk("feed", T0, 48000, np.zeros((1, 10), np.float32), ref(0)))
    with pytest.raises(ValueError, match="mono"):
        ring.write(AudioChunk("feed", T0, RATE, np.zeros((2, 10), np.float32), ref(0)))
    ring.write(chunk(0, np.ones(10)))
    with pytest.raises(ValueError, match="naive"):
        ring.read(datetime(2024, 6, 7, 12), T0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(AudioUnavailable):
        ring.read(T0, T0 + timedelta(seconds=1))  # not written yet
    with pytest.raises(ValueError, match="capacity"):
        RingBufferSettings(capacity_s=0)
