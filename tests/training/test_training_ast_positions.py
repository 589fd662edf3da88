"""Shorter clips than the checkpoint's input: the position embeddings are cropped or
interpolated from the pretrained ones, never re-initialised."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import ASTForAudioClassification

from tests.support.tiny_ast import save_tiny_ast
from training.ast_positions import adapt_max_length, patch_grid
from training.ast_source import start_model


def grid_of(model: ASTForAudioClassification) -> torch.Tensor:
    """The (1, hidden, frequency, time) patch grid of a model's position embeddings."""
    frequency, time = patch_grid(model.config)
    patches = model.audio_spectrogram_transformer.embeddings.position_embeddings[:, 2:]
    return patches.reshape(1, frequency, time, -1).permute(0, 3, 1, 2)


@pytest.fixture
def pretrained(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_tiny_ast(tmp_path / "pre", ["a", "b", "c"], 1024, multi_label=True)


def test_crop_keeps_the_first_time_columns(pretrained: Path) -> None:
    original = ASTForAudioClassification.from_pretrained(pretrained)
    assert patch_grid(original.config) == (4, 128)
    model, extractor, origin = start_model(
        str(pretrained), {}, ["noise", "humpback"], 512, "crop", lambda *a, **k: None
    )
    assert origin.startswith("pretrained") and extractor.max_length == 512
    assert model.config.max_length == 512 and patch_grid(model.config) == (4, 64)
    kept = model.audio_spectrogram_transformer.embeddings.position_embeddings
    was = original.audio_spectrogram_transformer.embeddings.position_embeddings
    assert kept.shape == (1, 2 + 4 * 64, 32)
    assert torch.equal(kept[:, :2], was[:, :2])  # CLS and distillation tokens
    assert torch.equal(grid_of(model), grid_of(original)[:, :, :, :64])
    # every other transformer weight is the pretrained one; only the head is new (2 labels)
    new_state, old_state = model.state_dict(), original.state_dict()
    body = [
        k for k in old_state if not k.startswith("classifier") and "position_embeddings" not in k
    ]
    assert body and all(torch.equal(new_state[k], old_state[k]) for k in body)
    assert model.config.id2label == {0: "noise", 1: "humpback"}
    features = torch.randn(2, 512, 32)
    assert model(input_values=features).logits.shape == (2, 2)


def test_interpolate_resamples_the_time_axis(pretrained: Path) -> None:
    original = ASTForAudioClassification.from_pretrained(pretrained)
    model = ASTForAudioClassification.from_pretrained(pretrained)
    adapt_max_length(model, 408, "interpolate")  # (408 − 8) // 8 + 1 = 51 time patches
    assert patch_grid(model.config) == (4, 51)
    expected = F.interpolate(grid_of(original), size=(4, 51), mode="bilinear", align_corners=False)
    assert torch.allclose(grid_of(model), expected)


def test_crop_cannot_lengthen(pretrained: Path) -> None:
    model = ASTForAudioClassification.from_pretrained(pretrained)
    with pytest.raises(ValueError, match="interpolate"):
        adapt_max_length(model, 2048, "crop")


def test_unreachable_source_without_scratch_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not reachable"):
        start_model(
            str(tmp_path / "nothing"), {}, ["noise", "x"], 512, "crop", lambda *a, **k: None
        )
