"""From a ``Config`` to the components' own settings and objects (one place, used by ``run``
and ``replay``).

The config sections and the components' settings classes may differ in names (the config is
the operator's vocabulary); ``adapt`` copies the fields both share and takes explicit values
for the rest, and passes a section through unchanged once it *is* the component's class.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from transformers.utils import logging as hf_logging

from models.classifier.ast import Classifier, load_classifier
from models.engine import EngineSettings, InferenceEngine
from monitor.audio.decoder import DecoderSettings
from monitor.audio.windows import WindowSettings
from monitor.events.builder import EventBuilder, EventSettings
from monitor.events.identity import FeedInfo, ModelIdentity, PipelineModels
from monitor.hls.follower import FollowerSettings
from monitor.hls.s3 import S3Settings
from monitor.outputs.base import Output
from monitor.outputs.files import FileOutput, FileSettings
from monitor.outputs.redis import RedisHistory, RedisOutput, RedisSettings
from monitor.outputs.websocket import WebsocketOutput, WebsocketSettings

T = TypeVar("T")


def adapt(target: type[T], section: Any, **explicit: Any) -> T:
    """``target`` built from the fields ``section`` shares with it, then ``explicit`` values."""
    if isinstance(section, target):
        return dataclasses.replace(section, **explicit) if explicit else section
    names = {f.name for f in dataclasses.fields(target)}  # type: ignore[arg-type]
    values = {name: getattr(section, name) for name in names if hasattr(section, name)}
    values.update({k: v for k, v in explicit.items() if k in names})
    return target(**values)


def s3_settings(config: Any) -> S3Settings:
    section = config.s3
    return adapt(S3Settings, section, anonymous=getattr(section, "unsigned", True))


def follower_settings(config: Any) -> FollowerSettings:
    section = config.follower
    extra = {}
    if hasattr(section, "segment_grace_s"):
        extra["missing_grace_s"] = section.segment_grace_s
    return adapt(FollowerSettings, section, **extra)


def decoder_settings(config: Any, node: str | None = None) -> DecoderSettings:
    """The config's channel words: "mix" (all), "best" (the live channels), or an index."""
    section = config.decoder
    if isinstance(section, DecoderSettings):
        return section
    channel = str(getattr(section, "channel", "best"))
    if node is not None and hasattr(config, "channel_for"):
        with contextlib.suppress(KeyError):  # a feed not in the config: the decoder default
            channel = config.channel_for(node)
    policy: Any = {"mix": "mix", "best": "auto", "auto": "auto"}.get(channel)
    if policy is None:
        policy = int(channel)
    return DecoderSettings(channel_policy=policy)


def decoder_workers(config: Any) -> int:
    return int(getattr(config.decoder, "workers", 2))


def window_settings(config: Any, classifier_window_s: float) -> WindowSettings:
    section = config.windows
    length = getattr(section, "length_s", None) or classifier_window_s
    return WindowSettings(length_s=length, hop_s=section.hop_s)


def ring_seconds(config: Any) -> float:
    return float(getattr(config.windows, "ring_seconds", 120.0))


def engine_settings(config: Any) -> EngineSettings:
    section = config.engine
    extra = {}
    if hasattr(section, "torch_threads"):
        extra["num_threads"] = section.torch_threads
    return adapt(EngineSettings, section, **extra)


def label_thresholds(config: Any) -> dict[str, float]:
    classifier = config.classifier
    merged = dict.fromkeys(classifier.target_labels, float(classifier.default_threshold))
    merged.update({k: float(v) for k, v in classifier.thresholds.items()})
    return merged


def event_settings(config: Any) -> EventSettings:
    section = config.events
    if isinstance(section, EventSettings):
        return section
    feed_thresholds = {feed.node: dict(feed.thresholds) for feed in config.feeds if feed.thresholds}
    return EventSettings(
        thresholds=label_thresholds(config),
        feed_thresholds=feed_thresholds,
        quiet_s=float(getattr(section, "close_after_s", 10.0)),
        max_duration_s=float(getattr(section, "max_duration_s", 300.0)),
        min_positive_windows=getattr(section, "min_windows", None),
    )


def feed_info(config: Any, node: str) -> FeedInfo:
    for feed in config.feeds:
        if feed.node == node:
            return FeedInfo(node, feed.display_name, feed.latitude, feed.longitude)
    return FeedInfo.unknown(node)


@dataclass(frozen=True, slots=True)
class Models:
    classifier: Classifier
    denoiser: Any | None
    identity: PipelineModels


async def load_models(config: Any) -> Models:
    """Load the classifier (and denoiser) in a worker thread; errors say what is wrong."""
    section = config.classifier
    hf_logging.disable_progress_bar()  # no progress bars in the daemon's log
    classifier = await asyncio.to_thread(
        load_classifier,
        section.source,
        "cpu",
        target_labels=list(section.target_labels),
        thresholds=label_thresholds(config),
    )
    identity = PipelineModels(
        classifier=ModelIdentity(classifier.identity.name, f"sha256:{classifier.identity.sha256}")
    )
    denoiser = None
    checkpoint = getattr(config.denoiser, "checkpoint", None)
    if checkpoint is not None:
        from models.denoiser.checkpoint import load_denoiser

        denoiser = await asyncio.to_thread(load_denoiser, Path(checkpoint), "cpu")
        identity = PipelineModels(
            classifier=identity.classifier,
            denoiser=ModelIdentity(Path(checkpoint).name, f"sha256:{denoiser.checkpoint_sha256}"),
        )
    return Models(classifier, denoiser, identity)


def make_engine(config: Any, models: Models) -> InferenceEngine:
    return InferenceEngine(models.classifier, models.denoiser, engine_settings(config))


def make_builder(config: Any, models: Models, node: str) -> EventBuilder:
    return EventBuilder(event_settings(config), models.identity, {node: feed_info(config, node)})


def redis_settings(config: Any) -> RedisSettings | None:
    section = config.redis
    if isinstance(section, RedisSettings):
        return section
    if not getattr(section, "url", None):
        return None
    spool_dir = Path(getattr(section, "spool_dir", "var/spool"))
    return adapt(
        RedisSettings,
        section,
        stream_key=getattr(section, "stream", RedisSettings.stream_key),
        spool_path=spool_dir / "redis.sqlite3",
    )


def make_outputs(
    config: Any, *, websocket: bool = True, files_dir: Path | None = None
) -> list[Output]:
    """The configured outputs; ``files_dir`` alone means "only JSON lines + Raven there"."""
    if files_dir is not None:
        return [FileOutput(FileSettings(directory=files_dir))]
    outputs: list[Output] = []
    redis = redis_settings(config)
    if redis is not None:
        outputs.append(RedisOutput(redis))
    ws = config.websocket
    if websocket and getattr(ws, "enabled", True):
        history = RedisHistory(redis) if redis is not None else None
        outputs.append(WebsocketOutput(adapt(WebsocketSettings, ws), history))
    files = config.files
    if getattr(files, "enabled", True):
        directory = getattr(files, "dir", None) or getattr(files, "directory", None)
        outputs.append(FileOutput(adapt(FileSettings, files, directory=Path(directory))))
    return outputs
