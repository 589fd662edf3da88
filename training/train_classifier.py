"""Step 6: fine-tune an Audio Spectrogram Transformer on the clips (raw or denoised).

Heads: ``binary`` (noise vs ``positive_label``) or ``call_type`` (noise + each call type).
The input length follows the clips (``max_length`` frames) with the pretrained position
embeddings cropped or interpolated, not re-initialised. Class-balanced sampling (or loss),
SpecAugment-style masking (torchaudio) and mixing with real noise clips; bf16 autocast on GPU;
early stopping on validation macro-F1; ``best/`` and ``last/`` checkpoints in HF format with the
feature-extractor config. One epoch is one unit of work; a rerun resumes from ``last/``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from tqdm import tqdm
from transformers import ASTFeatureExtractor, ASTForAudioClassification

from models.classifier.features import FeatureExtractor, FeatureParams
from models.device import select_device
from training.ast_source import save_checkpoint, start_model
from training.audio import load_mono, load_mono_fixed
from training.augment import MixSettings, WindowMixer
from training.cli_support import step_command
from training.corruption import mix_at_snr, uniform
from training.manifest import NOISE, Clip, manifest_file, read_manifest
from training.result_files import atomic_path
from training.scoring import classification_report
from training.steprun import StepRun
from training.synthetic_calls import band_pass

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainClassifierSettings:
    source: str = "MIT/ast-finetuned-audioset-10-10-0.4593"  # hub id or local folder; "" = scratch
    scratch_config: dict[str, Any] = field(default_factory=dict)  # ASTConfig fields
    task: str = "binary"  # binary | call_type
    positive_label: str = "humpback"
    kinds: tuple[str, ...] = ("call", "noise", "window")
    max_length: int = 512  # frames of 10 ms: 5.12 s covers the 5 s clips
    position_embeddings: str = "crop"  # crop | interpolate
    epochs: int = 20
    batch_size: int = 8
    lr: float = 2e-5
    weight_decay: float = 0.01
    schedule: str = "constant"  # constant | cosine (decay to 0 over all epochs' steps)
    warmup_fraction: float = 0.0  # of all steps: linear warm-up from 0 to lr
    # The front end saved with a new model (models.classifier.features): none | median.
    frequency_normalization: str = "none"
    balance: str = "sampler"  # sampler | loss | none
    spec_augment: bool = True
    freq_mask: int = 24
    time_mask: int = 96
    noise_mix_prob: float = 0.3
    noise_snr_db: tuple[float, float] = (0.0, 20.0)
    early_stop_patience: int = 4  # epochs without a better validation macro-F1
    # > 0: each epoch is this many windows made by training.augment from the manifest's
    # recordings (calls mixed into backgrounds, hum, hard negatives) instead of its fixed clips.
    mix_windows_per_epoch: int = 0
    hum_labels: tuple[str, ...] = ("hum",)  # noise rows used as hum backgrounds
    hard_negative_labels: tuple[str, ...] = ("orca_call",)  # noise rows mixed in as sounds
    call_snr_db: tuple[float, float] = (-5.0, 20.0)
    pitch_octaves: float = 0.5
    stretch: tuple[float, float] = (0.75, 1.33)
    eq_prob: float = 0.5
    hum_prob: float = 0.2
    gain_db: tuple[float, float] = (-6.0, 6.0)
    hard_negative_fraction: float = 0.25
    synthetic_fraction: float = 0.0  # positives that are synthetic humpback-like units
    synthetic_negative_fraction: float = 0.0  # hard negatives that are synthetic orca-like calls
    splice_prob: float = 0.0  # windows whose background is cut to another one (a join click)
    # > 0: hard-negative recordings are high-passed here before mixing, so their SNR is set by the
    # animal's band, not by the recorder's low-frequency noise (docs/benchmarks.md).
    hard_negative_highpass_hz: float = 0.0
    centred_fraction: float = 0.0  # calls/negatives centred in the window, as the cascade's are
    amp: bool = True  # bf16 autocast on CUDA
    device: str = "auto"
    seed: int = 1234


def target_of(clip: Clip, settings: TrainClassifierSettings) -> str:
    if clip.binary == 0:
        return NOISE
    return settings.positive_label if settings.task == "binary" else clip.label


def label_set(clips: list[Clip], settings: TrainClassifierSettings) -> list[str]:
    if settings.task == "binary":
        return [NOISE, settings.positive_label]
    if settings.task == "call_type":
        return [NOISE, *sorted({c.label for c in clips if c.binary == 1})]
    raise ValueError(f"[train_classifier] task must be binary or call_type, not {settings.task!r}")


class ClipSet:
    """Clips as fixed-length 16 kHz waveforms in memory, with integer targets."""

    def __init__(
        self,
        clips: list[Clip],
        labels: list[str],
        params: FeatureParams,
        settings: TrainClassifierSettings,
    ) -> None:
        index = {label: i for i, label in enumerate(labels)}
        self.targets = torch.tensor(
            [index[target_of(c, settings)] for c in clips], dtype=torch.long
        )
        length = params.window_samples
        waves = [load_mono_fixed(clip.path, params.sampling_rate, length) for clip in clips]
        self.waves = torch.from_numpy(np.stack(waves)) if waves else torch.zeros(0, length)


def high_passed(wave: torch.Tensor, rate: int, cutoff_hz: float) -> torch.Tensor:
    """``wave`` above ``cutoff_hz`` (unchanged when it is 0)."""
    if cutoff_hz <= 0:
        return wave
    if cutoff_hz >= rate / 2:
        raise ValueError(
            f"[train_classifier] hard_negative_highpass_hz ({cutoff_hz}) must be below "
            f"half the sampling rate ({rate / 2:g} Hz)"
        )
    return band_pass(wave, rate, cutoff_hz, float(rate))


def window_mixer(
    clips: list[Clip], params: FeatureParams, settings: TrainClassifierSettings
) -> WindowMixer:
    """The recordings of the training split as mixing sources (whole files, any length)."""
    rate = params.sampling_rate

    def waves(keep: Callable[[Clip], bool]) -> list[torch.Tensor]:
        return [torch.from_numpy(load_mono(c.path, rate)) for c in clips if keep(c)]

    special = {*settings.hum_labels, *settings.hard_negative_labels}
    return WindowMixer(
        calls=waves(lambda c: c.binary == 1),
        backgrounds=waves(lambda c: c.binary == 0 and c.label not in special),
        hard_negatives=[
            high_passed(wave, rate, settings.hard_negative_highpass_hz)
            for wave in waves(lambda c: c.binary == 0 and c.label in settings.hard_negative_labels)
        ],
        hum_backgrounds=waves(lambda c: c.binary == 0 and c.label in settings.hum_labels),
        rate=rate,
        length=params.window_samples,
        settings=MixSettings(
            hard_negative_fraction=settings.hard_negative_fraction,
            call_snr_db=settings.call_snr_db,
            pitch_octaves=settings.pitch_octaves,
            stretch=settings.stretch,
            eq_prob=settings.eq_prob,
            hum_prob=settings.hum_prob,
            gain_db=settings.gain_db,
            synthetic_fraction=settings.synthetic_fraction,
            synthetic_negative_fraction=settings.synthetic_negative_fraction,
            splice_prob=settings.splice_prob,
            centred_fraction=settings.centred_fraction,
        ),
    )


def balanced_order(targets: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` indices drawn with replacement, each class equally likely."""
    frequency = torch.bincount(targets).float()
    weights = 1.0 / frequency[targets]
    return torch.multinomial(weights, count, replacement=True, generator=generator)


def augment_waves(
    waves: torch.Tensor,
    noise: torch.Tensor,
    settings: TrainClassifierSettings,
    generator: torch.Generator,
) -> torch.Tensor:
    if not len(noise) or settings.noise_mix_prob <= 0:
        return waves
    out = waves.clone()
    for i in range(len(out)):
        if float(torch.rand((), generator=generator)) < settings.noise_mix_prob:
            pick = noise[int(torch.randint(len(noise), (), generator=generator))]
            out[i] = mix_at_snr(out[i], pick, uniform(*settings.noise_snr_db, generator))
    return out


class SpecAugment(torch.nn.Module):
    """Independent frequency and time masks per example on (B, frames, mel) features."""

    def __init__(self, freq_mask: int, time_mask: int) -> None:
        super().__init__()
        self.freq = torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(time_mask, iid_masks=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.transpose(1, 2).unsqueeze(1)  # (B, 1, mel, frames)
        return self.time(self.freq(x)).squeeze(1).transpose(1, 2)


def predict(
    model: ASTForAudioClassification,
    features: FeatureExtractor,
    waves: torch.Tensor,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[object]],
) -> torch.Tensor:
    """Softmax probabilities (N, labels) on CPU."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(waves), batch_size):
            feats = features(waves[start : start + batch_size].to(device))
            with autocast():
                out.append(model(input_values=feats).logits.float().softmax(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.num_labels)


def learning_rate(settings: TrainClassifierSettings, step: int, total: int) -> float:
    """The lr of optimiser step ``step`` (0-based) of ``total``: a function of the step alone,
    so a resumed run continues the same schedule."""
    warmup = round(settings.warmup_fraction * total)
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    if settings.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return settings.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return settings.lr


def run_train_classifier(
    settings: TrainClassifierSettings, out: Path, manifest: Path, *, max_units: int | None = None
) -> Path:
    if settings.balance not in ("sampler", "loss", "none"):
        raise ValueError(
            f"[train_classifier] balance must be sampler, loss or none, not {settings.balance!r}"
        )
    if settings.schedule not in ("constant", "cosine"):
        raise ValueError(
            f"[train_classifier] schedule must be constant or cosine, not {settings.schedule!r}"
        )
    manifest_path = manifest_file(manifest)
    run = StepRun(
        "train_classifier", out, settings, inputs={"manifest": manifest_path}, max_units=max_units
    )
    clips = [c for c in read_manifest(manifest_path) if c.kind in settings.kinds]
    train_clips = [c for c in clips if c.split == "train"]
    labels = label_set(train_clips, settings)
    if len({target_of(c, settings) for c in train_clips}) < 2:
        raise ValueError(f"{manifest_path}: the training split needs both calls and noise")
    device = select_device(settings.device)
    torch.manual_seed(settings.seed)
    resuming = (out / STATE_FILE).exists() and (out / "last").is_dir()
    if resuming:
        model = ASTForAudioClassification.from_pretrained(out / "last")
        extractor = ASTFeatureExtractor.from_pretrained(out / "last")
        origin = "resumed"
    else:
        model, extractor, origin = start_model(
            settings.source,
            settings.scratch_config,
            labels,
            settings.max_length,
            settings.position_embeddings,
            run.log,
        )
        extractor.frequency_normalization = settings.frequency_normalization
    model.to(device)
    params = FeatureParams.from_extractor(extractor)
    features = FeatureExtractor(params).to(device)
    mixing = settings.mix_windows_per_epoch > 0
    if mixing and settings.task != "binary":
        raise ValueError('[train_classifier] mix_windows_per_epoch needs task = "binary"')
    mixer = window_mixer(train_clips, params, settings) if mixing else None
    train = ClipSet([] if mixing else train_clips, labels, params, settings)
    val_clips = [c for c in clips if c.split == "val" and target_of(c, settings) in labels]
    val = ClipSet(val_clips, labels, params, settings)
    noise = train.waves[train.targets == 0]
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    state: dict[str, Any] = {
        "epoch": 0,
        "best_f1": -1.0,
        "best_epoch": 0,
        "history": [],
        "origin": origin,
    }
    if resuming:
        saved = torch.load(out / STATE_FILE, map_location="cpu", weights_only=True)
        optimiser.load_state_dict(saved["optimizer"])
        state = saved["progress"]
        run.log("resumed", epoch=state["epoch"])
    counts = torch.bincount(train.targets, minlength=len(labels)).float()
    class_weights = (
        (counts.sum() / (len(labels) * counts.clamp_min(1))).to(device)
        if settings.balance == "loss"
        else None
    )
    spec_augment = SpecAugment(settings.freq_mask, settings.time_mask).to(device)

    def autocast() -> AbstractContextManager[object]:
        if settings.amp and device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    examples = settings.mix_windows_per_epoch if mixing else len(train_clips)
    steps = math.ceil(examples / settings.batch_size)
    total_steps = steps * settings.epochs
    for epoch in tqdm(
        range(state["epoch"] + 1, settings.epochs + 1), desc="train-classifier", unit="epoch"
    ):
        if state["best_epoch"] and epoch - state["best_epoch"] > settings.early_stop_patience:
            run.log("early_stop", epoch=epoch, best_epoch=state["best_epoch"])
            break
        generator = torch.Generator().manual_seed(settings.seed * 1000 + epoch)
        if mixing:
            order = torch.arange(steps * settings.batch_size)
        elif settings.balance == "sampler":
            order = balanced_order(train.targets, steps * settings.batch_size, generator)
        else:
            order = torch.randperm(len(train_clips), generator=generator)
        model.train()
        losses = []
        for step, start in enumerate(range(0, len(order), settings.batch_size)):
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(settings, (epoch - 1) * steps + step, total_steps)
            batch = order[start : start + settings.batch_size]
            if mixer is not None:
                waves, targets = mixer.batch(len(batch), generator)
            else:
                waves = augment_waves(train.waves[batch], noise, settings, generator)
                targets = train.targets[batch]
            feats = features(waves.to(device))
            if settings.spec_augment:
                feats = spec_augment(feats)
            with autocast():
                logits = model(input_values=feats).logits.float()
            loss = F.cross_entropy(logits, targets.to(device), weight=class_weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        record: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if len(val_clips):
            probabilities = predict(
                model, features, val.waves, settings.batch_size, device, autocast
            )
            truth = [labels[i] for i in val.targets.tolist()]
            guess = [labels[i] for i in probabilities.argmax(-1).tolist()]
            report = classification_report(truth, guess, labels)
            record |= {"val_macro_f1": report["macro"]["f1"], "val_accuracy": report["accuracy"]}
            better = report["macro"]["f1"] > state["best_f1"]
        else:
            better = True  # nothing to validate on: the latest model is the best we know
        if better:
            state["best_f1"] = record.get("val_macro_f1", -1.0)
            state["best_epoch"] = epoch
            save_checkpoint(model, extractor, out / "best")
        save_checkpoint(model, extractor, out / "last")
        state["epoch"] = epoch
        state["history"] = [*state["history"], record]
        with atomic_path(out / STATE_FILE) as temporary:
            torch.save({"optimizer": optimiser.state_dict(), "progress": state}, temporary)
        run.log("epoch", **record)
        run.unit_done(f"epoch{epoch}", **record)
    run.finish(
        epochs=state["epoch"],
        best_epoch=state["best_epoch"],
        best_val_macro_f1=state["best_f1"],
        labels=labels,
        origin=state["origin"],
    )
    return out / "best"


COMMAND = step_command("train-classifier", TrainClassifierSettings, run_train_classifier)
main = COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())
