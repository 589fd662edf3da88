"""What noise-refine does with flagged clips, and the call-vs-noise model it trains."""

from __future__ import annotations

from pathlib import Path

import torch

from training.logmel import predict_call_probability, train_call_noise
from training.manifest import Clip
from training.noise_refine import (
    NoiseRefineSettings,
    folds_by_recording,
    markdown_report,
    refined,
)


def clip(clip_id: str, recording: str, binary: int) -> Clip:
    label = "Moan" if binary else "noise"
    kind = "call" if binary else "noise"
    return Clip(clip_id, Path(f"/c/{clip_id}.flac"), recording, f"{recording}.flac", 0.0, 5.0,
                label, binary, kind, "train", 16000)  # fmt: skip


CLIPS = [clip("a1", "A", 1), clip("a2", "A", 0), clip("b1", "B", 0), clip("c1", "C", 1)]


def test_folds_hold_whole_recordings() -> None:
    assert folds_by_recording(CLIPS, 2) == [["A", "C"], ["B"]]
    assert folds_by_recording(CLIPS, 10) == [["A"], ["B"], ["C"]]


def test_flagged_clips_are_dropped_or_relabelled() -> None:
    dropped = refined(CLIPS, {"a2"}, NoiseRefineSettings(action="drop"))
    assert [c.clip_id for c in dropped] == ["a1", "b1", "c1"]
    relabelled = refined(CLIPS, {"a2"}, NoiseRefineSettings(action="relabel", relabel_as="other"))
    changed = next(c for c in relabelled if c.clip_id == "a2")
    assert (changed.label, changed.binary, len(relabelled)) == ("other", 1, 4)


def test_report_lists_flagged_clips() -> None:
    report = {
        "scored": 2, "flag_threshold": 0.9, "action": "drop", "clips_before": 4, "clips_after": 3,
        "flagged": [{"clip_id": "a2", "recording": "A", "start_s": 6.0, "score": 0.97}],
    }  # fmt: skip
    text = markdown_report(report)
    assert "| a2 | A | 6.00 | 0.970 |" in text and "flagged (call probability ≥ 0.9): 1" in text


def test_call_noise_model_learns_a_separable_case() -> None:
    torch.manual_seed(0)
    quiet = torch.randn(16, 1, 16, 40) * 0.1
    loud = torch.randn(16, 1, 16, 40) * 0.1
    loud[:, :, 4:8, :] += 3.0  # a band of energy: "a call"
    features = torch.cat([quiet, loud])
    labels = torch.tensor([0] * 16 + [1] * 16)
    model = train_call_noise(features, labels, epochs=6, batch_size=8, lr=1e-2, width=4, seed=0)
    probability = predict_call_probability(model, features)
    assert probability[16:].min() > probability[:16].max()
