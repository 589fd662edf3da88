"""load_bundle verifies the format version, the fields and the checksum of every file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.bundle import BUNDLE_FORMAT, BundleError, bundle_files, config_values, load_bundle


def make_bundle(folder: Path) -> Path:
    (folder / "classifier").mkdir(parents=True)
    (folder / "classifier" / "config.json").write_text(
        json.dumps(
            {
                "model_type": "audio-spectrogram-transformer",
                "id2label": {"1": "humpback", "0": "noise"},
            }
        )
    )
    (folder / "classifier" / "preprocessor_config.json").write_text(
        json.dumps({"sampling_rate": 16000, "max_length": 512, "num_mel_bins": 128})
    )
    (folder / "classifier" / "model.safetensors").write_bytes(b"weights")
    (folder / "denoiser.pk").write_bytes(b"denoiser")
    manifest = {
        "format_version": BUNDLE_FORMAT,
        "labels": ["noise", "humpback"],
        "target_labels": ["humpback"],
        "thresholds": {"humpback": 0.7},
        "window_s": 5.12,
        "hop_s": 1.0,
        "sample_rates": {"classifier": 16000, "denoiser": 44100},
        "metrics": {"average_precision": 0.9},
        "provenance": {"data": "test"},
        "files": bundle_files(folder),
    }
    (folder / "bundle.json").write_text(json.dumps(manifest))
    return folder


def rewrite(folder: Path, **changes: object) -> None:
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest.update(changes)
    (folder / "bundle.json").write_text(json.dumps(manifest))


def test_a_good_bundle_loads(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle(tmp_path / "b"))
    assert bundle.target_labels == ("humpback",) and bundle.thresholds == {"humpback": 0.7}
    assert bundle.denoiser_path == tmp_path / "b" / "denoiser.pk"
    assert bundle.denoiser_sample_rate == 44100 and bundle.classifier_sample_rate == 16000
    assert set(bundle.files) == {
        "classifier/config.json",
        "classifier/model.safetensors",
        "classifier/preprocessor_config.json",
        "denoiser.pk",
    }


def test_changed_file_is_refused(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    (folder / "denoiser.pk").write_bytes(b"denoiser, changed")
    with pytest.raises(BundleError, match=r"checksum mismatch \['denoiser.pk'\]"):
        load_bundle(folder)


def test_missing_and_unlisted_files_are_refused(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    (folder / "classifier" / "model.safetensors").unlink()
    (folder / "extra.bin").write_bytes(b"?")
    with pytest.raises(
        BundleError, match=r"missing \['classifier/model.safetensors'\], unlisted \['extra.bin'\]"
    ):
        load_bundle(folder)


def test_other_format_version_is_refused(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    rewrite(folder, format_version=BUNDLE_FORMAT + 1)
    with pytest.raises(BundleError, match="re-export"):
        load_bundle(folder)


def test_thresholds_must_match_targets(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    rewrite(folder, thresholds={"noise": 0.5})
    with pytest.raises(BundleError, match="threshold"):
        load_bundle(folder)


def test_metrics_and_provenance_must_be_objects(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    rewrite(folder, metrics=[0.9])
    with pytest.raises(BundleError, match="'metrics' has the wrong type"):
        load_bundle(folder)
    rewrite(folder, metrics={}, provenance="test")
    with pytest.raises(BundleError, match="'provenance' has the wrong type"):
        load_bundle(folder)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no bundle\.json"):
        load_bundle(tmp_path)
    (tmp_path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="cannot read"):
        load_bundle(tmp_path)


def _rewrite_classifier(folder: Path, name: str, **changes: object) -> None:
    path = folder / "classifier" / name
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))
    rewrite(folder, files=bundle_files(folder))  # checksums right: only the contents disagree


def test_classifier_labels_must_be_the_manifests(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    _rewrite_classifier(folder, "config.json", id2label={"0": "humpback", "1": "noise"})
    with pytest.raises(BundleError, match=r"labels \['humpback', 'noise'\] are not"):
        load_bundle(folder)


def test_classifier_rate_and_window_must_be_the_manifests(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    _rewrite_classifier(folder, "preprocessor_config.json", sampling_rate=44100)
    with pytest.raises(BundleError, match="reads 44100 Hz"):
        load_bundle(folder)
    folder = make_bundle(tmp_path / "c")
    _rewrite_classifier(folder, "preprocessor_config.json", max_length=1024)
    with pytest.raises(BundleError, match=r"1024 frames of 10 ms, bundle.json says a 5.12 s"):
        load_bundle(folder)
    folder = make_bundle(tmp_path / "d")
    (folder / "classifier" / "preprocessor_config.json").unlink()
    rewrite(folder, files=bundle_files(folder))
    with pytest.raises(BundleError, match=r"no classifier/preprocessor_config\.json"):
        load_bundle(folder)


def test_a_denoiser_needs_its_sample_rate(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    rewrite(folder, sample_rates={"classifier": 16000})
    with pytest.raises(BundleError, match=r"sample_rates.denoiser must be a positive integer"):
        load_bundle(folder)


def test_config_values_are_what_the_monitor_runs_with(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    assert config_values(load_bundle(folder)) == {
        "classifier.source": str(folder / "classifier"),
        "classifier.target_labels": ["humpback"],
        "classifier.thresholds": {"humpback": 0.7},
        "denoiser.checkpoint": str(folder / "denoiser.pk"),
        "windows.length_s": 5.12,
        "windows.hop_s": 1.0,
    }
