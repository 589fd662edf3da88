"""The classifier recipe's lr schedule and its saved front end."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.classifier.ast import load_classifier
from training.detector_eval import Rules, detections
from training.manifest import write_manifest
from training.open_audio import open_audio_clips
from training.step_settings import load_settings, read_config
from training.train_classifier import (
    TrainClassifierSettings,
    learning_rate,
    run_train_classifier,
)

ROOT = Path(__file__).resolve().parents[2]


def test_warmup_then_cosine_decay() -> None:
    settings = TrainClassifierSettings(lr=1e-3, schedule="cosine", warmup_fraction=0.1)
    rates = [learning_rate(settings, step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4)
    assert rates[9] == pytest.approx(1e-3)
    assert rates[10] == pytest.approx(1e-3)
    assert rates[55] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert 0 < rates[-1] < 1e-5
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))


def test_constant_schedule_keeps_the_lr() -> None:
    settings = TrainClassifierSettings(lr=3e-4)
    assert {learning_rate(settings, step, 50) for step in range(50)} == {3e-4}


def test_unknown_schedule_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    write_manifest(manifest, open_audio_clips())
    with pytest.raises(ValueError, match="schedule must be constant or cosine"):
        run_train_classifier(TrainClassifierSettings(schedule="step"), tmp_path / "c", manifest)


def test_event_spans_from_window_scores() -> None:
    scores = np.array([0.1] * 5 + [0.9] * 3 + [0.1] * 10)
    spans = detections(scores, 1.0, 5.12, Rules(0.5, 2, 3.0))
    assert len(spans) == 1
    start, end = spans[0]
    assert start == pytest.approx(5.0)
    assert end > start


@pytest.mark.slow
def test_median_front_end_is_saved_with_the_model_and_used_when_loaded(tmp_path: Path) -> None:
    config = read_config(ROOT / "config" / "training.toml")
    recipe = load_settings(TrainClassifierSettings, config, "train_classifier")
    recipe = replace(
        recipe,
        epochs=1,
        mix_windows_per_epoch=8,
        batch_size=8,
        frequency_normalization="median",
    )
    manifest = tmp_path / "manifest.csv"
    write_manifest(manifest, open_audio_clips())
    folder = run_train_classifier(recipe, tmp_path / "classifier", manifest)
    saved = json.loads((folder / "preprocessor_config.json").read_text())
    assert saved["frequency_normalization"] == "median"
    classifier = load_classifier(folder, "cpu", target_labels=["humpback"])
    assert classifier.features.params.frequency_normalization == "median"
