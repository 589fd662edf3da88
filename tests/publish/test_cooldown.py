from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.detect.records import FeedInfo
from monitor.detect.wire import feed_status_message
from monitor.publish.cooldown import Cooldown, CooldownOutput, CooldownSettings
from monitor.publish.fanout import Fanout
from monitor.publish.files import FileOutput, FileSettings
from tests.support.detections import (
    T0,
    checked,
    detection_series,
    make_builder,
    window,
)


def written(output: FileOutput) -> list[str]:
    lines = output.jsonl_path(T0).read_text().splitlines()
    return [json.loads(line)["message_id"] for line in lines]


async def test_notifications_are_thinned_per_feed_and_label_while_others_get_all(
    tmp_path: Path,
) -> None:
    lab = detection_series(8)  # four detections starting 5 s apart
    bush = detection_series(8, feed="rpi_bush_point")
    status = feed_status_message(FeedInfo("rpi_bush_point", "Bush Point"), "Up", T0, emitted_utc=T0)
    messages = checked([*lab[:4], *bush[:4], status, *lab[4:], *bush[4:]])
    everything = FileOutput(FileSettings(directory=tmp_path / "all", fsync=False))
    notify = CooldownOutput(
        FileOutput(FileSettings(directory=tmp_path / "notify", fsync=False, raven=False)),
        CooldownSettings(cooldown_s=8.0),
        name="notify",
    )
    fanout = Fanout([everything, notify])
    await fanout.start()
    for message in messages:
        await fanout.publish(message)
    await fanout.close()

    assert written(everything) == [m["message_id"] for m in messages]
    # Starts 0, 5, 10, 15 s: 0 passes, 5 is within 8 s, 10 passes (10 s after 0), 15 does not.
    expected = [
        m["message_id"]
        for m in messages
        if m["kind"] == "feed_status"
        or (m["start_epoch_ms"] - lab[0]["start_epoch_ms"]) % 10_000 == 0
    ]
    assert written(notify.inner) == expected
    assert notify.gate.suppressed == 4  # two detections on each feed, counted once each


def test_opened_and_closed_are_passed_or_held_together() -> None:
    # humpback: detections at 0 s and 5 s; orca: one at 2 s, open while humpback opens/closes.
    builder = make_builder(thresholds={"humpback": 0.5, "orca": 0.5})
    humpback = [0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]
    orca = [0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]
    messages = []
    for index, (hb, oc) in enumerate(zip(humpback, orca, strict=True)):
        messages += builder.observe(window(index), {"humpback": hb, "orca": oc})
    messages = checked(messages)
    assert [m["label"][0] + m["status"][0] for m in messages] == [
        "ho", "oo", "hc", "ho", "oc", "hc"
    ]  # fmt: skip
    gate = Cooldown(CooldownSettings(cooldown_s=30.0))
    passed = [m for m in messages if gate.admit(m)]
    first = messages[0]["id"]
    orca_id = messages[1]["id"]
    assert [(m["id"], m["status"]) for m in passed] == [
        (first, "opened"), (orca_id, "opened"), (first, "closed"), (orca_id, "closed")
    ]  # fmt: skip
    assert gate.suppressed == 1


def test_zero_cooldown_passes_everything_and_bad_settings_are_refused() -> None:
    messages = detection_series(8)
    gate = Cooldown(CooldownSettings(cooldown_s=0.0))
    assert all(gate.admit(m) for m in messages) and gate.suppressed == 0
    with pytest.raises(ValueError, match="cooldown_s"):
        CooldownSettings(cooldown_s=-1.0)
