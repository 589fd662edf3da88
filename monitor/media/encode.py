"""A clip as browser-playable Ogg/Opus (PyAV, libopus). FLAC goes through
``monitor.audio.audiofile.write_audio`` like every other lossless file the project writes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from monitor.audio.audiofile import AudioFileError

OPUS_RATES = (48000, 24000, 16000, 12000, 8000)


def write_opus(path: Path, samples: np.ndarray, sample_rate: int, bit_rate: int) -> None:
    """Mono float32 ``samples`` → Ogg/Opus at ``path`` (resampled to 48 kHz when Opus cannot
    take the rate as it is)."""
    mono = np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32)[None, :]
    rate = sample_rate if sample_rate in OPUS_RATES else 48000
    try:
        with av.open(str(path), "w", format="ogg") as container:
            stream = container.add_stream("libopus", rate=rate, layout="mono")
            stream.bit_rate = bit_rate
            frame = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = 0
            frames = [frame]
            if rate != sample_rate:
                resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
                frames = [*resampler.resample(frame), *resampler.resample(None)]
            for part in [*frames, None]:
                for packet in stream.encode(part):
                    container.mux(packet)
    except (av.FFmpegError, OSError) as error:
        raise AudioFileError(f"{path}: cannot write Opus ({error})") from error
