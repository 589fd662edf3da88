from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from monitor.detect.records import Detection, FeedInfo, FeedState, FeedStatus, Species
from monitor.detect.schema import schema_errors, validate_message
from monitor.detect.wire import encode
from monitor.health.feed_state import FeedHealth, HealthSettings
from monitor.publish.files import FileOutput, FileSettings
from tests.support.detections import T0, detection_series, feed_status, make_builder, window

SCHEMAS = Path(__file__).resolve().parents[2] / "monitor" / "schemas"
# Written by the dict-building code this encoder replaced (commit 38fe7a5), from the scenario
# below: the wire must not change by a byte.
GOLDEN = Path(__file__).resolve().parent / "golden"
LAB = FeedInfo("rpi_orcasound_lab", "Orcasound Lab", 48.5583, -123.1735)


@pytest.mark.parametrize("name", ["detection.schema.json", "feed_status.schema.json"])
def test_schema_files_are_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(json.loads((SCHEMAS / name).read_text()))


def test_builder_messages_match_the_schema_and_survive_json() -> None:
    messages = detection_series(6)
    assert len(messages) == 6
    for message in messages:
        assert schema_errors(json.loads(json.dumps(encode(message)))) == []


def test_schema_catches_broken_messages() -> None:
    good = encode(detection_series(2)[1])
    broken = copy.deepcopy(good)
    broken["start_utc"] = "2024-06-07 12:00:00"
    broken["score"]["max"] = 1.5
    del broken["provenance"]
    errors = schema_errors(broken)
    assert any(e.startswith("start_utc") for e in errors)
    assert any(e.startswith("score/max") for e in errors)
    assert any("provenance" in e for e in errors)
    with pytest.raises(ValueError, match="does not match its schema"):
        validate_message(broken)
    assert schema_errors({"kind": "gossip"}) == ["unknown message kind 'gossip'"]
    future = copy.deepcopy(good)
    future["schema_version"] = 2
    assert schema_errors(future)


def test_feed_status_matches_its_schema() -> None:
    status = feed_status(
        "unintelligible",
        T0,
        feed=LAB,
        emitted=T0 + timedelta(seconds=30),
        details={"hum_ratio": 0.97, "channels": [1, 2]},
    )
    message = encode(status)
    validate_message(message)
    assert message["state"] == "Unintelligible"
    assert message["since_utc"] == "2024-06-07T12:00:00.000Z"
    assert message["message_id"] == status.message_id
    with pytest.raises(ValueError, match="Sleepy"):
        feed_status("Sleepy")


# ---- the golden scenario: odd (sub-millisecond) times, two labels, a gap, a split, a flush ----

ODD = T0 + timedelta(microseconds=123_456)


def golden_detections() -> list[Detection]:
    builder = make_builder(
        clock_offset_s=0.2345678,
        max_duration_s=6.0,
        species={"humpback": Species("humpback whale", "Megaptera novaeangliae", 180529)},
        thresholds={"humpback": 0.5, "other": 0.3},
    )
    scores = [0.61234567, 0.9876543, 0.7, 0.8, 0.2, *[0.95] * 9, *[0.1] * 6, 0.55555555, 0.66666666]
    scores.append(0.1)
    out: list[Detection] = []
    for i, score in enumerate(scores):
        if i in (16, 17):
            continue  # a gap
        w = window(i, hop_s=0.5, length_s=2.0, origin=ODD, contains_gap=i == 5)
        scored = w.end_utc + timedelta(microseconds=201_234)
        out += builder.observe(w, {"humpback": score, "other": 1 - score}, scored_utc=scored)
        if i == 7:
            bush = window(i, feed="rpi_bush_point", hop_s=0.5, origin=ODD)
            out += builder.observe(bush, {"humpback": 0.9, "other": 0.0})
    return out + builder.flush()


def golden_statuses(ids: list[str]) -> list[FeedStatus]:
    """The health changes as the daemon publishes them (its feed info; ids from the golden)."""
    health = FeedHealth("rpi_orcasound_lab", HealthSettings(lagged_after_s=60))
    now = T0 + timedelta(microseconds=987_654)
    changes = [
        health.note_latest_missing(now),
        health.note_playlist(now - timedelta(seconds=5), now + timedelta(seconds=1)),
        health.note_processed(now, now + timedelta(seconds=2, microseconds=999_600)),
        health.evaluate(now + timedelta(seconds=200, microseconds=1500)),
    ]
    published = [c for c in changes if c is not None and c.state is not FeedState.UNKNOWN]
    return [
        dataclasses.replace(change, feed=LAB, message_id=ident)
        for change, ident in zip(published, ids, strict=True)
    ]


def test_the_wire_is_byte_for_byte_what_it_was(tmp_path: Path) -> None:
    golden = (GOLDEN / "messages.jsonl").read_text().splitlines(keepends=True)
    detections = golden_detections()
    old_ids = [json.loads(line)["message_id"] for line in golden[len(detections) :]]
    records = [*detections, *golden_statuses(old_ids)]
    lines = [json.dumps(encode(record), separators=(",", ":")) + "\n" for record in records]
    assert lines == golden

    output = FileOutput(FileSettings(directory=tmp_path, fsync=False))

    async def write() -> None:
        await output.start()
        for record in records:
            await output.publish(record)
        await output.close()

    asyncio.run(write())
    assert output.jsonl_path(T0).read_text() == "".join(golden)
    raven = output.raven_path("rpi_orcasound_lab", T0).read_text()
    assert raven == (GOLDEN / "raven.selections.txt").read_text()
