"""Media per detection: real audio from a ring buffer to FLAC, Ogg/Opus and a spectrogram PNG,
read back with the project's decoder and Pillow; atomic files, retention, failures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.audio.audiofile import read_audio
from monitor.audio.chunks import AudioChunk
from monitor.audio.ring import RingBuffer, RingBufferSettings
from monitor.detect.records import Detection
from monitor.ingest import demo_node
from monitor.ingest.slots import SegmentRef
from monitor.media.capture import Clip, ClipAudio, clip_audio
from monitor.media.layout import media_path
from monitor.media.writer import MediaSettings, MediaWriter
from tests.support.detections import T0, detection_series

DATA = Path(__file__).resolve().parents[1] / "data"
RATE = 48_000


def real_audio(seconds: float) -> np.ndarray:
    """Real Orcasound background with a real humpback call in it (mono, 48 kHz)."""
    bed = demo_node.background(DATA / "orcasound-hls" / "normal")
    samples = np.resize(bed, round(seconds * RATE)).astype(np.float32)
    voice = demo_node.calls(DATA / "humpback-calls")["Growl"][: samples.shape[0] // 2]
    samples[RATE : RATE + voice.shape[0]] += voice
    return samples


def ring_with(samples: np.ndarray, start: object = T0) -> RingBuffer:
    ring = RingBuffer("rpi_orcasound_lab", RingBufferSettings(120.0, RATE))
    ref = SegmentRef("bucket", "rpi_orcasound_lab/hls/1/live000.ts", 1, 0)
    ring.write(AudioChunk("rpi_orcasound_lab", start, RATE, samples[None, :], ref))
    return ring


def closed_detection() -> Detection:
    closed = detection_series(2)[1]
    assert closed.status == "closed"
    return closed


@pytest.fixture
async def writer(tmp_path: Path) -> MediaWriter:
    writer = MediaWriter(MediaSettings(directory=tmp_path / "media", margin_s=1.0))
    await writer.start()
    yield writer
    await writer.close()


async def test_a_closed_detection_gets_flac_opus_and_a_spectrogram(writer: MediaWriter) -> None:
    detection = closed_detection()
    summary = detection.summary
    samples = real_audio(30.0)
    ring = ring_with(samples, summary.start_utc - timedelta(seconds=5))
    audio = clip_audio(ring, None, summary.start_utc, summary.end_utc, 1.0)
    assert audio is not None and audio.denoised is None
    expected_s = (summary.end_utc - summary.start_utc).total_seconds() + 2.0
    assert audio.raw.duration_s == pytest.approx(expected_s, abs=1e-3)

    media = await writer.write(detection, audio)
    assert media is not None
    day = f"{summary.start_utc:%Y-%m-%d}"
    assert media.audio == f"media/rpi_orcasound_lab/{day}/{summary.id}.ogg"
    assert media.audio_denoised is None

    flac, flac_rate = read_audio(media_path(writer.directory, media.audio_archive))
    assert flac_rate == RATE
    np.testing.assert_allclose(flac[0], audio.raw.samples, atol=1 / 32768 + 1e-6)
    opus, opus_rate = read_audio(media_path(writer.directory, media.audio))
    assert opus_rate == RATE
    assert opus.shape[1] / RATE == pytest.approx(expected_s, abs=0.05)
    # lossy, but the same sound: the loudness matches within 1 dB
    ratio = np.sqrt(np.mean(opus[0] ** 2) / np.mean(audio.raw.samples**2))
    assert abs(20 * np.log10(ratio)) < 1.0

    png = media_path(writer.directory, media.spectrogram)
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.width > 900 and image.height > 300
        rgb = np.asarray(image.convert("RGB"))
    cyan = np.all(rgb == (0, 255, 255), axis=2)  # the detection box
    assert cyan.sum() > 500
    assert not list(writer.directory.rglob(".*"))  # no temporary file left
    assert writer.stats.written == 1 and writer.stats.cpu_s > 0


async def test_both_versions_when_a_denoiser_ran(writer: MediaWriter) -> None:
    detection = closed_detection()
    summary = detection.summary
    raw = real_audio(30.0)
    start = summary.start_utc - timedelta(seconds=5)
    denoised = ring_with(raw * 0.5, start)
    audio = clip_audio(denoised, ring_with(raw, start), summary.start_utc, summary.end_utc, 1.0)
    assert audio is not None and audio.denoised is not None
    media = await writer.write(detection, audio)
    assert media is not None and media.audio_denoised is not None
    loud = read_audio(media_path(writer.directory, media.audio_archive))[0]
    quiet = read_audio(media_path(writer.directory, media.audio_denoised_archive))[0]
    assert np.abs(quiet).max() == pytest.approx(np.abs(loud).max() / 2, rel=0.01)


def test_the_clip_is_cut_to_what_the_ring_holds() -> None:
    detection = closed_detection()
    summary = detection.summary
    ring = ring_with(real_audio(4.0), summary.start_utc + timedelta(seconds=0.5))
    audio = clip_audio(ring, None, summary.start_utc, summary.end_utc, 2.0)
    assert audio is not None
    assert audio.raw.start_utc == summary.start_utc + timedelta(seconds=0.5)
    late = ring_with(real_audio(4.0), summary.end_utc + timedelta(seconds=30))
    assert clip_audio(late, None, summary.start_utc, summary.end_utc, 2.0) is None


async def test_retention_removes_the_oldest_detections_first(tmp_path: Path) -> None:
    forgotten: list[str] = []
    writer = MediaWriter(
        MediaSettings(directory=tmp_path / "media", max_gb=1.2e6 / 1e9),
        on_removed=forgotten.extend,
    )
    await writer.start()
    try:
        detections = [m for m in detection_series(12) if m.status == "closed"]
        for detection in detections:
            summary = detection.summary
            audio = ClipAudio(Clip(real_audio(6.0), RATE, summary.start_utc))
            assert await writer.write(detection, audio) is not None
        kept = sorted(path.name.split(".")[0] for path in writer.directory.rglob("*.png"))
        assert forgotten, "1.2 MB holds fewer than six detections' files"
        assert forgotten == [d.id for d in detections[: len(forgotten)]]  # the oldest first
        assert kept == [d.id for d in detections[len(forgotten) :]]
        assert writer.retention.total_bytes <= 1.2e6
        assert writer.stats.removed == len(forgotten)
    finally:
        await writer.close()
    # a new writer counts what is on disk already
    again = MediaWriter(MediaSettings(directory=tmp_path / "media"))
    await again.start()
    assert len(again.retention) == len(kept)
    await again.close()


async def test_a_write_that_fails_gives_no_media(writer: MediaWriter) -> None:
    detection = closed_detection()
    folder = writer.directory / "rpi_orcasound_lab"
    folder.mkdir(parents=True)
    (folder / f"{detection.summary.start_utc:%Y-%m-%d}").write_text("a file where a folder goes")
    audio = ClipAudio(Clip(real_audio(3.0), RATE, T0))
    assert await writer.write(detection, audio) is None
    assert writer.stats.failed == 1


async def test_an_unwritable_folder_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "media").write_text("not a folder")
    writer = MediaWriter(MediaSettings(directory=tmp_path / "media"))
    with pytest.raises(Exception, match="cannot write media here"):
        await writer.start()
