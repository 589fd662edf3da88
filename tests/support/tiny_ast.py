"""Tiny AST checkpoints for tests: real transformers models with small configs, saved locally."""

from __future__ import annotations

from pathlib import Path

from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

# 32 mel bins, patch 8 / stride 8 → a 4 × t grid; hidden 32, 2 layers: milliseconds on a CPU.
TINY = {
    "num_mel_bins": 32,
    "patch_size": 8,
    "frequency_stride": 8,
    "time_stride": 8,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
}


def save_tiny_ast(folder: Path, labels: list[str], max_length: int, *, multi_label: bool) -> Path:
    """A stand-in for a pretrained checkpoint (random weights) with these labels."""
    config = ASTConfig(
        **TINY,
        max_length=max_length,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    if multi_label:
        config.problem_type = "multi_label_classification"
    model = ASTForAudioClassification(config)
    model.save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=TINY["num_mel_bins"], max_length=max_length).save_pretrained(
        folder
    )
    return folder
