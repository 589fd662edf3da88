"""Where a detection's files live: ``<media.directory>/<feed>/<day>/<id><suffix>``, served at
``/media/<feed>/<day>/<id><suffix>`` (the messages carry that path without the leading slash)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath

MEDIA_ROUTE = "media"

# suffix of each file, by the name the message and the API give it
SUFFIXES = {
    "audio": ".ogg",
    "audio_archive": ".flac",
    "spectrogram": ".png",
    "audio_denoised": ".denoised.ogg",
    "audio_denoised_archive": ".denoised.flac",
}


def day_folder(start_utc: datetime) -> str:
    return f"{start_utc:%Y-%m-%d}"


def relative_file(feed: str, start_utc: datetime, detection_id: str, kind: str) -> PurePosixPath:
    return PurePosixPath(feed, day_folder(start_utc), detection_id + SUFFIXES[kind])


def media_url(relative: PurePosixPath) -> str:
    return f"{MEDIA_ROUTE}/{relative.as_posix()}"


def media_path(directory: Path, url: str) -> Path:
    """The file behind a media URL; ``ValueError`` for anything outside ``directory``."""
    parts = PurePosixPath(url.lstrip("/")).parts
    if len(parts) != 4 or parts[0] != MEDIA_ROUTE or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a media file: {url!r}")
    return directory.joinpath(*parts[1:])
