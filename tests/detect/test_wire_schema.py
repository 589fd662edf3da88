from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from monitor.detect.records import FeedInfo
from monitor.detect.schema import schema_errors, validate_message
from monitor.detect.wire import feed_status_message
from tests.support.detections import T0, detection_series

SCHEMAS = Path(__file__).resolve().parents[2] / "monitor" / "schemas"


@pytest.mark.parametrize("name", ["detection.schema.json", "feed_status.schema.json"])
def test_schema_files_are_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(json.loads((SCHEMAS / name).read_text()))


def test_builder_messages_match_the_schema_and_survive_json() -> None:
    messages = detection_series(6)
    assert len(messages) == 6
    for message in messages:
        assert schema_errors(json.loads(json.dumps(message))) == []


def test_schema_catches_broken_messages() -> None:
    good = detection_series(2)[1]
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


def test_feed_status_message_matches_its_schema() -> None:
    feed = FeedInfo("rpi_orcasound_lab", "Orcasound Lab", 48.5583, -123.1735)
    message = feed_status_message(
        feed,
        "Unintelligible",
        T0,
        emitted_utc=T0 + timedelta(seconds=30),
        details={"hum_ratio": 0.97, "channels": [1, 2]},
    )
    validate_message(message)
    assert message["since_utc"] == "2024-06-07T12:00:00.000Z"
    with pytest.raises(ValueError, match="bad feed state"):
        feed_status_message(feed, "Sleepy", T0, emitted_utc=T0)
