"""The end-to-end scenario: a node whose stream is real Orcasound background with real humpback
calls mixed in at known UTC times, and a tiny AST classifier fine-tuned on exactly that material.

Everything is real: the background is the decoded Orcasound segments of tests/data, the calls are
the catalogue recordings, the stream is re-encoded as continuous AAC/MPEG-TS like a node's, and
the classifier is trained here for a few dozen steps and saved as a transformers checkpoint that
the daemon loads through ``load_classifier``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
import torch
import torchaudio
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

from models.classifier.features import FeatureExtractor, FeatureParams
from monitor.ingest import demo_node
from monitor.ingest.demo_node import (  # noqa: F401  (the scenario's records)
    BACKGROUND_RMS,
    CALL_RMS,
    RATE,
    MixedCall,
    Stream,
    legacy_playlist,
)
from tests.support.synthetic_node import SyntheticNode

DATA = Path(__file__).resolve().parents[1] / "data"
MODEL_RATE = 16_000
LABEL = "humpback"
WINDOW_S = 1.0  # the tiny model's window: max_length 100 frames of 10 ms
HOP_S = 0.5


def background() -> np.ndarray:
    """The real Orcasound segments, each levelled to the same RMS, back to back (mono, 48 kHz)."""
    return demo_node.background(DATA / "orcasound-hls" / "normal", BACKGROUND_RMS)


def calls() -> dict[str, np.ndarray]:
    """The catalogue calls, mono, at 48 kHz, levelled to ``CALL_RMS``."""
    return demo_node.calls(DATA / "humpback-calls", CALL_RMS)


def build_stream(
    folder_epoch: int, seconds: float, placed: list[tuple[str, float]], rotate: int = 0
) -> Stream:
    """``seconds`` of background (starting ``rotate`` background segments in) with each call
    ``(name, offset_s)`` added at that offset from the stream's start."""
    return demo_node.build_stream(
        folder_epoch, seconds, placed, bed=background(), clips=calls(), rotate=rotate
    )


def train_classifier(out: Path, *, steps: int = 120, seed: int = 0) -> Path:
    """Fine-tune a tiny AST (random init) on 1 s windows of calls-in-background vs background,
    and save it (weights + feature extractor config) where ``load_classifier`` reads it."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = ASTConfig(
        patch_size=4,
        frequency_stride=4,
        time_stride=4,
        max_length=round(WINDOW_S * 100),
        num_mel_bins=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        id2label={0: "background", 1: LABEL},
        label2id={"background": 0, LABEL: 1},
        problem_type="single_label_classification",
    )
    extractor = ASTFeatureExtractor(num_mel_bins=16, max_length=config.max_length)
    features = FeatureExtractor(FeatureParams.from_extractor(extractor))
    resample = functools.partial(
        torchaudio.functional.resample, orig_freq=RATE, new_freq=MODEL_RATE
    )
    bed = resample(torch.from_numpy(background())).numpy()
    clips = [resample(torch.from_numpy(clip)).numpy() for clip in calls().values()]
    width = round(WINDOW_S * MODEL_RATE)
    windows, labels = [], []
    for i in range(640):
        at = int(rng.integers(0, bed.shape[0] - width))
        window = bed[at : at + width].copy()
        label = 0
        if i % 2 == 0:
            clip = clips[int(rng.integers(len(clips)))]
            offset = int(rng.integers(-clip.shape[0] + 1, width))
            lo, hi = max(offset, 0), min(offset + clip.shape[0], width)
            window[lo:hi] += clip[lo - offset : hi - offset]
            overlap_s = (hi - lo) / MODEL_RATE
            # A window is a call window when it holds a good part of the call.
            label = int(overlap_s >= min(0.5, 0.5 * clip.shape[0] / MODEL_RATE))
        windows.append(window)
        labels.append(label)
    with torch.no_grad():
        inputs = features(torch.from_numpy(np.stack(windows)))
    targets = torch.tensor(labels)
    model = ASTForAudioClassification(config)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = torch.randint(0, inputs.shape[0], (32,))
        loss = model(input_values=inputs[batch], labels=targets[batch]).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    return out


def config_toml(
    *,
    endpoint: str,
    bucket: str,
    node: str,
    classifier: Path,
    workdir: Path,
    redis_url: str | None = None,
    redis_stream: str = "hydromon:test",
    ws_port: int = 0,
    http_port: int = 0,
    state_dir: Path | None = None,
    extra_nodes: tuple[str, ...] = (),
    supervisor_backoff_s: float = 1.0,
    health_tick_s: float = 5.0,
    quiet_s: float = 2.0,
) -> str:
    """A complete config file for the scenario (every path under ``workdir``)."""
    lines = [
        "[s3]",
        f'bucket = "{bucket}"',
        f'endpoint_url = "{endpoint}"',
        "max_attempts = 2",
        "[follower]",
        "poll_interval_s = 0.1",
        "quiet_after_arrival_s = 0.0",
        "missing_grace_s = 30.0",
        "[daemon]",
        "decoder_threads = 1",
        f"health_tick_s = {health_tick_s}",
        "[windows]",
        f"hop_s = {HOP_S}",
        "[classifier]",
        f"source = {json.dumps(str(classifier))}",
        f'target_labels = ["{LABEL}"]',
        "default_threshold = 0.5",
        "[engine]",
        'device = "cpu"',
        "max_wait_ms = 5.0",
        "num_threads = 1",
        "[events]",
        "min_positive_windows = 2",
        f"quiet_s = {quiet_s}",
        "[outputs]",
        f"redis = {'true' if redis_url else 'false'}",
        "[redis]",
        *([f'url = "{redis_url}"'] if redis_url else []),
        f'stream_key = "{redis_stream}"',
        f'channel = "{redis_stream}"',
        f"spool_path = {json.dumps(str(workdir / 'spool' / 'redis.sqlite3'))}",
        "[websocket]",
        f"port = {ws_port}",
        "[files]",
        f"directory = {json.dumps(str(workdir / 'detections'))}",
        "[http]",
        f"port = {http_port}",
        "[index]",
        f"path = {json.dumps(str(workdir / 'index.sqlite'))}",
        "[media]",
        f"directory = {json.dumps(str(workdir / 'media'))}",
        "[state]",
        *([f"dir = {json.dumps(str(state_dir))}"] if state_dir else []),
        "[supervisor]",
        f"initial_backoff_s = {supervisor_backoff_s}",
        f"max_backoff_s = {supervisor_backoff_s * 4}",
    ]
    for name in (node, *extra_nodes):
        lines += ["[[feeds]]", f'node = "{name}"', f'name = "Test {name}"']
    return "\n".join(lines) + "\n"


def write_config(
    workdir: Path, endpoint: str, bucket: str, node: str, classifier: Path, **options: Any
) -> Path:
    """``config_toml`` for the scenario, written to ``workdir / "hydromon.toml"``."""
    path = workdir / "hydromon.toml"
    path.write_text(
        config_toml(
            endpoint=endpoint,
            bucket=bucket,
            node=node,
            classifier=classifier,
            workdir=workdir,
            **options,
        )
    )
    return path


async def publish(node: SyntheticNode, stream: Stream, numbers: range) -> None:
    """Uploads the stream's segments ``numbers``, then the playlist listing all up to them."""
    for number in numbers:
        await node.put(
            node.key(stream.folder_epoch, f"live{number:03d}.ts"), stream.segments[number]
        )
    await node.put(node.key(stream.folder_epoch, "live.m3u8"), playlist(range(numbers.stop)))


async def redis_messages(url: str, key: str) -> list[dict[str, Any]]:
    """Every message published on the Redis stream ``key``, oldest first."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        rows = await client.xrange(key)
    finally:
        await client.aclose()
    return [json.loads(fields["message"]) for _id, fields in rows]


def playlist(numbers: range) -> str:
    return legacy_playlist(numbers)
