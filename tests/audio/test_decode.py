"""The continuous decoder on real Orcasound segments and on real AAC made by tests/support/aac."""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
import pytest

from monitor.audio.chunks import AudioChunk
from monitor.audio.decode import (
    PTS_WRAP_S,
    ContinuousDecoder,
    DecoderSettings,
    decode_stream,
    pts_difference,
)
from monitor.ingest.slots import Segment, SegmentGap
from monitor.timebase import samples_between
from tests.support.aac import (
    as_segments,
    chirp,
    encode_segments,
    locate,
    noise,
    place,
    segment_first_samples,
)

RATE = 48000
FRAME = 1024
FIRST_CHIRP = 250_000  # in segment 0
SECOND_CHIRP = 700_000  # in segment 1


def real_segment(path: Path, number: int | None = None) -> Segment:
    number = int(path.stem.removeprefix("live")) if number is None else number
    return as_segments([path.read_bytes()], feed="rpi_real", first_number=number)[0]


def aac_packets(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for p in container.demux(audio=0) if p.size)


def first_pts_s(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        first = next(p for p in container.demux(audio=0) if p.size)
        return float(first.pts * first.time_base)


def at_samples(count: int) -> timedelta:
    return timedelta(microseconds=(count * 1_000_000 + RATE // 2) // RATE)


def plain_decode(data: bytes) -> np.ndarray:
    """Reference: PyAV's own decode of a whole byte string, channels kept."""
    with av.open(io.BytesIO(data)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, list[bytes]]:
    signal = noise(32, level=0.05, seed=1)
    place(signal, chirp(), FIRST_CHIRP)
    place(signal, chirp(), SECOND_CHIRP)
    return signal, encode_segments(signal)


def test_real_segments_decode_mono_and_stereo(hls_samples: Path) -> None:
    paths = sorted(hls_samples.glob("*/*.ts"))
    assert len(paths) == 12
    channels_seen = set()
    for path in paths:
        segment = real_segment(path)
        [chunk] = ContinuousDecoder().feed(segment)
        assert isinstance(chunk, AudioChunk)
        frames = aac_packets(segment.data)
        assert frames in (468, 469)
        # A fresh decoder's first frame is dropped (mid-stream: an incomplete overlap-add).
        assert chunk.frames == (frames - 1) * FRAME
        assert chunk.samples.shape == (1, chunk.frames)
        assert chunk.samples.dtype == np.float32
        assert chunk.sample_rate == RATE
        # The segment's first packet is 0..1 frame after the priming grid (the real nodes' PTS
        # are 1.4 s + 10 N + that), which runs one frame before the slots: the packet starts at
        # slot + lead - 1 frame, and the dropped frame puts the chunk at slot + lead.
        lead = round((first_pts_s(segment.data) - 1.4 - 10 * segment.ref.number) * RATE)
        assert 0 <= lead < FRAME
        assert chunk.start_utc == segment.start_utc + at_samples(lead)
        assert chunk.source_offset_s == FRAME / RATE
        assert chunk.gap_before is True
        assert chunk.source == segment.ref
        channels_seen.add(len(chunk.channel_rms))
        assert np.isfinite(chunk.samples).all() and 0 < np.abs(chunk.samples).max() <= 1.5
    assert channels_seen == {1, 2}


def test_segment_zero_drops_the_priming_and_starts_at_its_nominal_time(synthetic) -> None:
    _, datas = synthetic
    segments = as_segments(datas)
    chunk = ContinuousDecoder().feed(segments[0])[0]
    assert aac_packets(datas[0]) == 469  # priming + 468 frames
    assert chunk.frames == 468 * FRAME
    assert chunk.start_utc == segments[0].start_utc
    # Sample i of the chunk is input sample i: the priming frame is gone, nothing else.
    assert locate(chunk.samples[0], chirp()) == FIRST_CHIRP


def test_one_decoder_over_segments_equals_a_continuous_decode(synthetic) -> None:
    _, datas = synthetic
    decoder = ContinuousDecoder()
    chunks = [c for s in as_segments(datas) for c in decoder.feed(s)]
    assert [c.gap_before for c in chunks] == [True, False, False, False]
    assert decoder.runs_started == 1
    joined = np.concatenate([c.samples[0] for c in chunks])
    reference = plain_decode(b"".join(datas))[0, FRAME:]
    assert joined.shape == reference.shape
    np.testing.assert_allclose(joined, reference, atol=1e-6)
    # Each chunk starts where the previous one ended, to the sample.
    origin = chunks[0].start_utc
    for index, chunk in enumerate(chunks):
        before = sum(c.frames for c in chunks[:index])
        assert samples_between(origin, chunk.start_utc, RATE) == before


def test_fresh_decoder_per_segment_glitches_at_the_boundary(synthetic) -> None:
    _, datas = synthetic
    continuous = [c.samples[0] for c in ContinuousDecoder().feed_all(as_segments(datas))]
    # PyAV decoding segment 2 on its own: the frame at its start is wrong, later ones are right.
    fresh = plain_decode(datas[2])[0]
    ours = continuous[2]
    first_frame_error = np.abs(fresh[:FRAME] - ours[:FRAME]).max()
    later_error = np.abs(fresh[2 * FRAME :] - ours[2 * FRAME :]).max()
    assert first_frame_error > 0.01
    assert later_error < 1e-5


def test_chirp_timing_in_a_run_started_mid_stream_is_exact(synthetic) -> None:
    signal, datas = synthetic
    segments = as_segments(datas)
    truth = segments[0].start_utc + timedelta(seconds=SECOND_CHIRP / RATE)
    # Segment 1's first frame begins before its nominal start by up to one frame.
    offset = segment_first_samples(signal.shape[1])[1] - 480_000
    assert -FRAME <= offset < 0

    def error(settings: DecoderSettings) -> float:
        chunks = ContinuousDecoder(settings).feed_all(segments[1:])
        audio = np.concatenate([c.samples[0] for c in chunks])
        found = chunks[0].start_utc + timedelta(seconds=locate(audio, chirp()) / RATE)
        return (found - truth).total_seconds() * RATE

    # From the MPEG-TS timestamps: to the sample.
    assert abs(error(DecoderSettings())) <= 1
    # A run started at segment 2 has the timeline of a run from segment 0 (live = replay).
    late = ContinuousDecoder().feed_all(segments[2:])[0]
    whole = ContinuousDecoder().feed_all(segments)[2]
    assert samples_between(whole.start_utc, late.start_utc, RATE) == FRAME
    # Without them, the first packet is taken to start a frame before the slot: early by less
    # than one frame.
    assert abs(error(DecoderSettings(ts_origin_s=None)) + offset + FRAME) <= 1


def test_a_run_goes_on_across_the_33_bit_timestamp_wrap() -> None:
    # Segments 9536.. of a folder: 10 N + 1.4 s passes 2^33 / 90 kHz (~26.5 h) in segment 9544.
    # FFmpeg reads segment 9539 on its own with negative timestamps, 9538 with positive ones.
    signal = noise(40, level=0.05, seed=9)
    datas = encode_segments(signal, first_number=9536)
    segments = as_segments(datas, first_number=9536)
    assert first_pts_s(datas[2]) > 95_000 and first_pts_s(datas[3]) < 0
    decoder = ContinuousDecoder()
    chunks = decoder.feed_all(segments[1:4])
    assert decoder.runs_started == 1 and [c.gap_before for c in chunks] == [True, False, False]
    for before, after in itertools.pairwise(chunks):
        assert samples_between(before.start_utc, after.start_utc, RATE) == before.frames
    # Runs are placed from the (wrapped) timestamps, to the sample, on either side.
    starts = segment_first_samples(signal.shape[1])
    lead = starts[1] - 480_000
    assert chunks[0].start_utc == segments[1].start_utc + at_samples(lead + FRAME)
    [late] = ContinuousDecoder().feed(segments[3])
    lead = starts[3] - 3 * 480_000
    assert -FRAME <= lead < 0
    assert late.start_utc == segments[3].start_utc + at_samples(lead + FRAME)
    assert pts_difference(1.0, PTS_WRAP_S - 1.0) == pytest.approx(2.0)
    assert pts_difference(PTS_WRAP_S - 1.0, 1.0) == pytest.approx(-2.0)


def test_timestamps_off_the_grid_fall_back_to_the_slot_start(synthetic) -> None:
    _, datas = synthetic
    segments = as_segments(datas)
    # Told the origin is 0.5 s off, the decoder does not trust the PTS for timing: the first
    # packet is taken to start one frame (the priming grid) before the slot, and is dropped.
    [chunk] = ContinuousDecoder(DecoderSettings(ts_origin_s=0.9)).feed(segments[1])
    assert chunk.start_utc == segments[1].start_utc
    # PROGRAM-DATE-TIME timing is used as given (the stamp counts from the priming packet).
    pdt = replace(segments[1], timing_source="program-date-time")
    assert ContinuousDecoder().feed(pdt)[0].start_utc == pdt.start_utc


def test_dead_channel_does_not_halve_the_level() -> None:
    live = noise(10.5, level=0.1, seed=3)[0]
    stereo = np.stack([live, noise(10.5, level=0.0005, seed=4)[0]])  # right: 46 dB down
    [segment, *_] = as_segments(encode_segments(stereo))
    by_policy = {
        policy: ContinuousDecoder(DecoderSettings(channel_policy=policy)).feed(segment)[0]
        for policy in ("auto", "mix", 0, 1)
    }
    rms = {
        k: float(np.sqrt(np.mean(c.samples[0].astype(np.float64) ** 2)))
        for k, c in by_policy.items()
    }
    left, right = by_policy["auto"].channel_rms
    assert right < left / 100
    assert rms["auto"] == pytest.approx(rms[0], rel=1e-6)
    assert rms["mix"] == pytest.approx(rms[0] / 2, rel=0.05)
    assert rms[1] < 0.002


def test_real_stereo_segments_with_and_without_a_dead_channel(hls_samples: Path) -> None:
    dead = ContinuousDecoder().feed(real_segment(hls_samples / "normal/live2008.ts"))[0]
    quiet, loud = dead.channel_rms
    assert quiet < loud / 10  # channel 0 of this node carries only its noise floor
    out = float(np.sqrt(np.mean(dead.samples[0].astype(np.float64) ** 2)))
    assert out == pytest.approx(loud, rel=0.02)
    both = ContinuousDecoder().feed(real_segment(hls_samples / "normal/live3368.ts"))[0]
    stereo = plain_decode((hls_samples / "normal/live3368.ts").read_bytes())[:, FRAME:]
    np.testing.assert_allclose(both.samples[0], stereo.mean(axis=0), atol=1e-6)
    # Every decoded channel stays on the chunk for the health checks (any channel up → up).
    assert both.channels is not None
    np.testing.assert_allclose(both.channels, stereo, atol=1e-6)
    assert dead.channels is not None and dead.channels.shape[0] == 2
    mono = ContinuousDecoder().feed(real_segment(hls_samples / "normal/live1184.ts"))[0]
    assert mono.channels is None


def test_out_of_range_channel_index_falls_back_to_auto(hls_samples: Path) -> None:
    segment = real_segment(hls_samples / "normal/live1184.ts")
    auto = ContinuousDecoder().feed(segment)[0]
    indexed = ContinuousDecoder(DecoderSettings(channel_policy=3)).feed(segment)[0]
    np.testing.assert_array_equal(auto.samples, indexed.samples)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (b"", "undecodable: 0 bytes"),
        (bytes(range(256)) * 700, "undecodable: "),
        (b"\x47" + b"\x00" * 187, "undecodable: "),  # one empty MPEG-TS packet
    ],
)
def test_corrupt_and_empty_segments_become_gaps_and_restart_the_run(synthetic, bad, expected):
    signal, datas = synthetic
    segments = as_segments(datas)
    segments[2] = replace(segments[2], data=bad)
    decoder = ContinuousDecoder()
    out = decoder.feed_all(segments)
    assert [type(o).__name__ for o in out] == [
        "AudioChunk",
        "AudioChunk",
        "SegmentGap",
        "AudioChunk",
    ]
    gap = out[2]
    assert isinstance(gap, SegmentGap)
    assert gap.reason.startswith(expected)
    assert (gap.start_utc, gap.end_utc, gap.ref) == (
        segments[2].start_utc,
        segments[2].end_utc,
        segments[2].ref,
    )
    restarted = out[3]
    assert restarted.gap_before is True
    # Re-anchored at segment 3's first frame (from its PTS), less the dropped frame.
    first = segment_first_samples(signal.shape[1])[3]
    assert restarted.start_utc == segments[0].start_utc + at_samples(first + FRAME)
    assert decoder.runs_started == 2 and decoder.undecodable == 1


def test_truncated_segment_keeps_its_audio_and_the_next_one_starts_a_new_run(synthetic) -> None:
    _, datas = synthetic
    segments = as_segments(datas)
    segments[1] = replace(segments[1], data=datas[1][: len(datas[1]) // 2])
    decoder = ContinuousDecoder()
    out = decoder.feed_all(segments)
    assert all(isinstance(o, AudioChunk) for o in out)
    assert 100 * FRAME < out[1].frames < 469 * FRAME // 2 + FRAME and out[1].gap_before is False
    assert out[2].gap_before is True  # timestamps jumped: a fresh decoder, re-anchored
    assert decoder.runs_started == 2


def test_gaps_and_folder_changes_reset_the_decoder(synthetic) -> None:
    _, datas = synthetic
    segments = as_segments(datas)
    gap = SegmentGap(
        "rpi_test", segments[1].ref, segments[1].start_utc, segments[1].end_utc, "missing"
    )
    other_folder = as_segments(datas[3:], folder_epoch=1_717_761_600 + 31, first_number=3)
    decoder = ContinuousDecoder()
    out = decoder.feed_all([segments[0], gap, segments[2], other_folder[0]])
    assert out[1] is gap
    assert [o.gap_before for o in out if isinstance(o, AudioChunk)] == [True, True, True]
    assert decoder.runs_started == 3


def test_bad_settings_are_refused() -> None:
    for bad in (
        {"channel_policy": "left"},
        {"channel_policy": -1},
        {"dead_channel_db": 0},
        {"ts_origin_s": -1.0},
    ):
        with pytest.raises(ValueError, match=r"must be|(channel_policy|dead_channel_db): expected"):
            DecoderSettings(**bad)


class RecordingExecutor(ThreadPoolExecutor):
    """A real thread pool that remembers which threads ran its work."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.threads: set[int] = set()

    def submit(self, fn, /, *args, **kwargs):
        def run():
            self.threads.add(threading.get_ident())
            return fn(*args, **kwargs)

        return super().submit(run)


async def test_decode_stream_decodes_in_a_worker_thread(synthetic) -> None:
    _, datas = synthetic
    segments = as_segments(datas)
    segments[2] = replace(segments[2], data=b"")

    async def items() -> AsyncIterator[Segment | SegmentGap]:
        for segment in segments:
            yield segment
            await asyncio.sleep(0)

    executor = RecordingExecutor()
    try:
        out = [o async for o in decode_stream(items(), DecoderSettings(), executor)]
    finally:
        executor.shutdown()
    assert executor.threads and threading.get_ident() not in executor.threads
    expected = ContinuousDecoder().feed_all(segments)
    assert [type(o) for o in out] == [type(o) for o in expected]
    for got, want in zip(out, expected, strict=True):
        if isinstance(got, AudioChunk):
            assert got.start_utc == want.start_utc
            np.testing.assert_array_equal(got.samples, want.samples)


async def test_closing_decode_stream_closes_its_source(synthetic) -> None:
    _, datas = synthetic
    segments = as_segments(datas)
    closed = asyncio.Event()

    async def items() -> AsyncIterator[Segment | SegmentGap]:
        try:
            for segment in segments:
                yield segment
        finally:
            closed.set()

    decoded = decode_stream(items())
    assert isinstance(await anext(decoded), AudioChunk)
    await decoded.aclose()
    assert closed.is_set()


async def test_decode_stream_reports_each_items_decode_time(synthetic) -> None:
    _, datas = synthetic
    segments = as_segments(datas)
    hole = segments[1]
    items = [
        segments[0],
        SegmentGap(hole.feed, hole.ref, hole.start_utc, hole.end_utc, "missing"),
        *segments[2:],
    ]

    async def source() -> AsyncIterator[Segment | SegmentGap]:
        for item in items:
            yield item

    timed: list[tuple[Segment | SegmentGap, float]] = []
    outs = [
        out async for out in decode_stream(source(), on_decoded=lambda i, s: timed.append((i, s)))
    ]
    assert [item for item, _ in timed] == items
    assert all(seconds >= 0 for _, seconds in timed)
    assert any(seconds > 0 for item, seconds in timed if isinstance(item, Segment))
    assert sum(isinstance(out, AudioChunk) for out in outs) == len(segments) - 1


def test_synthetic_segments_look_like_the_nodes(synthetic) -> None:
    signal, datas = synthetic
    frames, first_pts = [], []
    for data in datas:
        with av.open(io.BytesIO(data)) as container:
            packets = [p for p in container.demux(audio=0) if p.size]
        frames.append(len(packets))
        first_pts.append(float(packets[0].pts * packets[0].time_base))
    assert frames[1:3] == [469, 469] and frames[0] == 469  # the priming frame + 468
    assert all(468 <= n <= 470 for n in frames[:-1])
    # Timestamps run on across files, offset like the nodes' muxer: the priming packet at
    # 1.4 s, segment N's first packet at 1.4 s + 10 N + 0..1 frame, as in the real segments.
    assert first_pts[0] == pytest.approx(1.4, abs=1e-6)
    for number, pts in enumerate(first_pts[1:], start=1):
        assert 0 <= pts - (10 * number + 1.4) < FRAME / RATE
    starts = segment_first_samples(signal.shape[1])
    assert [round(pts - 1.4 - FRAME / RATE, 6) for pts in first_pts[1:]] == [
        round(s / RATE, 6) for s in starts[1:]
    ]


def test_a_run_that_begins_with_a_one_frame_segment(synthetic) -> None:
    signal, _ = synthetic
    tiny = encode_segments(signal[:, : 20 * FRAME], segment_seconds=FRAME / RATE)
    segments = as_segments(tiny[1:5], first_number=1)
    out = ContinuousDecoder().feed_all(segments)
    # Segment 1 holds only the frame a fresh decoder drops: no chunk, and the run's first
    # chunk (segment 2) still says a run starts there.
    assert [c.source.number for c in out] == [2, 3, 4]
    assert [c.gap_before for c in out] == [True, False, False]
    # (their PTS are off the 10 s grid: segment 1's packet is taken a frame before its slot)
    assert out[0].start_utc == segments[0].start_utc
