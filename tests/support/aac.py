"""Real AAC-LC / MPEG-TS segments made with PyAV, shaped like the Orcasound nodes' output.

``encode_segments`` runs ONE AAC encoder over the whole signal and muxes its packets into
consecutive MPEG-TS files whose timestamps run on across files (as the nodes' ffmpeg segment and
hls muxers do), so decoding the files back to back with one decoder equals a continuous decode.

Timeline: input sample 0 of ``signal`` is the stream's time zero. The encoder's first packet is
the 1024-sample priming frame (pts -1024); it goes into segment 0. As ffmpeg does for the nodes
(its muxers shift the first packet to time 0, the MPEG-TS muxer adds 1.4 s, the segmenter cuts
by time since the first packet), the priming packet has PTS 1.4 s and segment k holds the
packets whose PTS falls in ``1.4 s + [k, k+1) × segment_seconds`` — so a segment's first frame
starts up to one frame *before* time zero + 10 k, and, like the real ones, segments hold a whole
number of 1024-sample frames (468 or 469 for 10 s at 48 kHz).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from fractions import Fraction

import av
import numpy as np

from monitor.ingest.slots import Segment, SegmentRef
from monitor.timebase import from_epoch

FRAME_SAMPLES = 1024
# ffmpeg's MPEG-TS muxer starts the real streams' timestamps at ~1.4 s; keep that shape.
TS_OFFSET_SECONDS = 1.4


def encode_segments(
    signal: np.ndarray,
    sample_rate: int = 48000,
    segment_seconds: float = 10.0,
    bitrate: int = 72_000,
    first_number: int = 0,
    ts_offset_s: float = TS_OFFSET_SECONDS,
) -> list[bytes]:
    """Encode ``signal`` (float32, (channels, n), channels 1 or 2) into MPEG-TS segment files.

    ``first_number``: the files are segments ``first_number, …`` of their folder (their
    timestamps are those of a folder that began ``first_number`` segments earlier).
    ``ts_offset_s``: the priming packet's PTS (ffmpeg's 1.4 s, give or take a few samples)."""
    packets, extradata, layout = _encode(signal, sample_rate, bitrate)
    per_segment = round(segment_seconds * sample_rate)
    groups: list[list[tuple[bytes, int, int]]] = []
    for data, pts, duration in packets:
        index = (pts + FRAME_SAMPLES) // per_segment  # time since the priming packet
        while len(groups) <= index:
            groups.append([])
        groups[index].append((data, pts, duration))
    offset = round((ts_offset_s + first_number * segment_seconds) * sample_rate)
    offset += FRAME_SAMPLES  # the priming packet (pts -1024) at TS_OFFSET_SECONDS
    return [_mux(group, extradata, layout, sample_rate, offset) for group in groups if group]


def segment_first_samples(
    n_samples: int, sample_rate: int = 48000, segment_seconds: float = 10.0
) -> list[int]:
    """Input-sample index of the first (non-priming) frame of each segment ``encode_segments``
    makes from ``n_samples`` samples. Segment 0 starts at 0 (its priming frame precedes it);
    segment k ≥ 1 up to one frame before ``k × segment_seconds``."""
    per_segment = round(segment_seconds * sample_rate)
    frames = -(-n_samples // FRAME_SAMPLES) + 1  # the encoder flushes one frame past the end
    starts: dict[int, int] = {}
    for frame in range(frames):
        pts = frame * FRAME_SAMPLES
        starts.setdefault((pts + FRAME_SAMPLES) // per_segment, pts)
    return [starts[k] for k in sorted(starts)]


def _encode(
    signal: np.ndarray, sample_rate: int, bitrate: int
) -> tuple[list[tuple[bytes, int, int]], bytes, str]:
    if signal.ndim != 2 or signal.shape[0] not in (1, 2):
        raise ValueError(f"signal must be (channels, n) with 1 or 2 channels, got {signal.shape}")
    layout = "mono" if signal.shape[0] == 1 else "stereo"
    encoder = av.CodecContext.create("aac", "w")
    encoder.sample_rate = sample_rate
    encoder.layout = layout
    encoder.format = "fltp"
    encoder.bit_rate = bitrate
    encoder.time_base = Fraction(1, sample_rate)
    encoder.open()
    planar = np.ascontiguousarray(signal, dtype=np.float32)
    packets: list[tuple[bytes, int, int]] = []
    for begin in range(0, planar.shape[1], FRAME_SAMPLES):
        block = np.ascontiguousarray(planar[:, begin : begin + FRAME_SAMPLES])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = begin
        frame.time_base = Fraction(1, sample_rate)
        packets.extend(_take(encoder.encode(frame)))
    packets.extend(_take(encoder.encode(None)))
    return packets, bytes(encoder.extradata or b""), layout


def _take(encoded: list[av.Packet]) -> list[tuple[bytes, int, int]]:
    # Copy out now: muxing rescales a packet's timestamps in place.
    return [(bytes(p), int(p.pts), int(p.duration)) for p in encoded]


def _mux(
    packets: list[tuple[bytes, int, int]],
    extradata: bytes,
    layout: str,
    sample_rate: int,
    offset: int,
) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout=layout)
        stream.codec_context.extradata = extradata
        stream.time_base = Fraction(1, sample_rate)
        for data, pts, duration in packets:
            packet = av.Packet(data)
            packet.pts = packet.dts = pts + offset
            packet.duration = duration
            packet.time_base = Fraction(1, sample_rate)
            packet.stream = stream
            container.mux(packet)
    return buffer.getvalue()


# ---- signals -------------------------------------------------------------------------------


def noise(
    seconds: float, sample_rate: int = 48000, channels: int = 1, level: float = 0.01, seed: int = 0
) -> np.ndarray:
    """Gaussian background noise, float32 (channels, n)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    return (level * rng.standard_normal((channels, n))).astype(np.float32)


def sine(
    seconds: float, freq_hz: float, sample_rate: int = 48000, amplitude: float = 0.3
) -> np.ndarray:
    """A steady sine, float32 (n,)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def chirp(
    seconds: float = 0.2,
    f0_hz: float = 1000.0,
    f1_hz: float = 8000.0,
    sample_rate: int = 48000,
    amplitude: float = 0.5,
) -> np.ndarray:
    """A linear up-chirp with short raised-cosine edges: its matched filter peaks sharply, so its
    position in decoded audio can be found to within a sample or two."""
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    phase = 2 * np.pi * (f0_hz * t + (f1_hz - f0_hz) * t**2 / (2 * seconds))
    edge = min(n // 2, round(0.005 * sample_rate))
    envelope = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
    envelope[:edge] = ramp
    envelope[n - edge :] = ramp[::-1]
    return (amplitude * envelope * np.sin(phase)).astype(np.float32)


def place(
    signal: np.ndarray, burst: np.ndarray, at_sample: int, channel: int | None = None
) -> None:
    """Add ``burst`` (n,) into ``signal`` (channels, n) at ``at_sample`` (all channels, or one)."""
    end = at_sample + burst.shape[0]
    if at_sample < 0 or end > signal.shape[1]:
        raise ValueError(f"burst [{at_sample}, {end}) does not fit a signal of {signal.shape[1]}")
    rows = slice(None) if channel is None else slice(channel, channel + 1)
    signal[rows, at_sample:end] += burst


def locate(audio: np.ndarray, burst: np.ndarray) -> int:
    """Sample index in ``audio`` (n,) where ``burst`` matches best (matched filter peak)."""
    size = 1 << int(np.ceil(np.log2(audio.shape[0] + burst.shape[0])))
    spectrum = np.fft.rfft(audio, size) * np.conj(np.fft.rfft(burst, size))
    correlation = np.fft.irfft(spectrum, size)[: audio.shape[0] - burst.shape[0] + 1]
    return int(np.argmax(correlation))


# ---- segments ------------------------------------------------------------------------------


def nominal_start(folder_epoch: int, number: int) -> datetime:
    """Where the HLS layer puts segment ``number`` of a folder: epoch + 2 s + 10 s × number."""
    return from_epoch(folder_epoch) + timedelta(seconds=2.0 + 10.0 * number)


def as_segments(
    datas: list[bytes],
    feed: str = "rpi_test",
    folder_epoch: int = 1_717_761_600,
    first_number: int = 0,
    bucket: str = "test-bucket",
) -> list[Segment]:
    """Wrap consecutive segment files as the HLS layer's ``Segment``s (numbered timing)."""
    segments = []
    for i, data in enumerate(datas):
        number = first_number + i
        ref = SegmentRef(
            bucket=bucket,
            key=f"{feed}/hls/{folder_epoch}/live{number:03d}.ts",
            folder_epoch=folder_epoch,
            number=number,
        )
        segments.append(
            Segment(
                feed=feed,
                ref=ref,
                start_utc=nominal_start(folder_epoch, number),
                nominal_duration=10.0,
                data=data,
                timing_source="number",
            )
        )
    return segments
