"""The cooldown gate on real detections: one alert per feed and label per cooldown, opened and
closed together, feed status always through, the wrapped output's counters visible."""

from __future__ import annotations

from monitor.detect.records import Detection, Message
from monitor.publish.cooldown import Cooldown, CooldownOutput, CooldownSettings
from tests.support.detections import feed_status, make_builder, run_scores

CALL = [0.9, 0.9, 0.1, 0.1, 0.1]


def calls(count: int, **where: str) -> list[Detection]:
    """``count`` detections 5 s apart (opened + closed each) from one builder."""
    return run_scores(
        make_builder(thresholds={"humpback": 0.5, "orca": 0.5}), CALL * count, **where
    )


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.got: list[Message] = []
        self.stats = {"seen": 0}

    async def start(self) -> None: ...

    async def publish(self, message: Message) -> None:
        self.got.append(message)

    async def close(self) -> None: ...


def test_one_detection_per_cooldown_per_feed_and_label() -> None:
    gate = Cooldown(CooldownSettings(cooldown_s=12.0))
    humpback = calls(4)  # starts at 0, 5, 10, 15 s
    orca = calls(2, label="orca")
    elsewhere = calls(2, feed="rpi_bush_point")
    admitted = [m for m in humpback if gate.admit(m)]
    assert [m.summary.start_utc for m in admitted[::2]] == [
        humpback[0].summary.start_utc,
        humpback[6].summary.start_utc,  # the first one ≥ 12 s after the last passed one
    ]
    assert [m.status for m in admitted] == ["opened", "closed"] * 2
    assert gate.suppressed == 2
    # Other labels and feeds have their own cooldown.
    assert [gate.admit(m) for m in orca] == [True, True, False, False]
    assert [gate.admit(m) for m in elsewhere] == [True, True, False, False]


def test_older_audio_starts_a_fresh_cooldown() -> None:
    gate = Cooldown(CooldownSettings(cooldown_s=600.0))
    humpback = calls(2)
    assert [gate.admit(m) for m in humpback[2:]] == [True, True]
    assert [gate.admit(m) for m in humpback[:2]] == [True, True]  # started before: a replay


async def test_the_wrapper_passes_status_and_shows_the_inner_counters() -> None:
    inner = Recorder()
    output = CooldownOutput(inner, CooldownSettings(cooldown_s=600.0))
    status = feed_status("up")
    for message in [*calls(3), status]:
        await output.publish(message)
    assert [m.message_id for m in inner.got][-1] == status.message_id
    assert len(inner.got) == 3 and output.gate.suppressed == 2
    assert output.name == "recorder" and output.stats == {"seen": 0}


async def test_detections_not_considered_never_start_a_cooldown() -> None:
    inner = Recorder()
    first, second = calls(2)[::2]
    output = CooldownOutput(
        inner, CooldownSettings(cooldown_s=600.0), considers=lambda d: d.id != first.id
    )
    for message in calls(2):
        await output.publish(message)
    assert len(inner.got) == 4 and output.gate.suppressed == 0
    assert second.id != first.id
