"""From a ``Config`` to the objects the daemon runs (models, engine, event builders, outputs);
used by ``run`` and ``replay``. The config's sections are the components' own settings, so
there is nothing to translate: this module only builds things.

The model libraries are imported where the models are loaded, so that importing the daemon (or
the configuration) does not load torch."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.detect.builder import EventBuilder
from monitor.detect.records import FeedInfo, ModelIdentity, PipelineModels
from monitor.index.output import IndexOutput
from monitor.index.store import DetectionIndex
from monitor.inference.stream_denoise import StreamDenoiser, StreamDenoiseSettings
from monitor.publish.files import FileOutput, FileSettings
from monitor.publish.output import Output
from monitor.publish.redis import RedisHistory, RedisOutput, RedisSettings
from monitor.publish.websocket import WebsocketOutput

if TYPE_CHECKING:
    from models.classifier.ast import Classifier
    from monitor.config.loader import Config
    from monitor.inference.engine import InferenceEngine


def feed_info(config: Config, node: str) -> FeedInfo:
    for feed in config.feeds:
        if feed.node == node:
            return FeedInfo(node, feed.display_name, feed.latitude, feed.longitude)
    return FeedInfo.unknown(node)


@dataclass(frozen=True, slots=True)
class Models:
    classifier: Classifier
    denoiser: Any | None
    identity: PipelineModels


async def load_models(config: Config) -> Models:
    """Load the classifier (and denoiser) in a worker thread; errors say what is wrong."""
    from transformers.utils import logging as hf_logging

    from models.classifier.ast import load_classifier

    section = config.classifier
    hf_logging.disable_progress_bar()  # no progress bars in the daemon's log
    classifier = await asyncio.to_thread(
        load_classifier,
        section.source,
        "cpu",
        target_labels=list(section.target_labels),
        thresholds=dict(config.events.thresholds),
    )
    identity = PipelineModels(
        classifier=ModelIdentity(classifier.identity.name, f"sha256:{classifier.identity.sha256}")
    )
    denoiser = None
    checkpoint = config.denoiser.checkpoint
    if checkpoint is not None:
        from models.denoiser.checkpoint import load_denoiser

        denoiser = await asyncio.to_thread(load_denoiser, Path(checkpoint), "cpu")
        identity = PipelineModels(
            classifier=identity.classifier,
            denoiser=ModelIdentity(Path(checkpoint).name, f"sha256:{denoiser.checkpoint_sha256}"),
        )
    return Models(classifier, denoiser, identity)


def make_engine(config: Config, models: Models) -> InferenceEngine:
    from monitor.inference.engine import InferenceEngine

    return InferenceEngine(models.classifier, models.denoiser, config.engine)


def stream_denoiser_factory(
    engine: InferenceEngine, settings: StreamDenoiseSettings | None = None
) -> Callable[[], StreamDenoiser] | None:
    """Per-run stream denoisers through ``engine`` (each feed's audio denoised once), or None
    when the engine has no denoiser."""
    geometry = engine.denoise_geometry
    if geometry is None:
        return None
    grid_seconds, context_grids = geometry
    return functools.partial(StreamDenoiser, engine.denoise, grid_seconds, context_grids, settings)


def make_builder(config: Config, models: Models, node: str) -> EventBuilder:
    return EventBuilder(config.events, models.identity, {node: feed_info(config, node)})


def redis_settings(config: Config) -> RedisSettings | None:
    """The Redis output's settings, or None when it is switched off."""
    return config.redis if config.outputs.redis else None


def make_outputs(
    config: Config, *, websocket: bool = True, files_dir: Path | None = None
) -> list[Output]:
    """The configured outputs; ``files_dir`` alone means "only JSON lines + Raven there"."""
    if files_dir is not None:
        return [FileOutput(FileSettings(directory=files_dir))]
    outputs: list[Output] = []
    redis = redis_settings(config)
    if redis is not None:
        outputs.append(RedisOutput(redis))
    if websocket and config.outputs.websocket:
        history = RedisHistory(redis) if redis is not None else None
        outputs.append(WebsocketOutput(config.websocket, history))
    if config.outputs.files:
        outputs.append(FileOutput(config.files))
    if config.index.enabled:
        outputs.append(IndexOutput(DetectionIndex(config.index)))
    return outputs
