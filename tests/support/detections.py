"""Helpers for the detect/publish tests: real Windows in, schema-checked records out.

The builder's ``Detection`` records (and ``feed_status`` records made here) are what the
outputs take; ``wire`` gives the dicts the outputs write, to compare what came out with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from monitor.audio.chunks import SourceSpan, Window
from monitor.detect.builder import EventBuilder, EventSettings
from monitor.detect.records import (
    Detection,
    FeedInfo,
    FeedState,
    FeedStatus,
    Message,
    ModelIdentity,
    PipelineModels,
)
from monitor.detect.schema import validate_message
from monitor.detect.wire import encode
from monitor.ingest.slots import SegmentRef

T0 = datetime(2024, 6, 7, 12, 0, 0, tzinfo=UTC)
FOLDER = 1717761598  # T0 − 2 s, so segment N starts at T0 + 10·N s
BUCKET = "audio-orcasound-net"
RATE = 16_000
MODELS = PipelineModels(
    classifier=ModelIdentity("ast-tiny-humpback", "sha256:" + "ab" * 32),
    denoiser=ModelIdentity("orca-clean-tiny", "sha256:" + "cd" * 32),
)
FEEDS = {
    "rpi_orcasound_lab": FeedInfo("rpi_orcasound_lab", "Orcasound Lab", 48.5583, -123.1735),
    "rpi_bush_point": FeedInfo("rpi_bush_point", "Bush Point", 48.0336, -122.6040),
}


def sources_for(feed: str, start: datetime, length_s: float) -> tuple[SourceSpan, ...]:
    """The segments (10 s grid from T0) that a window [start, start+length) reads."""
    spans = []
    offset = (start - T0).total_seconds() % 86_400
    end = offset + length_s
    while offset < end - 1e-9:
        number = int(offset // 10)
        within = offset - 10 * number
        take = min(10 - within, end - offset)
        ref = SegmentRef(BUCKET, f"{feed}/hls/{FOLDER}/live{number:03d}.ts", FOLDER, number)
        spans.append(SourceSpan(ref, within, take))
        offset += take
    return tuple(spans)


def window(
    index: float,
    *,
    feed: str = "rpi_orcasound_lab",
    hop_s: float = 1.0,
    length_s: float = 2.0,
    contains_gap: bool = False,
    origin: datetime = T0,
) -> Window:
    start = origin + timedelta(seconds=index * hop_s)
    return Window(
        feed=feed,
        start_utc=start,
        sample_rate=RATE,
        samples=np.zeros(int(length_s * RATE), dtype=np.float32),
        hop_s=hop_s,
        sources=sources_for(feed, start, length_s),
        contains_gap=contains_gap,
    )


def make_builder(clock_offset_s: float = 0.5, **settings: Any) -> EventBuilder:
    settings.setdefault("thresholds", {"humpback": 0.5})
    settings.setdefault("quiet_s", 3.0)
    settings.setdefault("min_positive_windows", 2)
    # A clock that runs just behind the windows: latency is small and positive.
    builder = EventBuilder(EventSettings(**settings), MODELS, FEEDS)
    builder.clock = lambda: (
        max([end for feed in FEEDS if (end := builder.last_audio_end(feed)) is not None] or [T0])
        + timedelta(seconds=clock_offset_s)
    )
    return builder


M = TypeVar("M", bound=Message)


def checked(messages: Iterable[M]) -> list[M]:
    """Every message a test produces is validated against its schema (encoded) here."""
    out = list(messages)
    for message in out:
        validate_message(encode(message))
    return out


def wire(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """What the outputs write for ``messages``."""
    return [encode(message) for message in messages]


def feed_status(
    state: str,
    since: datetime = T0,
    *,
    feed: FeedInfo | None = None,
    emitted: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> FeedStatus:
    """A feed-status record as the health monitor makes them (previous state: unknown)."""
    return FeedStatus(
        feed=feed or FEEDS["rpi_orcasound_lab"],
        state=FeedState(state),
        previous=FeedState.UNKNOWN,
        since_utc=since,
        emitted_utc=emitted or since,
        details=details or {},
    )


def run_scores(
    builder: EventBuilder,
    scores: Sequence[float | None],
    *,
    feed: str = "rpi_orcasound_lab",
    label: str = "humpback",
    hop_s: float = 1.0,
    gap_windows: Sequence[int] = (),
    flush: bool = False,
    origin: datetime = T0,
) -> list[Detection]:
    """Feed one window per score (``None`` = window skipped: a gap) and collect messages."""
    out: list[Detection] = []
    for index, score in enumerate(scores):
        if score is None:
            continue
        w = window(index, feed=feed, hop_s=hop_s, contains_gap=index in gap_windows, origin=origin)
        out += builder.observe(w, {label: score}, scored_utc=w.end_utc + timedelta(seconds=0.2))
    if flush:
        out += builder.flush()
    return checked(out)


def detection_series(count: int, *, feed: str = "rpi_orcasound_lab") -> list[Detection]:
    """``count`` real detections (opened + closed pairs) from the builder."""
    builder = make_builder()
    scores: list[float | None] = []
    for i in range((count + 1) // 2):
        peak = 0.6 + 0.3 * (i % 2)
        scores += [peak, peak, 0.1, 0.1, 0.1]
    messages = run_scores(builder, scores, feed=feed)
    assert len(messages) >= count
    return messages[:count]
