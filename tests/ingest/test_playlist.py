"""Both playlist generations, rolling playlists, numbering from file names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.ingest.playlist import PlaylistError, parse_playlist, segment_name, segment_number
from tests.support.synthetic_node import legacy_playlist, pdt_playlist

E = 1717761600  # 2024-06-07T12:00:00Z


def test_legacy_playlist_numbers_from_names_and_no_times():
    playlist = parse_playlist(legacy_playlist([0, 1, 2, 1000]))
    assert [e.number for e in playlist.entries] == [0, 1, 2, 1000]
    assert [e.uri for e in playlist.entries][-1] == "live1000.ts"
    assert all(e.program_date_time is None for e in playlist.entries)
    assert playlist.last_number == 1000
    assert not playlist.has_program_date_time
    assert playlist.program_date_times == {}
    assert not playlist.ended


def test_new_generation_pdt_between_extinf_and_uri_is_kept_as_utc():
    base = datetime(2024, 6, 7, 12, 0, 2, 123000, tzinfo=UTC)
    stamps = {n: base + timedelta(seconds=10 * n) for n in (5, 6, 7)}
    text = pdt_playlist([5, 6, 7], stamps, media_sequence=5)
    assert "-0700" in text  # written as local time with an offset, like the nodes do
    playlist = parse_playlist(text)
    assert playlist.media_sequence == 5
    assert [e.number for e in playlist.entries] == [5, 6, 7]
    for entry in playlist.entries:
        assert entry.program_date_time == stamps[entry.number]
        assert entry.program_date_time.utcoffset() == timedelta(0)


def test_rolling_playlist_number_is_not_position():
    playlist = parse_playlist(legacy_playlist([120, 121, 122, 123, 124], media_sequence=120))
    assert playlist.media_sequence == 120
    assert [e.number for e in playlist.entries] == [120, 121, 122, 123, 124]


def test_pdt_only_on_first_segment_is_not_extrapolated_by_extinf():
    text = (
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXTINF:10.005422,\n#EXT-X-PROGRAM-DATE-TIME:2024-06-07T05:00:02.000-0700\nlive000.ts\n"
        "#EXTINF:10.005422,\nlive001.ts\n"
    )
    playlist = parse_playlist(text)
    entries = playlist.entries
    assert entries[0].program_date_time == datetime(2024, 6, 7, 12, 0, 2, tzinfo=UTC)
    assert entries[1].program_date_time is None
    assert playlist.program_date_times == {0: datetime(2024, 6, 7, 12, 0, 2, tzinfo=UTC)}


def test_unknown_names_fall_back_to_media_sequence_plus_position():
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:10,\nseg-a.ts\n"
    assert parse_playlist(text).entries[0].number == 7


@pytest.mark.parametrize(
    "text",
    ["", "<html>403</html>", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/live.m3u8\n"],
)
def test_bad_playlists_are_clear_errors(text):
    with pytest.raises(PlaylistError):
        parse_playlist(text)


def test_segment_names_round_trip():
    assert segment_number("rpi_x/hls/1717761600/live123.ts") == 123
    assert segment_number("live007.ts") == 7
    assert segment_number("live.m3u8") is None
    assert segment_name(7) == "live007.ts"
    assert segment_name(12345) == "live12345.ts"
    with pytest.raises(ValueError):
        segment_name(-1)
