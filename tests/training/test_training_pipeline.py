"""The whole offline pipeline on a tiny catalogue in an emulated bucket:
fetch → prepare → noise-refine → train-denoiser → denoise → train-classifier → evaluate →
export → load_bundle → score a window with the daemon's inference engine.

Real audio (Orcasound noise + humpback calls), real S3 protocol (moto server), real models with
tiny configs. Two steps are interrupted on purpose and resumed."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from models.bundle import load_bundle
from models.classifier.ast import load_classifier
from models.denoiser import load_denoiser, read_checkpoint
from monitor.inference.engine import EngineSettings, InferenceEngine
from tests.support.humpback_catalogue import build_catalogue, upload_catalogue
from tests.support.services import MotoServer
from tests.support.tiny_ast import TINY, save_tiny_ast
from training.audio import load_mono
from training.denoise import DenoiseSettings, run_denoise
from training.evaluate import EvaluateSettings, run_evaluate
from training.export import ExportSettings, run_export
from training.fetch_catalogue import FetchSettings, run_fetch
from training.manifest import read_manifest
from training.noise_refine import NoiseRefineSettings, run_noise_refine
from training.prepare import PrepareSettings, run_prepare
from training.steprun import StepInterrupted
from training.train_classifier import TrainClassifierSettings, run_train_classifier
from training.train_denoiser import TrainDenoiserSettings, run_train_denoiser

RATE = 16000  # everything at the classifier's rate keeps the tiny run fast


def units(folder: Path) -> list[str]:
    lines = (folder / "progress.jsonl").read_text().splitlines()
    return [json.loads(line)["unit"] for line in lines]


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(
    moto_server: MotoServer, bucket_name: str, data_dir: Path, tmp_path: Path
) -> None:
    build_catalogue(data_dir, tmp_path / "catalogue")
    upload_catalogue(moto_server.endpoint_url, bucket_name, tmp_path / "catalogue")
    runs = tmp_path / "runs"

    fetched = run_fetch(
        FetchSettings(bucket=bucket_name, endpoint_url=moto_server.endpoint_url), runs / "fetch"
    )

    prepare = PrepareSettings(
        sample_rate=RATE, noise_margin_s=1.0, min_class_count=2, window_step_s=2.0
    )
    with pytest.raises(StepInterrupted):
        run_prepare(prepare, runs / "prepare", fetched, max_units=1)
    assert units(runs / "prepare") == ["OS_10_03_2021_19_34_00_"]
    first_clips = sorted((runs / "prepare" / "clips" / "OS_10_03_2021_19_34_00_").iterdir())
    stamps = [p.stat().st_mtime_ns for p in first_clips]
    manifest = run_prepare(prepare, runs / "prepare", fetched)
    assert units(runs / "prepare") == [
        "OS_10_03_2021_19_34_00_",
        "OS_10_05_2021_11_20_00_",
        "OS_10_28_2021_1900_HB",
    ]  # A not redone
    assert [p.stat().st_mtime_ns for p in first_clips] == stamps
    clips = read_manifest(manifest)
    splits_of = defaultdict(set)
    for clip in clips:
        splits_of[clip.recording].add(clip.split)
    assert all(len(s) == 1 for s in splits_of.values())  # no recording in two splits
    assert sorted(next(iter(s)) for s in splits_of.values()) == ["test", "train", "val"]
    labels = json.loads((runs / "prepare" / "labels.json").read_text())
    assert labels["clean_label_counts"] == {"Ascending_moan": 3, "Chirp": 3, "Growl": 2, "Moan": 1}
    assert labels["label_map"]["Moan"] == "other_call"
    assert {c.kind for c in clips} == {"call", "noise", "window"}
    assert all(c.sample_rate == RATE for c in clips)
    assert len(load_mono(clips[0].path, RATE)) == 5 * RATE

    kept = run_noise_refine(
        NoiseRefineSettings(folds=3, epochs=2, width=4, n_mels=16, flag_threshold=1.01),
        runs / "refine",
        manifest,
    )
    report = json.loads((runs / "refine" / "report.json").read_text())
    noise_clips = [c for c in clips if c.kind == "noise"]
    assert report["scored"] == len(noise_clips) and report["flagged"] == []  # nothing is ≥ 1.01
    assert len(read_manifest(kept)) == len(clips)
    assert "Noise refinement" in (runs / "refine" / "report.md").read_text()

    denoiser_settings = TrainDenoiserSettings(
        base_width=4, sample_rate=RATE, fmax=8000.0, n_fft=512, hop_length=160, n_freq_bins=64,
        frames=64, batch_size=4, epochs=2, steps_per_epoch=2, validate_every=1,
    )  # fmt: skip
    with pytest.raises(StepInterrupted):
        run_train_denoiser(denoiser_settings, runs / "denoiser", kept, max_units=1)
    assert (runs / "denoiser" / "denoiser_epoch_00001.checkpoint").is_file()
    final = run_train_denoiser(denoiser_settings, runs / "denoiser", kept)
    assert units(runs / "denoiser") == ["epoch1", "epoch2"]
    assert any(
        json.loads(line)["event"] == "resumed"
        for line in (runs / "denoiser" / "train_denoiser.log").read_text().splitlines()
    )
    contents = read_checkpoint(final)
    assert contents.format == "final" and contents.base_width == 4 and contents.options.sr == RATE
    epoch = read_checkpoint(runs / "denoiser" / "denoiser_epoch_00002.checkpoint")
    assert epoch.format == "epoch"

    denoised = run_denoise(DenoiseSettings(batch_size=64), runs / "denoised", kept, final)
    twins = read_manifest(denoised)
    assert [c.clip_id for c in twins] == [c.clip_id for c in clips]
    raw_audio, clean_audio = load_mono(clips[0].path, RATE), load_mono(twins[0].path, RATE)
    assert raw_audio.shape == clean_audio.shape and not np.allclose(raw_audio, clean_audio)

    pretrained = save_tiny_ast(
        tmp_path / "pretrained", ["Speech", "Whale vocalization", "Music"], 1024, multi_label=True
    )
    classifier_settings = TrainClassifierSettings(
        source=str(pretrained), max_length=512, epochs=2, batch_size=8, freq_mask=4, time_mask=20,
        scratch_config=TINY,
    )  # fmt: skip
    with pytest.raises(StepInterrupted):
        run_train_classifier(classifier_settings, runs / "classifier-raw", kept, max_units=1)
    best_raw = run_train_classifier(classifier_settings, runs / "classifier-raw", kept)
    assert units(runs / "classifier-raw") == ["epoch1", "epoch2"]
    best_denoised = run_train_classifier(
        classifier_settings, runs / "classifier-denoised", denoised
    )
    params = json.loads((runs / "classifier-raw" / "params.json").read_text())
    assert params["summary"]["origin"] == f"pretrained:{pretrained}"
    assert (best_raw / "preprocessor_config.json").is_file()
    assert (runs / "classifier-raw" / "last" / "model.safetensors").is_file()

    metrics_path = run_evaluate(
        EvaluateSettings(baseline=str(pretrained), device="cpu"),
        runs / "evaluate",
        kept,
        best_raw,
        denoised=denoised,
        denoised_classifier=best_denoised,
    )
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics["models"]) == {
        "baseline_zero_shot", "finetuned_raw", "finetuned_on_denoised_audio", "trained_on_denoised",
    }  # fmt: skip
    test_clips = [c for c in clips if c.split == "test" and c.kind in ("call", "noise")]
    for result in metrics["models"].values():
        assert result["clips"] == len(test_clips)
        assert 0.0 <= result["detector"]["average_precision"] <= 1.0
        assert np.array(result["classification"]["confusion_matrix"]).sum() == len(test_clips)
    assert (runs / "evaluate" / "pr_finetuned_raw.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "pr_detectors.png" in metrics["figures"] and len(metrics["figures"]) == 9
    assert "finetuned_on_denoised_audio" in (runs / "evaluate" / "report.md").read_text()

    bundle_dir = run_export(
        ExportSettings(model="finetuned_on_denoised_audio", hop_s=2.0),
        runs / "export",
        best_raw,
        runs / "evaluate",
        denoiser=final,
    )
    bundle = load_bundle(bundle_dir)
    assert bundle.target_labels == ("humpback",) and bundle.hop_s == 2.0
    threshold = metrics["models"]["finetuned_on_denoised_audio"]["thresholds"]["humpback"]
    assert bundle.thresholds == {"humpback": threshold["threshold"]}
    assert bundle.window_s == pytest.approx(5.12) and bundle.denoiser_sample_rate == RATE
    assert bundle.denoiser_path is not None

    async def score() -> dict[str, float]:
        classifier = load_classifier(
            bundle.classifier_dir, "cpu", target_labels=bundle.target_labels,
            thresholds=bundle.thresholds,
        )  # fmt: skip
        engine = InferenceEngine(
            classifier, load_denoiser(bundle.denoiser_path), EngineSettings(device="cpu")
        )
        engine.start()
        try:
            await engine.wait_ready()
            window = load_mono(test_clips[0].path, RATE)
            return await engine.score(window, RATE)
        finally:
            await engine.stop()

    scores = asyncio.run(score())
    assert set(scores) == {"humpback"} and 0.0 <= scores["humpback"] <= 1.0

    # The call-type head: noise + each call type of the training split, from scratch.
    call_types = run_train_classifier(
        TrainClassifierSettings(
            source="", scratch_config=TINY, task="call_type", max_length=512, epochs=1,
            freq_mask=4, time_mask=20,
        ),
        runs / "classifier-types",
        kept,
    )  # fmt: skip
    type_labels = json.loads((call_types / "config.json").read_text())["id2label"]
    train_types = {c.label for c in clips if c.split == "train" and c.binary == 1}
    assert sorted(type_labels.values()) == sorted({"noise", *train_types})
    typed = json.loads(
        run_evaluate(
            EvaluateSettings(baseline="", device="cpu", figures=False),
            runs / "evaluate-types",
            kept,
            call_types,
        ).read_text()
    )["models"]["finetuned_raw"]
    assert typed["classification"]["labels"][0] == "noise"
    present = {c.label for c in test_clips if c.binary == 1} & train_types
    assert present and set(typed["thresholds"]) == present
