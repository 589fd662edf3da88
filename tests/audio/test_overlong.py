"""A valid AAC segment holding far more audio than its 10 s slot (minutes under one slot) is cut
at its slot's end and counted: the feed's clock never runs into the future, and the next real
segments land on their own slots."""

from __future__ import annotations

import pytest

from monitor.audio.chunks import AudioChunk
from monitor.audio.decode import ContinuousDecoder, DecoderSettings
from monitor.audio.ring import RingBuffer
from monitor.timebase import samples_between
from tests.support.aac import as_segments, encode_segments, noise

RATE = 48000


def test_an_overlong_segment_is_cut_at_its_slot_and_the_next_ones_are_on_time() -> None:
    # segment 0 of a folder holding 90 s of audio, then the folder's real segments 1 and 2
    huge, *_ = encode_segments(noise(90, level=0.05, seed=7), segment_seconds=90)
    normal = encode_segments(noise(30, level=0.05, seed=8), first_number=1)[:2]
    segments = as_segments([huge], first_number=0) + as_segments(normal, first_number=1)
    decoder = ContinuousDecoder()
    out = decoder.feed_all(segments)
    assert all(isinstance(o, AudioChunk) for o in out) and len(out) == 3
    first, *rest = out
    # the slot's 10 s, no more (the dropped priming frame and the lead are inside the slot)
    assert samples_between(first.start_utc, segments[0].end_utc, RATE) == first.frames
    assert decoder.overlong == 1
    for chunk, segment in zip(rest, segments[1:], strict=True):
        assert abs((chunk.start_utc - segment.start_utc).total_seconds()) < 0.05
    assert rest[0].gap_before is True  # the cut ended the run
    ring = RingBuffer("rpi_test")
    for chunk in out:
        ring.write(chunk)
    assert ring.overlap_samples == 0  # nothing of the real segments was thrown away
    assert (
        ring.time_of(ring.end)
        < segments[2].end_utc + (segments[2].end_utc - segments[2].start_utc) / 100
    )


def test_a_little_overrun_is_kept_and_the_limit_is_a_setting() -> None:
    long, *_ = encode_segments(noise(14, level=0.05, seed=7), segment_seconds=14)
    [segment] = as_segments([long])
    [kept] = ContinuousDecoder().feed(segment)
    assert kept.frames > 13 * RATE  # 4 s past the slot: within the default 10 s
    strict = ContinuousDecoder(DecoderSettings(max_overrun_s=1.0))
    [cut] = strict.feed(segment)
    assert strict.overlong == 1 and cut.frames == 10 * RATE
    with pytest.raises(ValueError, match="max_overrun_s"):
        DecoderSettings(max_overrun_s=0)
