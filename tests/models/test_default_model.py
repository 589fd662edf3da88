"""The embedded default detector: config/default.toml's classifier loads offline through the
one model-loading path and scores real audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.bundle import load_bundle
from models.classifier.ast import load_classifier
from monitor.audio.audiofile import read_audio
from monitor.config.loader import load_config
from training.audio import resample

ROOT = Path(__file__).resolve().parents[2]
SEGMENT = ROOT / "tests" / "data" / "orcasound-hls" / "normal" / "live385.ts"


def test_default_config_uses_the_embedded_bundle_offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(ROOT)
    config = load_config(ROOT / "config" / "default.toml", env={})
    bundle = load_bundle(ROOT / "models" / "default")
    assert Path(config.classifier.source).resolve() == bundle.classifier_dir.resolve()
    assert config.classifier.target_labels == ("humpback",)
    assert config.classifier.thresholds == bundle.thresholds
    assert config.windows.length_s == bundle.window_s
    assert config.windows.hop_s == bundle.hop_s
    # The event rules the evaluation chose travel with the bundle.
    assert bundle.events
    assert config.events.min_positive_windows == bundle.events["min_positive_windows"]
    assert config.events.quiet_s == bundle.events["quiet_s"]
    classifier = load_classifier(
        config.classifier.source, target_labels=list(config.classifier.target_labels)
    )
    samples, rate = read_audio(SEGMENT)
    wave = resample(samples.mean(axis=0), rate, classifier.sample_rate)
    window = np.ascontiguousarray(wave[: classifier.window_samples])
    scores = classifier.score(torch.from_numpy(window)[None])
    assert scores.shape == (1, 1)
    assert 0.0 <= float(scores[0, 0]) <= 1.0


def test_embedded_bundle_is_small_and_carries_its_licence_and_provenance() -> None:
    folder = ROOT / "models" / "default"
    bundle = load_bundle(folder)
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 5 * 2**20
    assert {"LICENSE-training-audio.txt", "PROVENANCE.md"} <= set(bundle.files)
    cv = bundle.metrics["cross_validation"]
    assert cv["types"] == 7
    assert len(cv["per_type"]) == 7
