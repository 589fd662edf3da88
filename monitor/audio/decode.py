"""Segments → audio: one AAC decoder per continuous run of segments.

A *run* is a sequence of segments of one folder with consecutive numbers whose MPEG-TS
timestamps follow on. All packets of a run go through the SAME decoder context, so the output
equals a continuous decode (a fresh decoder per segment glitches at every segment start).

Timing: a run is anchored once, at its first segment (see below), and then advances by the
count of decoded samples; segments after the first are never re-anchored. The streams have no
drift, so the error does not grow along a run; re-anchoring every segment would instead make the
timeline jump back and forth by up to a frame at each boundary.

Priming: a fresh decoder's first output frame is never real audio. At a stream start (segment
number 0) it is the encoder's 1024 priming samples, which precede the stream's time zero; mid
stream it is an overlap-add with nothing before it. Either way it is dropped.

Where a run's first frame starts. A folder's first packet is the encoder's priming frame, at
PTS ``ts_origin_s`` (1.4 s, ffmpeg's muxer), and its time zero (the slot start of segment 0,
``start_utc``) is one frame later. The segmenter cuts segment N at the first packet whose PTS is
at or after ``ts_origin_s + 10 N``, so that packet starts ``lead = first_pts - (ts_origin_s +
10 N)`` (0..1 frame, PTS taken modulo its 2^33-tick wrap) after the *priming* grid, i.e. at
``start_utc + lead - 1 frame``. Every run, at segment 0 or mid-folder, is placed that way, so a
run started at segment N has the same timeline as one from segment 0, to the sample (live =
replay = fetch from any time). With PROGRAM-DATE-TIME timing the stamp of segment N is the
muxer's time of its first packet counted from the priming packet (segment 0's stamp is time
zero), so lead is 0 there. When the PTS lies off that grid by more than
``max_timestamp_jump_s`` (or ``ts_origin_s`` is None) lead is taken as 0: right to within a
frame.

Overlong segments: a segment whose audio would run more than ``max_overrun_s`` past its slot's
end (a valid AAC file holding minutes under one 10 s slot) is cut at the slot's end, counted in
``overlong`` and ends its run, so a feed's clock never runs ahead of its slots; packets beyond
that are not even decoded.

Restart gaps (between two folders) start where the old folder's decoded audio really ended,
which may be before the end of its last slot (a last segment of a packet or two).

A new run starts after a ``SegmentGap``, after an undecodable segment, on a change of folder,
number, sample rate or channel count, and when the first timestamp of a segment does not follow
on from the last one (lost or truncated audio). Bad bytes never raise out of the decoder: they
become a ``SegmentGap`` whose reason starts with ``"undecodable: "``.
"""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Executor
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal

import av
import numpy as np

from monitor.audio.audiofile import planar_float
from monitor.audio.chunks import AudioChunk
from monitor.health.logs import get_logger
from monitor.ingest.slots import GAP_RESTART, NOMINAL_SEGMENT_SECONDS, Segment, SegmentGap
from monitor.limits import check_limits
from monitor.timebase import after_samples, samples_between

log = get_logger(__name__)

AAC_FRAME = 1024  # samples per AAC-LC frame (the nodes stream AAC-LC)
PTS_WRAP_S = 2**33 / 90_000  # MPEG-TS timestamps are 33 bits at 90 kHz: they wrap every ~26.5 h
ChannelPolicy = Literal["auto", "mix"] | int
Decoded = AudioChunk | SegmentGap


def check_channel_policy(policy: object, name: str) -> None:
    """Raise ``ValueError`` naming the setting unless ``policy`` is a ``ChannelPolicy``."""
    if isinstance(policy, bool) or not (
        policy in ("auto", "mix") or (isinstance(policy, int) and policy >= 0)
    ):
        raise ValueError(f'{name}: expected "auto", "mix" or a channel index ≥ 0, got {policy!r}')


@dataclass(frozen=True, slots=True)
class DecoderSettings:
    # "auto": average the live channels (a channel whose RMS is more than dead_channel_db below
    # the loudest is dead and left out); "mix": average all; an int: that channel only (a stream
    # with fewer channels falls back to "auto", with a warning).
    channel_policy: ChannelPolicy = "auto"
    dead_channel_db: float = field(default=20.0, metadata={"gt": 0.0})
    # A segment whose first timestamp is further than this from where the previous one ended
    # starts a new run (the nodes' timestamps jitter by a few 1/90 kHz ticks).
    max_timestamp_jump_s: float = field(default=0.01, metadata={"gt": 0.0})
    # PTS (s) of a folder's first packet (the encoder's priming frame, one frame before the
    # folder's time zero) in the nodes' MPEG-TS; None: don't use the PTS for timing
    ts_origin_s: float | None = 1.4
    # audio running further than this past the end of its segment's slot is cut at the slot end
    max_overrun_s: float = field(default=10.0, metadata={"gt": 0.0})

    def __post_init__(self) -> None:
        check_channel_policy(self.channel_policy, "channel_policy")
        check_limits(self)
        if self.ts_origin_s is not None and not 0 <= self.ts_origin_s < PTS_WRAP_S:
            raise ValueError(
                f"ts_origin_s must be None or in [0, 2^33/90000), got {self.ts_origin_s}"
            )


def pts_difference(later_s: float, earlier_s: float) -> float:
    """``later - earlier`` in seconds, across the 33-bit PTS wrap (the nearest value)."""
    return (later_s - earlier_s + PTS_WRAP_S / 2) % PTS_WRAP_S - PTS_WRAP_S / 2


class UndecodableSegment(Exception):
    """Internal: the segment's bytes cannot be demuxed or decoded."""


@dataclass(slots=True)
class _Demuxed:
    packets: list[av.Packet]
    first_pts_s: float
    end_pts_s: float  # last packet's pts + duration
    sample_rate: int  # as the stream header says (0 when it does not)


@dataclass(slots=True)
class _Run:
    codec: av.AudioCodecContext
    anchor_utc: datetime
    emitted: int  # samples of the run's timeline before the next output (incl. a dropped frame)
    drop: int  # samples still to drop at the start of the run
    previous: Segment
    end_pts_s: float
    sample_rate: int = 0
    channels: int = 0
    first_chunk: bool = True
    lead_s: float | None = None  # first frame's start after ``anchor_utc``, applied at decode


class ContinuousDecoder:
    """Feed it the segment iterator's items in order; it returns chunks and gaps.

    Not thread-safe: one decoder per feed, used from one thread at a time."""

    def __init__(self, settings: DecoderSettings | None = None) -> None:
        self.settings = settings or DecoderSettings()
        self._run: _Run | None = None
        self.runs_started = 0
        self.undecodable = 0
        self.overlong = 0  # segments cut at their slot's end
        self._audio_end: datetime | None = None  # end of the last audio handed on

    def reset(self) -> None:
        self._run = None

    def feed_all(self, items: Iterable[Segment | SegmentGap]) -> list[Decoded]:
        return [out for item in items for out in self.feed(item)]

    def feed(self, item: Segment | SegmentGap) -> list[Decoded]:
        if isinstance(item, SegmentGap):
            self.reset()
            ended = self._audio_end
            if item.reason == GAP_RESTART and item.ref is None and ended is not None:
                self._audio_end = None
                if ended < item.start_utc:  # the old folder's last slot was not all audio
                    item = replace(item, start_utc=ended)
            return [item]
        try:
            chunk = self._decode(item)
        except Exception as error:  # bad bytes must never end the feed
            self.reset()
            self.undecodable += 1
            detail = str(error) if isinstance(error, UndecodableSegment) else repr(error)
            reason = f"undecodable: {detail}"
            log.warning("segment undecodable", feed=item.feed, key=item.ref.key, reason=reason)
            return [
                SegmentGap(
                    feed=item.feed,
                    ref=item.ref,
                    start_utc=item.start_utc,
                    end_utc=item.end_utc,
                    reason=reason,
                )
            ]
        # A segment shorter than the dropped first frame leaves nothing to hand on.
        if not chunk.frames:
            return []
        self._audio_end = after_samples(chunk.start_utc, chunk.frames, chunk.sample_rate)
        return [chunk]

    def _decode(self, segment: Segment) -> AudioChunk:
        demuxed = _demux(segment.data)
        overlong = self._cut_packets(segment, demuxed)
        run = self._run
        if run is not None and not self._continues(run, segment, demuxed):
            run = None
        if run is None:
            run = self._start_run(segment, demuxed)
        planar, rate, complete = _decode_packets(run.codec, demuxed.packets)
        if run.sample_rate and (rate != run.sample_rate or planar.shape[0] != run.channels):
            # The stream changed format inside what looked like a run: start again here.
            log.info("stream format changed", feed=segment.feed, key=segment.ref.key)
            run = self._start_run(segment, demuxed)
            planar, rate, complete = _decode_packets(run.codec, demuxed.packets)
        run.sample_rate, run.channels = rate, planar.shape[0]
        if run.lead_s is not None:
            run.emitted += self._lead_samples(run.lead_s, rate)
            run.lead_s = None
        # After a packet that would not decode the decoder state is suspect: start afresh next.
        self._run = run if complete else None
        dropped = min(run.drop, planar.shape[1])
        planar = planar[:, dropped:]
        run.drop -= dropped
        start_utc = after_samples(run.anchor_utc, run.emitted + dropped, rate)
        slot_end = segment.end_utc
        if overlong or after_samples(start_utc, planar.shape[1], rate) > slot_end + timedelta(
            seconds=self.settings.max_overrun_s
        ):
            keep = min(planar.shape[1], max(0, samples_between(start_utc, slot_end, rate)))
            self.overlong += 1
            self._run = None  # what follows in the file is not on this run's clock
            log.warning(
                "segment overlong: cut at its slot end",
                feed=segment.feed,
                key=segment.ref.key,
                decoded_s=round(planar.shape[1] / rate, 3),
                kept_s=round(keep / rate, 3),
            )
            planar = planar[:, :keep]
        run.emitted += dropped + planar.shape[1]
        run.previous = segment
        run.end_pts_s = demuxed.end_pts_s
        gap_before = run.first_chunk
        run.first_chunk = run.first_chunk and not planar.shape[1]  # until a chunk goes out
        count = max(planar.shape[1], 1)
        rms = tuple(float(np.sqrt(np.dot(row, row) / count)) for row in planar)
        mono = apply_channel_policy(planar, rms, self.settings)
        return AudioChunk(
            feed=segment.feed,
            start_utc=start_utc,
            sample_rate=rate,
            samples=mono,
            source=segment.ref,
            gap_before=gap_before,
            channel_rms=rms,
            source_offset_s=dropped / rate,
            channels=planar if planar.shape[0] > 1 else None,
        )

    def _continues(self, run: _Run, segment: Segment, demuxed: _Demuxed) -> bool:
        previous = run.previous
        if (
            segment.feed != previous.feed
            or segment.ref.folder_epoch != previous.ref.folder_epoch
            or segment.ref.number != previous.ref.number + 1
        ):
            return False
        jump = pts_difference(demuxed.first_pts_s, run.end_pts_s)
        if abs(jump) > self.settings.max_timestamp_jump_s:
            log.info(
                "timestamps do not follow on: new decoder run",
                feed=segment.feed,
                key=segment.ref.key,
                jump_s=round(jump, 6),
            )
            return False
        return True

    def _cut_packets(self, segment: Segment, demuxed: _Demuxed) -> bool:
        """Leave only the packets that can fall in the slot (+ the overrun); True if cut."""
        rate = demuxed.sample_rate
        if rate <= 0:
            return False  # the decoded length is checked after decoding
        most = segment.nominal_duration + self.settings.max_overrun_s
        if len(demuxed.packets) <= math.ceil(most * rate / AAC_FRAME) + 2:
            return False
        # the slot, the dropped first frame and up to a frame of lead
        del demuxed.packets[math.ceil(segment.nominal_duration * rate / AAC_FRAME) + 2 :]
        return True

    def _start_run(self, segment: Segment, demuxed: _Demuxed) -> _Run:
        self.runs_started += 1
        number, origin = segment.ref.number, self.settings.ts_origin_s
        lead_s = None
        if origin is not None and segment.timing_source == "number":
            nominal = origin + NOMINAL_SEGMENT_SECONDS * number
            lead_s = pts_difference(demuxed.first_pts_s, nominal)
        # The first packet starts a frame before the slot start + lead; its decoded frame is
        # dropped (see the module docstring).
        return _Run(
            codec=av.CodecContext.create("aac", "r"),
            anchor_utc=segment.start_utc,
            emitted=-AAC_FRAME,
            drop=AAC_FRAME,
            previous=segment,
            end_pts_s=0.0,
            lead_s=lead_s,
        )

    def _lead_samples(self, lead_s: float, rate: int) -> int:
        """Samples from the priming grid to the run's first packet (0 when the PTS disagrees)."""
        frame_s, slack = AAC_FRAME / rate, self.settings.max_timestamp_jump_s
        if not -slack <= lead_s <= frame_s + slack:
            log.info("timestamps off the nodes' grid: lead taken as 0", lead_s=lead_s)
            return 0
        return round(lead_s * rate)


def apply_channel_policy(
    planar: np.ndarray, rms: tuple[float, ...], settings: DecoderSettings
) -> np.ndarray:
    """(channels, n) → (1, n) float32 by the channel policy."""
    channels = planar.shape[0]
    policy = settings.channel_policy
    if channels == 1:
        return planar.astype(np.float32, copy=False)
    if isinstance(policy, int) and not isinstance(policy, bool):
        if policy < channels:
            return planar[policy : policy + 1].astype(np.float32, copy=False)
        log.warning("channel index out of range: using auto", channel=policy, channels=channels)
        policy = "auto"
    if policy == "mix":
        chosen = list(range(channels))
    else:
        loudest = max(rms)
        floor = loudest * 10.0 ** (-settings.dead_channel_db / 20.0)
        chosen = [i for i, level in enumerate(rms) if level >= floor] if loudest > 0 else []
        chosen = chosen or list(range(channels))
    return planar[chosen].mean(axis=0, keepdims=True, dtype=np.float32)


def _demux(data: bytes) -> _Demuxed:
    if not data:
        raise UndecodableSegment("0 bytes")
    packets: list[av.Packet] = []
    try:
        with av.open(io.BytesIO(data), format="mpegts") as container:
            if not container.streams.audio:
                raise UndecodableSegment("no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context.name != "aac":
                raise UndecodableSegment(f"audio codec {stream.codec_context.name}, not aac")
            rate = int(stream.codec_context.sample_rate or 0)
            try:
                for packet in container.demux(stream):
                    if packet.size and packet.pts is not None:
                        packets.append(packet)
            except av.FFmpegError as error:
                if not packets:
                    raise
                # A truncated tail: keep what came before it (the next segment's timestamps
                # will not follow on, which starts a new run there).
                log.warning("segment truncated", error=str(error), packets=len(packets))
    except av.FFmpegError as error:
        raise UndecodableSegment(str(error)) from error
    if not packets:
        raise UndecodableSegment("no audio packets")
    first, last = packets[0], packets[-1]
    base = Fraction(first.time_base)
    return _Demuxed(
        packets=packets,
        first_pts_s=float(first.pts * base),
        end_pts_s=float((last.pts + (last.duration or 0)) * base),
        sample_rate=rate,
    )


def _decode_packets(
    codec: av.AudioCodecContext, packets: list[av.Packet]
) -> tuple[np.ndarray, int, bool]:
    """Decode in order → (planar, rate, complete). A packet that fails to decode ends the
    segment there: what came before is kept, ``complete`` is False and the caller resets."""
    planes: list[list[np.ndarray]] = []
    rate = 0
    complete = True
    for packet in packets:
        try:
            frames = codec.decode(packet)
        except av.FFmpegError as error:
            if not planes:
                raise UndecodableSegment(str(error)) from error
            log.warning("segment partly undecodable", error=str(error), kept=len(planes[0]))
            complete = False
            break
        for frame in frames:
            rate = frame.sample_rate
            if not planes:
                planes = [[] for _ in frame.layout.channels]
            for channel, samples in enumerate(_channels(frame)):
                planes[channel].append(samples)
    if not planes or not planes[0]:
        raise UndecodableSegment("no audio frames decoded")
    planar = np.empty((len(planes), sum(len(block) for block in planes[0])), dtype=np.float32)
    for row, channel in zip(planar, planes, strict=True):
        np.concatenate(channel, out=row)
    return planar, rate, complete


def _channels(frame: av.AudioFrame) -> list[np.ndarray]:
    """One float32 vector per channel. FFmpeg's AAC decoder gives planar float: view its planes
    (2× faster than ``to_ndarray``); any other sample format goes the general way."""
    if frame.format.name == "fltp":
        n = frame.samples
        return [np.frombuffer(plane, dtype=np.float32, count=n) for plane in frame.planes]
    return list(planar_float(frame))


async def decode_stream(
    items: AsyncIterator[Segment | SegmentGap],
    settings: DecoderSettings | None = None,
    executor: Executor | None = None,
    on_decoded: Callable[[Segment | SegmentGap, float], None] | None = None,
    on_cut: Callable[[Segment], None] | None = None,
) -> AsyncIterator[Decoded]:
    """Decode a feed's segment iterator in a worker thread, item by item, in order.

        Pull-based: the next segment is only awaited once the previous one's output was consumed,
        so a slow consumer holds the producer back (no unbounded buffering). ``on_decoded`` gets
        each item with the seconds its decode took in the worker (for metrics); ``on_cut`` each
    segment whose audio ran past its slot and was cut."""
    loop = asyncio.get_running_loop()
    decoder = ContinuousDecoder(settings)
    # Closing the decoded stream closes its source (an archive reader's prefetches end with it).
    async with aclosing(items) as source:
        async for item in source:
            overlong = decoder.overlong
            outs, seconds = await loop.run_in_executor(executor, _timed_feed, decoder, item)
            if on_decoded is not None:
                on_decoded(item, seconds)
            if on_cut is not None and decoder.overlong > overlong and isinstance(item, Segment):
                on_cut(item)
            for out in outs:
                yield out


def _timed_feed(
    decoder: ContinuousDecoder, item: Segment | SegmentGap
) -> tuple[list[Decoded], float]:
    started = time.perf_counter()
    outs = decoder.feed(item)
    return outs, time.perf_counter() - started
