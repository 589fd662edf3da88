"""Helpers for the daemon tests: real segments from a signal, a tiny real classifier, a source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from models.classifier.ast import load_classifier
from monitor.detect.builder import EventBuilder, EventSettings
from monitor.detect.records import Message, ModelIdentity, PipelineModels
from monitor.detect.wire import encode
from monitor.inference.engine import EngineSettings, InferenceEngine
from monitor.ingest.slots import Segment, SegmentGap
from monitor.runtime.resume import ResumePoint
from tests.support.aac import as_segments, encode_segments, noise
from tests.support.classifier import save_tiny_ast

FOLDER_EPOCH = 1_717_761_600
LABEL = "Whale vocalization"


def tiny_checkpoint(directory: Path, max_length: int = 100) -> Path:
    """A random-init tiny AST whose window is ``max_length`` × 10 ms."""
    return save_tiny_ast(directory, max_length=max_length)


def tiny_engine(checkpoint: Path) -> InferenceEngine:
    classifier = load_classifier(checkpoint, "cpu", target_labels=[LABEL], thresholds=0.5)
    return InferenceEngine(
        classifier, None, EngineSettings(max_batch=8, max_wait_ms=5, num_threads=1)
    )


def builder(
    threshold: float, *, quiet_s: float = 3.0, max_duration_s: float = 300.0
) -> EventBuilder:
    settings = EventSettings(
        thresholds={LABEL: threshold},
        quiet_s=quiet_s,
        max_duration_s=max_duration_s,
        min_positive_windows=2,
    )
    return EventBuilder(settings, PipelineModels(ModelIdentity("tiny", "sha256:00")))


def noise_segments(
    seconds: float, feed: str = "rpi_test", seed: int = 0, bucket: str = "test-bucket"
) -> list[Segment]:
    """Real AAC/MPEG-TS segments of background noise, numbered from 0 in one folder."""
    datas = encode_segments(noise(seconds, level=0.05, seed=seed))
    return as_segments(datas, feed=feed, folder_epoch=FOLDER_EPOCH, bucket=bucket)


def list_source(items: Sequence[Segment | SegmentGap]):
    """A segment source over a list: opened from a resume point at that segment number."""
    opened: list[ResumePoint | None] = []

    async def open_segments(resume: ResumePoint | None) -> AsyncIterator[Segment | SegmentGap]:
        opened.append(resume)
        for item in items:
            if resume is not None and item.ref is not None and item.ref.number < resume.number:
                continue
            yield item

    open_segments.opened = opened  # type: ignore[attr-defined]
    return open_segments


class Collector:
    """An output that keeps what it is given (the real outputs are tested in their own tests
    and in the end-to-end tests)."""

    name = "collector"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def start(self) -> None:
        return None

    async def publish(self, message: Message) -> None:
        self.messages.append(encode(message))  # what the outputs write

    async def close(self) -> None:
        return None

    def detections(self, status: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m.get("kind") == "detection" and (status is None or m["status"] == status)
        ]
