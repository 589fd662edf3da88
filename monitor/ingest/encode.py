"""Audio → AAC-LC / MPEG-TS segment files made with PyAV, shaped like the Orcasound nodes' output
(the demo node and the tests build their streams with it).

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
from fractions import Fraction

import av
import numpy as np

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
