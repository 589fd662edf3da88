"""A node built from real recordings: real Orcasound background with real humpback calls mixed
in at known times, encoded like a node's stream and written into a local mirror (the bucket's
layout, read by :class:`monitor.ingest.local_store.LocalStore`), all at once or "live".

Used by ``hydromon demo`` and by the end-to-end tests; the recordings are the repository's
``tests/data`` (MIT, Orcasound; see its README).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from monitor.audio.audiofile import read_audio
from monitor.ingest.encode import encode_segments
from monitor.ingest.keys import latest_key, playlist_key
from monitor.ingest.playlist import segment_name
from monitor.ingest.timing import NOMINAL_SEGMENT_SECONDS, TimingSettings, number_start

RATE = 48_000
SEGMENT_S = NOMINAL_SEGMENT_SECONDS
BACKGROUND_RMS = 0.01
CALL_RMS = 0.05  # +14 dB over the background: clear, not deafening


@functools.cache
def background(directory: Path, rms: float = BACKGROUND_RMS) -> np.ndarray:
    """The real segments in ``directory`` (``*.ts``, 48 kHz), each levelled to ``rms``, back to
    back (mono)."""
    parts = []
    for path in sorted(directory.glob("*.ts")):
        samples, rate = read_audio(path)
        if rate != RATE:
            raise ValueError(f"{path}: {rate} Hz, expected {RATE}")
        mono = samples.mean(axis=0)
        parts.append(mono[: round(SEGMENT_S * RATE)] / np.sqrt(np.mean(mono**2)) * rms)
    if not parts:
        raise ValueError(f"no .ts segments in {directory}")
    return np.concatenate(parts).astype(np.float32)


@functools.cache
def calls(directory: Path, rms: float = CALL_RMS) -> dict[str, np.ndarray]:
    """The calls in ``directory`` (``*.wav``) by file stem, mono, at 48 kHz, levelled to ``rms``."""
    import torch  # resampling only; importing this module stays light
    import torchaudio

    out = {}
    for path in sorted(directory.glob("*.wav")):
        samples, rate = read_audio(path)
        mono = torch.from_numpy(samples.mean(axis=0))
        mono = torchaudio.functional.resample(mono, rate, RATE).numpy()
        out[path.stem] = (mono / np.sqrt(np.mean(mono**2)) * rms).astype(np.float32)
    if not out:
        raise ValueError(f"no .wav calls in {directory}")
    return out


@dataclass(frozen=True)
class MixedCall:
    name: str
    start_utc: datetime
    end_utc: datetime


@dataclass(frozen=True)
class Stream:
    folder_epoch: int
    segments: list[bytes]  # live000.ts, live001.ts, ... (the last holds the encoder's flush)
    calls: list[MixedCall]
    audio_s: float  # the signal's length

    @property
    def start_utc(self) -> datetime:
        return number_start(self.folder_epoch, 0, TimingSettings())

    @property
    def end_utc(self) -> datetime:
        return self.start_utc + timedelta(seconds=self.audio_s)

    def segment_of(self, moment: datetime) -> int:
        return int((moment - self.start_utc).total_seconds() // SEGMENT_S)


def build_stream(
    folder_epoch: int,
    seconds: float,
    placed: Iterable[tuple[str, float]],
    *,
    bed: np.ndarray,
    clips: dict[str, np.ndarray],
    rotate: int = 0,
) -> Stream:
    """``seconds`` of ``bed`` (starting ``rotate`` segments in, looped) with each call
    ``(name, offset_s)`` of ``clips`` added at that offset from the stream's start."""
    signal = np.resize(np.roll(bed, -rotate * round(SEGMENT_S * RATE)), round(seconds * RATE))
    signal = signal.copy()
    mixed = []
    t0 = number_start(folder_epoch, 0, TimingSettings())
    for name, offset_s in placed:
        clip = clips[name]
        at = round(offset_s * RATE)
        if at < 0 or at + clip.shape[0] > signal.shape[0]:
            raise ValueError(f"call {name} at {offset_s} s does not fit {seconds} s of stream")
        signal[at : at + clip.shape[0]] += clip
        end_s = offset_s + clip.shape[0] / RATE
        mixed.append(
            MixedCall(name, t0 + timedelta(seconds=offset_s), t0 + timedelta(seconds=end_s))
        )
    segments = encode_segments(signal[np.newaxis, :], RATE)
    return Stream(folder_epoch, segments, mixed, signal.shape[0] / RATE)


def legacy_playlist(numbers: Iterable[int], *, media_sequence: int = 0) -> str:
    """What the ffmpeg segment muxer wrote: TARGETDURATION 11, EXTINF 10.005422, no PDT."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
        "#EXT-X-ALLOW-CACHE:YES",
        "#EXT-X-TARGETDURATION:11",
    ]
    for number in numbers:
        lines += ["#EXTINF:10.005422,", segment_name(number)]
    return "\n".join(lines) + "\n"


def write_object(root: Path, key: str, data: bytes) -> None:
    """Write ``root/key`` whole: under a hidden temporary name, then renamed (readers never see
    half a file, and the local store does not list the temporary)."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def publish_segment(root: Path, node: str, stream: Stream, number: int) -> None:
    """Segment ``number`` (the segment, then the playlist listing it, then latest.txt, as a
    node uploads them)."""
    epoch = stream.folder_epoch
    key = f"{node}/hls/{epoch}/{segment_name(number)}"
    write_object(root, key, stream.segments[number])
    write_object(root, playlist_key(node, epoch), legacy_playlist(range(number + 1)).encode())
    if number == 0:
        write_object(root, latest_key(node), f"{epoch}\n".encode())


async def play_live(root: Path, node: str, stream: Stream, interval_s: float) -> None:
    """Publish the stream's segments one every ``interval_s`` (10 s would be real time)."""
    for number in range(len(stream.segments)):
        if number:
            await asyncio.sleep(interval_s)
        await asyncio.to_thread(publish_segment, root, node, stream, number)
