"""Orcasound ``live.m3u8`` playlists, both generations, parsed with the m3u8 library.

Legacy nodes (ffmpeg segment muxer) write ``#EXT-X-TARGETDURATION:11`` and ``#EXTINF:10.005422``
with no wall-clock tags; newer nodes (ffmpeg hls muxer) put ``#EXT-X-PROGRAM-DATE-TIME`` (local
time with an offset) between ``#EXTINF`` and the URI. Some playlists roll (MEDIA-SEQUENCE > 0).
A segment's number always comes from its file name, never from its position; neither
TARGETDURATION nor EXTINF is used for timing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import m3u8

from monitor.ingest.numbers import MAX_SEGMENT_NUMBER, parse_segment_number

_SEGMENT_NAME = re.compile(r"(?:^|/)live([0-9]+)\.ts$")


class PlaylistError(ValueError):
    """Text that is not an HLS media playlist."""


@dataclass(frozen=True, slots=True)
class PlaylistEntry:
    uri: str
    number: int
    program_date_time: datetime | None  # aware UTC, only when the tag is on this segment


@dataclass(frozen=True, slots=True)
class Playlist:
    media_sequence: int
    entries: tuple[PlaylistEntry, ...]
    ended: bool

    @property
    def last_number(self) -> int | None:
        return max((entry.number for entry in self.entries), default=None)

    @property
    def has_program_date_time(self) -> bool:
        return any(entry.program_date_time is not None for entry in self.entries)

    @property
    def program_date_times(self) -> dict[int, datetime]:
        """PROGRAM-DATE-TIME by segment number, for the segments that carry the tag."""
        return {e.number: e.program_date_time for e in self.entries if e.program_date_time}


def segment_number(name: str) -> int | None:
    """``live123.ts`` (or a key ending in it) → 123; anything else, and numbers out of range
    (see ``bad_segment_name``), → None."""
    match = _SEGMENT_NAME.search(name)
    return parse_segment_number(match.group(1)) if match else None


def bad_segment_name(name: str) -> bool:
    """A ``liveNNN.ts`` name whose number is out of range (more than 7 digits): not a segment
    the nodes wrote, to be logged and counted, never parsed."""
    match = _SEGMENT_NAME.search(name)
    return match is not None and parse_segment_number(match.group(1)) is None


def segment_name(number: int) -> str:
    """The file name the nodes give segment ``number``: at least three digits."""
    if number < 0:
        raise ValueError(f"segment numbers are >= 0, got {number}")
    return f"live{number:03d}.ts"


def parse_playlist(text: str) -> Playlist:
    if not text.lstrip().startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist: missing #EXTM3U header")
    try:
        parsed = m3u8.loads(text)
    except Exception as error:  # m3u8 raises assorted errors on malformed tags
        raise PlaylistError(f"unparseable playlist: {error}") from error
    if parsed.is_variant:
        raise PlaylistError("a master (variant) playlist, not a media playlist")
    sequence = int(parsed.media_sequence or 0)
    if not 0 <= sequence <= MAX_SEGMENT_NUMBER:
        raise PlaylistError(f"EXT-X-MEDIA-SEQUENCE out of range: {str(sequence)[:20]}")
    if sequence + len(parsed.segments) > MAX_SEGMENT_NUMBER + 1:
        raise PlaylistError(f"more than {MAX_SEGMENT_NUMBER + 1} segments")
    entries = []
    for position, item in enumerate(parsed.segments):
        uri = str(item.uri)
        if bad_segment_name(uri):
            raise PlaylistError(f"segment number out of range: {uri[:40]}…")
        number = segment_number(uri)
        if number is None:
            # Not a liveNNN.ts name: the playlist's own numbering is the next best thing.
            number = sequence + position
        # Only the explicit tag: m3u8 extrapolates `current_program_date_time` by EXTINF sums,
        # which drifts (10.005422 s per segment against a true average of 10.000 s).
        pdt = item.program_date_time
        if pdt is not None and pdt.tzinfo is None:
            raise PlaylistError(f"PROGRAM-DATE-TIME without a UTC offset on {uri}")
        entries.append(
            PlaylistEntry(
                uri=uri,
                number=number,
                program_date_time=pdt.astimezone(UTC) if pdt is not None else None,
            )
        )
    return Playlist(media_sequence=sequence, entries=tuple(entries), ended=bool(parsed.is_endlist))
