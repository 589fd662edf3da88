"""The decoded audio of one feed over a UTC range, as WAV or FLAC (``hydromon fetch``).

The file starts exactly at ``--start`` and holds every sample up to ``start + duration`` on the
feed's sample clock (48 kHz mono after the channel policy). Audio goes through the same archive
reader, continuous decoder and ring buffer as ``replay``, so its timing is the monitor's timing.
Time with no audio (missing, empty or undecodable segments, node restarts) is written as
silence and listed in the sidecar ``<output>.json`` with its reason, beside the segments used.
The file and the sidecar are written under temporary names and renamed at the end: a failed
fetch leaves nothing behind that looks complete.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.fileio import atomic_path, atomic_write_text
from monitor import __version__
from monitor.audio.audiofile import WRITERS, AudioFileError, AudioWriter
from monitor.audio.chunks import AudioChunk
from monitor.audio.decode import DecoderSettings, decode_stream
from monitor.audio.ring import RingBuffer, RingBufferSettings
from monitor.ingest.archive import ArchiveSettings, read_archive
from monitor.ingest.s3 import S3Settings, open_store
from monitor.ingest.slots import Segment, SegmentGap
from monitor.timebase import format_utc, utc_now

MAX_DURATION = timedelta(days=1)


class FetchError(Exception):
    """The range cannot be fetched; the message says why."""


class OutputNotWritable(FetchError):
    """The output file cannot be written (a read-only or full disk, no permission)."""


def _check_writable(partial: Path) -> None:
    """Fail before any download when the output's folder cannot take a file."""
    try:
        partial.touch()
    except OSError as error:
        raise OutputNotWritable(f"{partial.parent}: cannot write here ({error.strerror})") from None


@dataclass(slots=True)
class Provenance:
    feed: str
    bucket: str
    endpoint_url: str | None
    requested_start_utc: str
    requested_end_utc: str
    channel_policy: str
    dead_channel_db: float
    timing: str
    start_utc: str = ""
    end_utc: str = ""
    sample_rate: int = 0
    samples: int = 0
    channels: int = 1
    audio_samples: int = 0  # samples that came from decoded audio (the rest is silence)
    bytes_fetched: int = 0
    folders: list[int] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)  # silence written, with reasons
    segment_gaps: list[dict[str, Any]] = field(default_factory=list)  # as the HLS layer said
    output: str = ""
    created_utc: str = ""
    hydromon_version: str = __version__


@dataclass(slots=True)
class _Assembly:
    """Lays chunks on the output's sample clock and streams them to the writer."""

    feed: str
    start: datetime
    end: datetime
    writer_path: Path
    suffix: str
    provenance: Provenance
    progress: tqdm
    ring: RingBuffer | None = None
    writer: AudioWriter | None = None
    cursor: int = 0  # next output sample index (the ring buffer's clock)
    stop: int = 0
    reasons: list[str] = field(default_factory=list)  # gap reasons since the last audio
    _last_gap_start: int = -1  # sample span of the last entry in provenance.gaps
    _last_gap_end: int = -1

    def gap(self, item: SegmentGap) -> None:
        self.provenance.segment_gaps.append(
            {
                "key": item.ref.key if item.ref else None,
                "start_utc": format_utc(item.start_utc),
                "end_utc": format_utc(item.end_utc),
                "reason": item.reason,
            }
        )
        if item.reason not in self.reasons:
            self.reasons.append(item.reason)
        if self.ring is not None:
            self.ring.mark_gap(item)

    def chunk(self, chunk: AudioChunk, segment: Segment | None) -> None:
        if self.ring is None:
            self._open(chunk.sample_rate)
        assert self.ring is not None
        if chunk.sample_rate != self.ring.sample_rate:
            raise FetchError(
                f"the stream changed sample rate ({self.ring.sample_rate} → "
                f"{chunk.sample_rate} Hz) inside the range; fetch the parts separately"
            )
        if not self.ring.empty and self.ring.end >= self.stop:
            return  # the range is complete
        self.ring.write(chunk)
        if self.ring.start > self.cursor:  # first audio after a silent lead
            self._silence(self.cursor, min(self.ring.start, self.stop), "; ".join(self.reasons))
        for record in self.ring.gaps:  # holes not yet written out lie past the cursor
            lo, hi = max(record.start, self.cursor), min(record.end, self.stop)
            if hi > lo:
                self._note_gap(lo, hi, record.reason)
        self.reasons.clear()
        upto = min(self.ring.end, self.stop)
        if upto > self.cursor:
            read = self.ring.read_index(self.cursor, upto)
            silent = sum(min(g.end, upto) - max(g.start, self.cursor) for g in read.gaps)
            self.provenance.audio_samples += upto - self.cursor - silent
            self._emit(read.samples)
            self.ring.release(upto)
        if segment is not None:
            self.provenance.segments.append(
                {
                    "key": segment.ref.key,
                    "folder_epoch": segment.ref.folder_epoch,
                    "number": segment.ref.number,
                    "start_utc": format_utc(segment.start_utc),
                    "timing_source": segment.timing_source,
                    "bytes": len(segment.data),
                    "audio_start_utc": format_utc(chunk.start_utc),
                    "audio_samples": chunk.frames,
                    "channel_rms": [round(level, 6) for level in chunk.channel_rms],
                }
            )
            if segment.ref.folder_epoch not in self.provenance.folders:
                self.provenance.folders.append(segment.ref.folder_epoch)

    def finish(self) -> None:
        if self.ring is None:
            raise FetchError(
                f"no audio for {self.feed} in {format_utc(self.start)} .. {format_utc(self.end)}"
                + (f" ({'; '.join(self.reasons)})" if self.reasons else "")
            )
        if self.cursor < self.stop:
            self._silence(self.cursor, self.stop, "; ".join(self.reasons) or "missing")
        assert self.writer is not None
        self.writer.close()

    def _open(self, rate: int) -> None:
        # The ring buffer only has to hold one chunk past what was already written out.
        self.ring = RingBuffer(self.feed, RingBufferSettings(capacity_s=60.0, sample_rate=rate))
        self.cursor = self.ring.index_of(self.start)
        self.stop = self.ring.index_of(self.end)
        self.writer = AudioWriter(self.writer_path, rate, 1, suffix=self.suffix)
        self.provenance.sample_rate = rate
        self.provenance.start_utc = self._utc(self.cursor)
        self.provenance.end_utc = self._utc(self.stop)
        self.progress.reset(total=round((self.stop - self.cursor) / rate, 3))

    def _silence(self, lo: int, hi: int, reason: str) -> None:
        if hi <= lo:
            return
        self._note_gap(lo, hi, reason or "missing")
        assert self.ring is not None
        block = 10 * self.ring.sample_rate
        for begin in range(lo, hi, block):
            self._emit(np.zeros(min(block, hi - begin), dtype=np.float32))

    def _note_gap(self, lo: int, hi: int, reason: str) -> None:
        assert self.ring is not None
        gaps = self.provenance.gaps
        if gaps and self._last_gap_end == lo:
            # One hole noted in two steps (e.g. longer than the ring buffer): one entry.
            last = gaps[-1]
            reasons = last["reason"].split("; ")
            reasons += [r for r in reason.split("; ") if r and r not in reasons]
            last["end_utc"] = self._utc(hi)
            last["duration_s"] = (hi - self._last_gap_start) / self.ring.sample_rate
            last["reason"] = "; ".join(reasons)
            self._last_gap_end = hi
            return
        self._last_gap_start, self._last_gap_end = lo, hi
        gaps.append(
            {
                "start_utc": self._utc(lo),
                "end_utc": self._utc(hi),
                "duration_s": (hi - lo) / self.ring.sample_rate,
                "reason": reason,
            }
        )

    def _utc(self, index: int) -> str:
        """The output clock's sample ``index`` as UTC text, to the microsecond."""
        assert self.ring is not None
        return format_utc(self.ring.time_of(index), timespec="microseconds")

    def _emit(self, samples: np.ndarray) -> None:
        assert self.writer is not None and self.ring is not None
        self.writer.write(samples)
        self.cursor += samples.shape[0]
        self.provenance.samples += samples.shape[0]
        self.progress.update(samples.shape[0] / self.ring.sample_rate)


async def _finish_in_thread(call: Callable[..., None], *args: object) -> None:
    """Run ``call`` in a worker thread; if we are cancelled (Ctrl-C), let it finish first, so
    the cleanup never closes the writer under a write still in progress."""
    work = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        with suppress(Exception):
            await work
        raise


async def fetch_range(
    feed: str,
    start: datetime,
    end: datetime,
    output: Path,
    *,
    s3: S3Settings,
    archive: ArchiveSettings,
    decoder: DecoderSettings,
    progress: bool = True,
) -> Provenance:
    """Write ``[start, end)`` of ``feed`` to ``output`` and ``output``.json; return the record."""
    suffix = output.suffix.lower()
    if suffix not in WRITERS:
        raise FetchError(f"{output}: write .wav or .flac, not {suffix or 'no extension'!r}")
    if end <= start:
        raise FetchError(f"empty range: {format_utc(start)} .. {format_utc(end)}")
    if end - start > MAX_DURATION:
        raise FetchError(f"range longer than {MAX_DURATION}: fetch it in parts")
    if not output.parent.is_dir():
        raise FetchError(f"{output.parent}: no such directory")
    provenance = Provenance(
        feed=feed,
        bucket=s3.bucket,
        endpoint_url=s3.endpoint_url,
        requested_start_utc=format_utc(start),
        requested_end_utc=format_utc(end),
        channel_policy=str(decoder.channel_policy),
        dead_channel_db=decoder.dead_channel_db,
        timing=str(archive.timing.precedence),
        output=output.name,
    )
    partial = output.with_name(output.name + ".part")
    _check_writable(partial)
    total = (end - start).total_seconds()
    with (
        atomic_path(output, partial=partial),
        tqdm(total=total, unit="s", desc=f"{feed} audio", disable=not progress, leave=False) as bar,
    ):
        assembly = _Assembly(feed, start, end, partial, suffix, provenance, bar)
        try:
            async with open_store(s3) as store:
                segments: dict[str, Segment] = {}

                async def tapped() -> AsyncIterator[Segment | SegmentGap]:
                    async with aclosing(read_archive(store, feed, start, end, archive)) as items:
                        async for item in items:
                            if isinstance(item, Segment):
                                segments[item.ref.key] = item
                                provenance.bytes_fetched += len(item.data)
                            yield item

                async with aclosing(decode_stream(tapped(), decoder)) as decoded:
                    async for item in decoded:
                        if isinstance(item, SegmentGap):
                            if item.ref is not None:  # an undecodable segment yields no chunk
                                segments.pop(item.ref.key, None)
                            assembly.gap(item)
                        else:
                            # FLAC encoding and file writes stay off the loop (S3 prefetch runs)
                            segment = segments.pop(item.source.key, None)
                            await _finish_in_thread(assembly.chunk, item, segment)
            await _finish_in_thread(assembly.finish)  # may write a long silent tail
        except BaseException:
            if assembly.writer is not None:
                with suppress(AudioFileError):
                    assembly.writer.close()
            raise
    provenance.created_utc = format_utc(utc_now())
    sidecar = output.with_name(output.name + ".json")
    atomic_write_text(sidecar, json.dumps(asdict(provenance), indent=2) + "\n")
    return provenance
