"""Loading AST checkpoints through the real path: labels, activation, identity, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import ASTFeatureExtractor, ASTForAudioClassification, ASTModel

from models.classifier.ast import ClassifierLoadError, load_classifier
from tests.support.classifier import LABELS, real_windows, save_tiny_ast, tiny_config


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return save_tiny_ast(tmp_path / "tiny-ast")


def reference_scores(directory: Path, windows: list[np.ndarray], activation: str) -> np.ndarray:
    """What transformers itself gives: ASTFeatureExtractor + model + activation, one by one."""
    extractor = ASTFeatureExtractor.from_pretrained(directory)
    model = ASTForAudioClassification.from_pretrained(directory, attn_implementation="eager")
    rows = []
    with torch.inference_mode():
        for window in windows:
            inputs = extractor(window, sampling_rate=16000, return_tensors="pt")
            logits = model(**inputs).logits[0]
            rows.append(logits.sigmoid() if activation == "sigmoid" else logits.softmax(-1))
    return torch.stack(rows).numpy()


def test_loads_tiny_checkpoint_and_scores_like_transformers(tiny_dir: Path) -> None:
    clf = load_classifier(
        tiny_dir, "cpu", target_labels=["Whale vocalization", "Ship"], thresholds=0.7
    )
    assert clf.labels == LABELS
    assert clf.target_labels == ("Whale vocalization", "Ship")
    assert clf.thresholds == {"Whale vocalization": 0.7, "Ship": 0.7}
    assert clf.activation == "sigmoid"
    assert clf.sample_rate == 16000
    assert clf.window_seconds == pytest.approx(0.24)
    assert clf.window_samples == 3840
    assert clf.attn_implementation == "sdpa"
    assert clf.identity.name == "tiny-ast"
    weights = (tiny_dir / "model.safetensors").read_bytes()
    assert clf.identity.sha256 == hashlib.sha256(weights).hexdigest()

    windows, _ = real_windows(3, 16000)  # 1 s at 48 kHz → truncated to the 24 frames
    windows16 = [w[::3].copy() for w in windows]
    got = clf.score(torch.from_numpy(np.stack(windows16))).numpy()
    want = reference_scores(tiny_dir, windows16, "sigmoid")[:, [2, 3]]
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize(
    ("problem_type", "activation"),
    [
        ("multi_label_classification", "sigmoid"),
        ("single_label_classification", "softmax"),
        (None, "sigmoid"),  # the original AudioSet checkpoints carry no problem_type
    ],
)
def test_activation_is_read_from_the_config(
    tmp_path: Path, problem_type: str | None, activation: str
) -> None:
    directory = save_tiny_ast(tmp_path / "ckpt", problem_type=problem_type)
    clf = load_classifier(directory, "cpu")
    assert clf.activation == activation
    windows, _ = real_windows(2, 3840 * 3)
    windows16 = [w[::3].copy() for w in windows]
    got = clf.score(torch.from_numpy(np.stack(windows16))).numpy()
    want = reference_scores(directory, windows16, activation)
    np.testing.assert_allclose(got, want, atol=1e-5)
    if activation == "softmax":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_softmax_is_over_all_labels_not_just_targets(tmp_path: Path) -> None:
    directory = save_tiny_ast(tmp_path / "ckpt", problem_type="single_label_classification")
    clf = load_classifier(directory, "cpu", target_labels=["Ship"])
    windows, _ = real_windows(2, 3840 * 3)
    windows16 = [w[::3].copy() for w in windows]
    got = clf.score(torch.from_numpy(np.stack(windows16))).numpy()
    want = reference_scores(directory, windows16, "softmax")[:, [3]]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (got < 1.0).all()


def test_activation_override(tiny_dir: Path) -> None:
    assert load_classifier(tiny_dir, "cpu", activation="softmax").activation == "softmax"


def test_unknown_target_label_names_it_and_close_matches(tiny_dir: Path) -> None:
    with pytest.raises(ClassifierLoadError) as err:
        load_classifier(tiny_dir, "cpu", target_labels=["Whale vocalisation", "Ship", "Orca"])
    message = str(err.value)
    assert "'Whale vocalisation'" in message
    assert "'Whale vocalization'" in message  # the close match
    assert "'Orca'" in message
    assert "'Ship' (" not in message  # known labels are not reported


def test_case_only_difference_is_suggested(tiny_dir: Path) -> None:
    with pytest.raises(ClassifierLoadError, match=r"'whale vocalization'.*'Whale vocalization'"):
        load_classifier(tiny_dir, "cpu", target_labels=["whale vocalization"])


@pytest.mark.parametrize(
    ("targets", "thresholds", "match"),
    [
        (["Ship"], {"Ship": 1.5}, r"\[0, 1\]"),
        (["Ship"], {"Music": 0.5, "Ship": 0.5}, "not targets"),
        (["Ship", "Music"], {"Ship": 0.5}, "no threshold"),
        ([], 0.5, "empty"),
        (["Ship", "Ship"], 0.5, "duplicates"),
        ("Ship", 0.5, "not one string"),
    ],
)
def test_bad_targets_or_thresholds(tiny_dir: Path, targets, thresholds, match: str) -> None:
    with pytest.raises(ClassifierLoadError, match=match):
        load_classifier(tiny_dir, "cpu", target_labels=targets, thresholds=thresholds)


def test_per_label_thresholds(tiny_dir: Path) -> None:
    clf = load_classifier(
        tiny_dir, "cpu", target_labels=["Ship", "Music"], thresholds={"Music": 0.2, "Ship": 0.9}
    )
    assert clf.thresholds == {"Ship": 0.9, "Music": 0.2}


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ClassifierLoadError, match="does not exist"):
        load_classifier(tmp_path / "nope", "cpu")


def test_a_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(ClassifierLoadError, match="is a file"):
        load_classifier(path, "cpu")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ClassifierLoadError, match=r"no config\.json"):
        load_classifier(tmp_path, "cpu")


def test_other_model_type(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "config.json").read_text())
    config["model_type"] = "bert"
    (tiny_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ClassifierLoadError, match="not an Audio Spectrogram Transformer"):
        load_classifier(tiny_dir, "cpu")


def test_missing_feature_extractor_config(tiny_dir: Path) -> None:
    (tiny_dir / "preprocessor_config.json").unlink()
    with pytest.raises(ClassifierLoadError, match=r"preprocessor_config\.json"):
        load_classifier(tiny_dir, "cpu")


def test_feature_extractor_that_does_not_fit_the_model(tiny_dir: Path) -> None:
    ASTFeatureExtractor(num_mel_bins=32, max_length=24).save_pretrained(tiny_dir)
    with pytest.raises(ClassifierLoadError, match=r"24×32 features .* expects 24×16"):
        load_classifier(tiny_dir, "cpu")


def test_missing_weights(tiny_dir: Path) -> None:
    (tiny_dir / "model.safetensors").unlink()
    with pytest.raises(ClassifierLoadError, match="no weights file"):
        load_classifier(tiny_dir, "cpu")


def test_corrupt_weights(tiny_dir: Path) -> None:
    (tiny_dir / "model.safetensors").write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ClassifierLoadError, match="cannot load weights"):
        load_classifier(tiny_dir, "cpu")


def test_weights_for_another_shape(tmp_path: Path) -> None:
    small = save_tiny_ast(tmp_path / "small")
    big = save_tiny_ast(tmp_path / "big", intermediate_size=64)
    (big / "model.safetensors").write_bytes((small / "model.safetensors").read_bytes())
    with pytest.raises(ClassifierLoadError, match=r"other shapes than config\.json describes"):
        load_classifier(big, "cpu")


def test_headless_weights_are_refused_not_randomly_completed(tmp_path: Path) -> None:
    directory = save_tiny_ast(tmp_path / "ckpt")
    torch.manual_seed(0)
    ASTModel(tiny_config()).save_pretrained(tmp_path / "base")
    (directory / "model.safetensors").write_bytes(
        (tmp_path / "base/model.safetensors").read_bytes()
    )
    with pytest.raises(ClassifierLoadError, match="missing"):
        load_classifier(directory, "cpu")


def test_hub_id_offline_is_a_clear_error() -> None:
    with pytest.raises(ClassifierLoadError, match=r"could not be fetched.*offline mode is on"):
        load_classifier("MIT/ast-finetuned-audioset-10-10-0.4593-not-cached", "cpu")


def test_max_length_edited_without_resizing_position_embeddings(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "config.json").read_text())
    config["max_length"] = 48
    (tiny_dir / "config.json").write_text(json.dumps(config))
    ASTFeatureExtractor(num_mel_bins=16, max_length=48).save_pretrained(tiny_dir)
    with pytest.raises(ClassifierLoadError) as err:
        load_classifier(tiny_dir, "cpu")
    message = str(err.value)
    assert "position_embeddings is (1, 98, 32) in the weights, (1, 194, 32)" in message
    assert "8×12 patch grid (max_length 24–25 frames)" in message
    assert "max_length 48 needs 8×24" in message
