"""Audio files in and out with PyAV: any format FFmpeg reads; WAV (pcm_s16le) or FLAC written."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

WRITERS = {".wav": ("wav", "pcm_s16le", "s16"), ".flac": ("flac", "flac", "s16")}
_LAYOUTS = {1: "mono", 2: "stereo"}
_BLOCK = 4096


class AudioFileError(ValueError):
    """A file that cannot be read or written as audio; the message says which and why."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` → (float32 (channels, n), sample_rate)."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFileError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            blocks: list[np.ndarray] = []
            rate = 0
            for frame in container.decode(stream):
                rate = frame.sample_rate
                blocks.append(planar_float(frame))
    except av.FFmpegError as error:
        raise AudioFileError(f"{path}: cannot decode audio ({error})") from error
    if not blocks:
        raise AudioFileError(f"{path}: the audio stream holds no samples")
    return np.concatenate(blocks, axis=1), rate


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float32 (channels, n) or (n,) in [-1, 1] as 16-bit WAV or FLAC, by extension.

    Values outside [-1, 1] are clipped (16-bit cannot hold them)."""
    planar = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if planar.ndim != 2 or planar.shape[0] not in _LAYOUTS:
        raise AudioFileError(f"{path}: need (channels, n) with 1 or 2 channels, got {planar.shape}")
    with AudioWriter(path, sample_rate, planar.shape[0]) as writer:
        writer.write(planar)


class AudioWriter:
    """A WAV or FLAC file written block by block (long ranges never sit in memory whole).

    The container follows ``path``'s extension unless ``suffix`` names it (for writing under a
    temporary name)."""

    def __init__(
        self, path: str | Path, sample_rate: int, channels: int, *, suffix: str | None = None
    ) -> None:
        self.path = Path(path)
        suffix = (suffix or self.path.suffix).lower()
        writer = WRITERS.get(suffix)
        if writer is None:
            raise AudioFileError(
                f"{self.path}: write .wav or .flac, not {suffix or 'no extension'!r}"
            )
        if channels not in _LAYOUTS:
            raise AudioFileError(f"{self.path}: need 1 or 2 channels, got {channels}")
        if sample_rate <= 0:
            raise AudioFileError(f"{self.path}: bad sample rate {sample_rate}")
        container_format, codec, self._format = writer
        self.sample_rate = sample_rate
        self.channels = channels
        self.frames = 0
        self._layout = _LAYOUTS[channels]
        try:
            self._container = av.open(str(self.path), "w", format=container_format)
            self._stream = self._container.add_stream(codec, rate=sample_rate, layout=self._layout)
            self._stream.format = self._format
        except (av.FFmpegError, OSError) as error:
            raise AudioFileError(f"{self.path}: cannot write audio ({error})") from error

    def write(self, samples: np.ndarray) -> None:
        planar = np.atleast_2d(np.asarray(samples, dtype=np.float32))
        if planar.ndim != 2 or planar.shape[0] != self.channels:
            raise AudioFileError(
                f"{self.path}: need {self.channels} channel(s) of samples, got {planar.shape}"
            )
        # Same scale as reading (and FFmpeg): 1.0 ↔ 32768, so a round trip is exact to 16 bits.
        pcm = np.clip(np.round(planar * 32768.0), -32768, 32767).astype(np.int16)
        interleaved = np.ascontiguousarray(pcm.T).reshape(1, -1)  # packed s16: (1, n × channels)
        try:
            for begin in range(0, pcm.shape[1], _BLOCK):
                block = interleaved[:, begin * self.channels : (begin + _BLOCK) * self.channels]
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(block), format=self._format, layout=self._layout
                )
                frame.sample_rate = self.sample_rate
                frame.pts = self.frames
                self.frames += frame.samples
                self._container.mux(self._stream.encode(frame))
        except (av.FFmpegError, OSError) as error:
            raise AudioFileError(f"{self.path}: cannot write audio ({error})") from error

    def close(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except (av.FFmpegError, OSError) as error:
            raise AudioFileError(f"{self.path}: cannot finish the file ({error})") from error

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def planar_float(frame: av.AudioFrame) -> np.ndarray:
    """Any PyAV sample format → float32 (channels, n) in [-1, 1]."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    if array.dtype == np.uint8:  # unsigned: silence is 128
        return (array.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / (float(np.iinfo(array.dtype).max) + 1.0)
    return np.ascontiguousarray(array, dtype=np.float32)
