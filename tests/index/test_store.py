"""The SQLite detection index: idempotent writes, newest-first paging, filters, reviews."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.detect.records import DetectionMedia
from monitor.detect.wire import encode
from monitor.index.store import BadCursor, DetectionIndex, DetectionQuery, IndexSettings
from tests.support.detections import T0, detection_series, feed_status


@pytest.fixture
def index(tmp_path: Path) -> DetectionIndex:
    index = DetectionIndex(IndexSettings(path=tmp_path / "index.sqlite"))
    index.open()
    yield index
    index.close()


def test_closed_replaces_opened_and_never_the_reverse(index: DetectionIndex) -> None:
    opened, closed = detection_series(2)
    assert (opened.status, closed.status) == ("opened", "closed")
    index.put(encode(opened))
    assert index.detection(opened.id)["status"] == "opened"
    index.put(encode(closed))
    index.put(encode(opened))  # a late or repeated "opened" (spool redelivery)
    stored = index.detection(opened.id)
    assert stored["status"] == "closed"
    assert stored["media"] is None and stored["review"] is None
    assert index.counts()["detections"] == 1


def test_pages_newest_first_with_a_cursor_and_filters(index: DetectionIndex) -> None:
    messages = detection_series(12) + detection_series(6, feed="rpi_bush_point")
    index.put_many(encode(m) for m in messages)
    assert index.counts()["detections"] == 9
    seen: list[str] = []
    cursor = None
    while True:
        page = index.detections(DetectionQuery(), limit=4, cursor=cursor)
        seen += [d["id"] for d in page.detections]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    starts = [index.detection(i)["start_epoch_ms"] for i in seen]
    assert len(seen) == len(set(seen)) == 9
    assert starts == sorted(starts, reverse=True)

    bush = index.detections(DetectionQuery(feeds=frozenset({"rpi_bush_point"})), limit=50)
    assert {d["feed"]["node"] for d in bush.detections} == {"rpi_bush_point"}
    assert len(bush.detections) == 3
    strong = index.detections(DetectionQuery(min_score=0.85), limit=50).detections
    assert strong and all(d["score"]["max"] >= 0.85 for d in strong)
    late = index.detections(DetectionQuery(since=T0 + timedelta(seconds=10)), limit=50)
    assert all(d["start_epoch_ms"] >= (T0.timestamp() + 10) * 1000 for d in late.detections)
    assert 0 < len(late.detections) < 9
    with pytest.raises(BadCursor):
        index.detections(DetectionQuery(), limit=4, cursor="not-a-cursor!")


def test_reviews_and_forgotten_media(index: DetectionIndex) -> None:
    closed = detection_series(2)[1]
    media = DetectionMedia("media/a.ogg", "media/a.flac", "media/a.png", T0)
    index.put(encode(dataclasses.replace(closed, media=media)))
    assert index.detection(closed.id)["media"] == {
        **media.urls(),
        "clip_start_utc": "2024-06-07T12:00:00.000Z",
    }
    updated = index.review(closed.id, "confirmed", "clear upsweep", T0)
    assert updated is not None
    assert updated["review"] == {
        "verdict": "confirmed",
        "note": "clear upsweep",
        "reviewed_utc": "2024-06-07T12:00:00.000Z",
    }
    assert index.review("0190f5d5-0000-7000-8000-000000000000", "rejected", "", T0) is None
    with pytest.raises(ValueError, match="verdict"):
        index.review(closed.id, "maybe", "", T0)
    confirmed = index.detections(DetectionQuery(verdicts=frozenset({"confirmed"})), limit=5)
    assert [d["id"] for d in confirmed.detections] == [closed.id]
    index.forget_media([closed.id])
    assert index.detection(closed.id)["media"] is None


def test_feed_status_history(index: DetectionIndex) -> None:
    up = feed_status("up", T0)
    silent = feed_status("silent", T0 + timedelta(minutes=5))
    for message in (up, silent, up):
        index.put(encode(message))
    history = index.feed_history("rpi_orcasound_lab")
    assert [m["state"] for m in history] == ["Silent", "Up"]
    assert index.latest_feed_status()["rpi_orcasound_lab"]["state"] == "Silent"
