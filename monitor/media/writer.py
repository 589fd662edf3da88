"""Writes a closed detection's files: FLAC (archive), Ogg/Opus (browser), a spectrogram PNG,
and both audio versions again for the denoised stream when a denoiser ran.

``MediaWriter.write`` runs the encoding in the writer's own threads (never on the event loop,
never on the inference thread). The feed pipeline awaits it before it publishes the ``closed``
message, so the message's URLs point at files that exist, and each feed has at most one write
in flight (bounded by construction). A write that fails is logged and counted; the message is
then published without media. Every file is written atomically (temporary name, rename).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from models.fileio import atomic_path, atomic_write_bytes
from monitor.audio.audiofile import AudioFileError, write_audio
from monitor.detect.records import Detection, DetectionMedia
from monitor.detect.wire import wire_score
from monitor.health.logs import get_logger
from monitor.limits import check_limits
from monitor.media.capture import Clip, ClipAudio
from monitor.media.encode import write_opus
from monitor.media.layout import day_folder, media_url, relative_file
from monitor.media.retention import Retention
from monitor.media.spectrogram import Box, SpectrogramSettings, render_png
from monitor.publish.output import OutputUnusable
from monitor.timebase import utc_now

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MediaSettings:
    enabled: bool = True
    directory: Path = Path("var/media")
    margin_s: float = field(default=2.0, metadata={"min": 0.0, "max": 60.0})
    max_gb: float = field(default=5.0, metadata={"gt": 0.0})  # oldest removed first beyond it
    max_age_days: float | None = field(default=None, metadata={"gt": 0.0})  # None: no age limit
    opus_bit_rate: int = field(default=48000, metadata={"min": 6000, "max": 256000})
    threads: int = field(default=1, metadata={"min": 1})
    spectrogram: SpectrogramSettings = field(default_factory=SpectrogramSettings)

    def __post_init__(self) -> None:
        check_limits(self)


@dataclass
class MediaStats:
    written: int = 0
    failed: int = 0
    removed: int = 0  # detections whose files the retention policy removed
    cpu_s: float = 0.0  # thread CPU time spent writing (all detections)
    wall_s: float = 0.0


class MediaWriter:
    def __init__(
        self,
        settings: MediaSettings,
        on_removed: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.directory = Path(settings.directory)
        self.on_removed = on_removed  # called in the writer thread
        self.stats = MediaStats()
        self.retention = Retention(
            self.directory,
            round(settings.max_gb * 1e9),
            None if settings.max_age_days is None else timedelta(days=settings.max_age_days),
        )
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.settings.threads, thread_name_prefix="media")
        try:
            await self._run(self._prepare)
        except OSError as error:
            await self.close()
            reason = error.strerror or type(error).__name__
            raise OutputUnusable(f"{self.directory}: cannot write media here ({reason})") from None

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.directory):
            pass
        self.retention.scan()
        self._enforce()

    async def _run(self, function: Callable[..., object], *args: object) -> object:
        if self._executor is None:
            raise RuntimeError("MediaWriter used before start()")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def write(self, detection: Detection, audio: ClipAudio) -> DetectionMedia | None:
        """The detection's files, or None when they could not be written (logged)."""
        try:
            media = await self._run(self.write_now, detection, audio)
        except (AudioFileError, OSError, ValueError) as error:
            self.stats.failed += 1
            log.error("media write failed", id=detection.id, error=str(error))
            return None
        assert isinstance(media, DetectionMedia)
        return media

    def write_now(self, detection: Detection, audio: ClipAudio) -> DetectionMedia:
        """Synchronously, in the calling thread (the writer's; benchmarks call it directly)."""
        cpu, wall = time.thread_time(), time.perf_counter()
        summary = detection.summary
        feed, start = summary.feed.node, summary.start_utc

        def target(kind: str) -> tuple[Path, str]:
            relative = relative_file(feed, start, summary.id, kind)
            return self.directory / relative, media_url(relative)

        written: list[Path] = []
        urls: dict[str, str] = {}

        def audio_pair(clip: Clip, browser: str, archive: str) -> None:
            path, urls[archive] = target(archive)
            with atomic_path(path) as temporary:
                write_audio(temporary, clip.samples[None, :], clip.sample_rate)
            written.append(path)
            path, urls[browser] = target(browser)
            with atomic_path(path) as temporary:
                write_opus(temporary, clip.samples, clip.sample_rate, self.settings.opus_bit_rate)
            written.append(path)

        audio_pair(audio.raw, "audio", "audio_archive")
        if audio.denoised is not None:
            audio_pair(audio.denoised, "audio_denoised", "audio_denoised_archive")
        box = Box(
            summary.start_utc,
            summary.end_utc,
            getattr(summary, "low_freq_hz", None),
            getattr(summary, "high_freq_hz", None),
        )
        title = (
            f"{summary.feed.display_name} · {summary.label} · "
            f"score {wire_score(summary.score_max):.2f} · {summary.id}"
        )
        png = render_png(
            audio.raw.samples,
            audio.raw.sample_rate,
            audio.raw.start_utc,
            box,
            title,
            self.settings.spectrogram,
        )
        path, urls["spectrogram"] = target("spectrogram")
        atomic_write_bytes(path, png)
        written.append(path)
        self.retention.add(feed, day_folder(start), summary.id, written)
        self._enforce()
        self.stats.written += 1
        self.stats.cpu_s += time.thread_time() - cpu
        self.stats.wall_s += time.perf_counter() - wall
        return DetectionMedia(clip_start_utc=audio.raw.start_utc, **urls)

    def _enforce(self) -> None:
        removed = self.retention.enforce(utc_now())
        if removed:
            self.stats.removed += len(removed)
            log.info("media removed by the retention policy", detections=len(removed))
            if self.on_removed is not None:
                self.on_removed(removed)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
