"""Raven selection tables: the columns and one row per closed detection, from its wire message
(the files output and ``hydromon export`` write the same rows).

Tables open as they are in Raven, crowsetta and OpenSoundscape: frequencies are floats (the
detection's band when the detector gives one, ``low_freq_hz``/``high_freq_hz``, else the
configured band), the label column is ``Call Type`` (what ``hydromon train prepare`` reads by
default), and ``Begin File`` / ``File Offset (s)`` name the detection's FLAC clip and where in it
the detection begins (both empty without media)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from monitor.timebase import parse_utc

RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Call Type",
    "Begin File",
    "File Offset (s)",
    "Score Max",
    "Score Mean",
    "Positive Windows",
    "Begin UTC",
    "End UTC",
    "Detection Id",
)
HEADER = "\t".join(RAVEN_COLUMNS) + "\n"


def band(message: dict[str, Any], low_hz: float, high_hz: float) -> tuple[float, float]:
    """The box's band: the detector's (when the message has one), else the given one."""
    low, high = message.get("low_freq_hz"), message.get("high_freq_hz")
    return (low_hz if low is None else float(low)), (high_hz if high is None else float(high))


def clip_of(message: dict[str, Any]) -> tuple[str, float] | None:
    """The FLAC clip's file name and the detection's offset in it, or None without media."""
    media = message.get("media")
    if not media:
        return None
    start = parse_utc(message["start_utc"])
    offset = (start - parse_utc(media["clip_start_utc"])).total_seconds()
    return media["audio_archive"].rsplit("/", 1)[-1], max(0.0, offset)


def raven_row(
    selection: int,
    message: dict[str, Any],
    origin: datetime,
    band_hz: tuple[float, float],
    *,
    times_in_clip: bool = False,
) -> str:
    """One tab-separated line. Times are seconds from ``origin`` (the table's day), or, with
    ``times_in_clip``, from the start of the clip (a table that annotates the clip itself)."""
    start, end = parse_utc(message["start_utc"]), parse_utc(message["end_utc"])
    clip = clip_of(message)
    if times_in_clip:
        if clip is None:
            raise ValueError(f"detection {message['id']} has no clip to annotate")
        origin = start - timedelta(seconds=clip[1])

    def seconds(moment: datetime) -> str:
        return f"{(moment - origin) / timedelta(seconds=1):.3f}"

    row = [
        str(selection),
        "Spectrogram 1",
        "1",
        seconds(start),
        seconds(end),
        f"{band_hz[0]:.1f}",
        f"{band_hz[1]:.1f}",
        message["label"],
        "" if clip is None else clip[0],
        "" if clip is None else f"{clip[1]:.3f}",
        f"{message['score']['max']:.4f}",
        f"{message['score']['mean']:.4f}",
        str(message["positive_window_count"]),
        message["start_utc"],
        message["end_utc"],
        message["id"],
    ]
    return "\t".join(row) + "\n"
