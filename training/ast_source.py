"""Where the classifier starts: a pretrained AST (hub id or local folder), or a fresh one from a
config when no checkpoint is reachable. Either way the head is replaced by ours and the input
length set to the clips' with the position embeddings kept (see ast_positions)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

from training.ast_positions import adapt_max_length


def head_labels(labels: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": "single_label_classification",
    }


def start_model(
    source: str,
    scratch_config: dict[str, Any],
    labels: list[str],
    max_length: int,
    mode: str,
    log: Callable[..., None],
) -> tuple[ASTForAudioClassification, ASTFeatureExtractor, str]:
    """(model, feature extractor, where it came from)."""
    if source:
        try:
            model = ASTForAudioClassification.from_pretrained(
                source, ignore_mismatched_sizes=True, **head_labels(labels)
            )
            extractor = ASTFeatureExtractor.from_pretrained(source)
        except OSError as error:
            if not scratch_config:
                raise ValueError(
                    f"classifier source {source!r} is not reachable ({error}); set "
                    "[train_classifier] scratch_config to train from scratch instead"
                ) from error
            log("source_unreachable", source=source, error=str(error).splitlines()[0])
        else:
            adapt_max_length(model, max_length, mode)
            extractor.max_length = max_length
            return model, extractor, f"pretrained:{source}"
    if not scratch_config:
        raise ValueError("[train_classifier] needs a source checkpoint or a scratch_config")
    config = ASTConfig(**{**scratch_config, "max_length": max_length}, **head_labels(labels))
    model = ASTForAudioClassification(config)
    extractor = ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=max_length)
    return model, extractor, "scratch"


def save_checkpoint(
    model: ASTForAudioClassification, extractor: ASTFeatureExtractor, folder: Path
) -> None:
    """HF format (save_pretrained) with the feature-extractor config, swapped in atomically."""
    staging = folder.with_name(f".{folder.name}.staging")
    old = folder.with_name(f".{folder.name}.old")
    for leftover in (staging, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    model.save_pretrained(staging)
    extractor.save_pretrained(staging)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    if old.exists():
        shutil.rmtree(old)
