"""make default-model's recipe, reduced to seconds through its settings, makes a bundle that
load_bundle accepts, with the cross-validation and event rules in bundle.json."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from models.bundle import load_bundle
from training.default_model import DefaultModelSettings, run_default_model
from training.step_settings import load_settings, read_config
from training.train_classifier import TrainClassifierSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_reduced_default_model_recipe_makes_a_loadable_bundle(tmp_path: Path) -> None:
    config = read_config(ROOT / "config" / "training.toml")
    recipe = load_settings(TrainClassifierSettings, config, "train_classifier")
    recipe = replace(recipe, epochs=1, mix_windows_per_epoch=16, batch_size=8)
    settings = load_settings(DefaultModelSettings, config, "default_model")
    settings = replace(
        settings, folds=("chirp",), background_hours=0.01, snrs_db=(10.0,), repeats=1
    )
    folder = run_default_model(recipe, settings, tmp_path / "work", tmp_path / "default")
    bundle = load_bundle(folder)
    assert bundle.target_labels == ("humpback",)
    assert bundle.window_s == 5.12
    assert set(bundle.events) == {"min_positive_windows", "quiet_s"}
    cv = bundle.metrics["cross_validation"]
    assert [row["call_type"] for row in cv["per_type"]] == ["chirp"]
    assert bundle.thresholds["humpback"] == cv["rules"]["threshold"]
    assert (folder / "PROVENANCE.md").read_text().count("humpback call") == 7
