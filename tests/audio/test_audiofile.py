"""Audio files through PyAV: WAV and FLAC round trips, real recordings, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.audio.audiofile import AudioFileError, read_audio, write_audio
from tests.support.aac import noise


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip_is_exact_to_16_bits(tmp_path: Path, suffix: str, channels: int) -> None:
    samples = np.clip(noise(1.3, 22050, channels, level=0.3, seed=channels), -1, 1)
    path = tmp_path / f"x{suffix}"
    write_audio(path, samples, 22050)
    back, rate = read_audio(path)
    assert rate == 22050
    assert back.dtype == np.float32 and back.shape == samples.shape
    assert np.abs(back - samples).max() <= 1 / 32767


def test_mono_vector_and_clipping(tmp_path: Path) -> None:
    path = tmp_path / "clip.WAV"
    write_audio(path, np.array([0.0, 2.0, -2.0, 0.5], dtype=np.float32), 8000)
    back, _ = read_audio(path)
    np.testing.assert_allclose(back[0], [0.0, 1.0, -1.0, 0.5], atol=1 / 32767)


def test_reads_real_recordings(humpback_calls: Path, hls_samples: Path) -> None:
    call, rate = read_audio(humpback_calls / "Buzz.wav")
    assert rate == 44100 and call.shape[0] == 2 and 0.5 * 44100 < call.shape[1] < 4.5 * 44100
    segment, rate = read_audio(hls_samples / "normal/live2008.ts")
    assert rate == 48000 and segment.shape == (2, 469 * 1024)


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such file"):
        read_audio(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.raises(AudioFileError, match=r"garbage\.wav"):
        read_audio(garbage)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"empty\.flac"):
        read_audio(empty)
    with pytest.raises(AudioFileError, match=r"\.wav or \.flac"):
        write_audio(tmp_path / "x.mp3", np.zeros((1, 10), np.float32), 8000)
    with pytest.raises(AudioFileError, match=r"1 or 2 channels"):
        write_audio(tmp_path / "x.wav", np.zeros((3, 10), np.float32), 8000)
    with pytest.raises(AudioFileError, match=r"cannot write"):
        write_audio(tmp_path / "no" / "dir" / "x.wav", np.zeros((1, 10), np.float32), 8000)
