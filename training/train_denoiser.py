"""Step 4: train the ORCA-CLEAN denoiser the way its paper does.

Target = the (noisy) call spectrogram; input = a further-corrupted copy, one corruption per
sample (Gaussian / chi² / Poisson / exponential noise in the dB domain, a real noise clip mixed
at ``noise_snr_db``, or a binary-mask target). Augmentation: amplitude, pitch and time stretch.
Summed MSE, Adam(β1 0.5), lr = ``lr_per_sample`` × batch, halved on a validation plateau, early
stop, validation every ``validate_every`` epochs. One epoch is one unit of work: each writes an
ORCA-CLEAN epoch checkpoint (``modelState`` + ``trainState``) that a rerun resumes from; the
best model is saved in the final ``.pk`` format.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.denoiser import (
    Denoiser,
    DenoiserOptions,
    build_denoiser,
    save_denoiser,
    save_epoch_checkpoint,
    spectrogram,
)
from models.device import select_device
from training.audio import load_mono
from training.cli_support import step_command
from training.corruption import (
    CORRUPTIONS,
    SYNTHETIC,
    binary_mask,
    crop,
    db_noise,
    mix_at_snr,
    uniform,
    warp,
)
from training.manifest import Clip, manifest_file, read_manifest
from training.result_files import atomic_path
from training.steprun import StepRun

FINAL_NAME = "ORCA-CLEAN.pk"
BEST_NAME = "best.pk"


@dataclass(frozen=True)
class TrainDenoiserSettings:
    base_width: int = 64
    sample_rate: int = 44100
    fmin: float = 0.0  # the humpback hackathon's choice (upstream: 500 Hz for orcas)
    fmax: float = 10000.0
    n_fft: int = 4096
    hop_length: int = 441  # 10 ms at 44.1 kHz
    n_freq_bins: int = 256
    frames: int = 128  # 1.28 s training windows
    batch_size: int = 8
    lr_per_sample: float = 1e-5
    beta1: float = 0.5
    epochs: int = 100
    steps_per_epoch: int = 0  # 0: one pass over the training clips
    validate_every: int = 2
    plateau_patience: int = 4  # validations without improvement before the lr is halved
    early_stop_epochs: int = 20
    corruptions: tuple[str, ...] = CORRUPTIONS
    noise_snr_db: tuple[float, float] = (-8.0, -3.0)
    gain_db: tuple[float, float] = (-6.0, 2.0)
    pitch: tuple[float, float] = (0.5, 1.5)
    stretch: tuple[float, float] = (0.5, 2.0)
    keep_checkpoints: int = 2
    workers: int = 0  # DataLoader worker processes preparing pairs (0: in this process)
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 1234


def training_pair(
    signal: torch.Tensor,
    noise: torch.Tensor | None,
    settings: TrainDenoiserSettings,
    options: DenoiserOptions,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target), each (1, frames, n_freq_bins), from one call waveform."""
    kinds = (
        settings.corruptions
        if noise is not None
        else tuple(k for k in settings.corruptions if k != "real_noise")
    )
    kind = kinds[int(torch.randint(len(kinds), (), generator=generator))]
    signal = signal * 10.0 ** (uniform(*settings.gain_db, generator) / 20.0)
    target = spectrogram(signal[None], options)[0][0]
    if kind == "real_noise":
        assert noise is not None
        noisy = mix_at_snr(signal, noise, uniform(*settings.noise_snr_db, generator))
        source = spectrogram(noisy[None], options)[0][0]
    else:
        source = target
    stretch, pitch = uniform(*settings.stretch, generator), uniform(*settings.pitch, generator)
    target, source = warp(target, stretch, pitch), warp(source, stretch, pitch)
    start = int(
        torch.randint(max(1, target.shape[1] - settings.frames + 1), (), generator=generator)
    )
    target, source = crop(target, settings.frames, start), crop(source, settings.frames, start)
    if kind in SYNTHETIC:
        source = (source + db_noise(kind, source.shape, generator)).clamp(0.0, 1.0)
    elif kind == "binary_mask":
        target = binary_mask(target)
    return source, target


class TrainingPairs(torch.utils.data.Dataset):
    """Item k of an epoch: the pair made from clip ``order[k]`` with randomness seeded by
    (seed, epoch, k), so batches are the same with any number of loader workers and after a
    resume. Audio is read on demand (a full catalogue does not fit in memory as audio)."""

    def __init__(
        self,
        calls: list[Clip],
        noises: list[Clip],
        settings: TrainDenoiserSettings,
        options: DenoiserOptions,
    ) -> None:
        self.calls, self.noises = calls, noises
        self.settings, self.options = settings, options
        self.epoch = 0
        self.order: list[int] = list(range(len(calls)))

    def start_epoch(self, epoch: int, draws: int) -> None:
        """Shuffle (epoch ≥ 1) or keep the clips in order (epoch 0: validation), cycled to
        ``draws`` items."""
        self.epoch = epoch
        if epoch:
            generator = torch.Generator().manual_seed(self.settings.seed * 1000 + epoch)
            base = torch.randperm(len(self.calls), generator=generator).tolist()
        else:
            base = list(range(len(self.calls)))
        self.order = [base[k % len(base)] for k in range(draws)]

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        seed = (self.settings.seed * 1_000_003 + self.epoch) * 10_000_019 + k
        generator = torch.Generator().manual_seed(seed)
        rate = self.options.sr
        signal = torch.from_numpy(load_mono(self.calls[self.order[k]].path, rate))
        noise = None
        if self.noises:
            pick = self.noises[int(torch.randint(len(self.noises), (), generator=generator))]
            noise = torch.from_numpy(load_mono(pick.path, rate))
        return training_pair(signal, noise, self.settings, self.options, generator)


def loader(
    pairs: TrainingPairs, settings: TrainDenoiserSettings, device: torch.device
) -> torch.utils.data.DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    return torch.utils.data.DataLoader(
        pairs,
        batch_size=settings.batch_size,
        shuffle=False,  # the order is the dataset's own (seeded per epoch)
        num_workers=settings.workers,
        pin_memory=device.type == "cuda",
    )


def validate(
    model: Denoiser, pairs: TrainingPairs, settings: TrainDenoiserSettings, device: torch.device
) -> float:
    """Mean summed-MSE per sample over the validation clips, same corruptions every time."""
    pairs.start_epoch(0, len(pairs.calls))
    model.eval()
    total = 0.0
    with torch.no_grad():
        for source, target in loader(pairs, settings, device):
            output = model(source.to(device))
            total += float(F.mse_loss(output, target.to(device), reduction="sum"))
    return total / max(1, len(pairs))


def epoch_checkpoints(out: Path) -> list[Path]:
    return sorted(out.glob("denoiser_epoch_*.checkpoint"))


def run_train_denoiser(
    settings: TrainDenoiserSettings, out: Path, manifest: Path, *, max_units: int | None = None
) -> Path:
    unknown = sorted(set(settings.corruptions) - set(CORRUPTIONS))
    if unknown or not settings.corruptions:
        raise ValueError(
            f"[train_denoiser] corruptions {unknown or '[]'}: choose from {CORRUPTIONS}"
        )
    manifest_path = manifest_file(manifest)
    run = StepRun(
        "train_denoiser", out, settings, inputs={"manifest": manifest_path}, max_units=max_units
    )
    clips = read_manifest(manifest_path)

    def chosen(split: str, binary: int) -> list[Clip]:
        return [c for c in clips if c.split == split and c.binary == binary]

    train_calls, val_calls = chosen("train", 1), chosen("val", 1)
    if not train_calls:
        raise ValueError(f"{manifest_path} has no training call clips")
    device = select_device(settings.device)
    options = DenoiserOptions(
        sr=settings.sample_rate,
        fmin=settings.fmin,
        fmax=settings.fmax,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        n_freq_bins=settings.n_freq_bins,
    )
    train_pairs = TrainingPairs(train_calls, chosen("train", 0), settings, options)
    val_pairs = TrainingPairs(val_calls or train_calls, chosen("val", 0), settings, options)
    torch.manual_seed(settings.seed)
    model = build_denoiser(options, base_width=settings.base_width).to(device)
    lr = settings.lr_per_sample * settings.batch_size
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=(settings.beta1, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, mode="min", factor=0.5, patience=settings.plateau_patience
    )
    state = {"epoch": 0, "best_val": math.inf, "best_epoch": 0, "history": []}
    existing = epoch_checkpoints(out)
    if existing:
        saved = torch.load(existing[-1], map_location="cpu", weights_only=True)
        model.load_state_dict(saved["modelState"])
        optimiser.load_state_dict(saved["trainState"]["optimizer"])
        scheduler.load_state_dict(saved["trainState"]["scheduler"])
        state = dict(saved["trainState"]["progress"])
        run.log("resumed", checkpoint=existing[-1].name, epoch=state["epoch"])
    steps = settings.steps_per_epoch or math.ceil(len(train_calls) / settings.batch_size)
    for epoch in tqdm(
        range(state["epoch"] + 1, settings.epochs + 1), desc="train-denoiser", unit="epoch"
    ):
        if epoch - state["best_epoch"] > settings.early_stop_epochs and state["best_epoch"]:
            run.log("early_stop", epoch=epoch, best_epoch=state["best_epoch"])
            break
        train_pairs.start_epoch(epoch, steps * settings.batch_size)
        model.train()
        losses = []
        for source, target in loader(train_pairs, settings, device):
            optimiser.zero_grad()
            loss = F.mse_loss(model(source.to(device)), target.to(device), reduction="sum")
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        record = {
            "epoch": epoch,
            "train_loss": sum(losses) / len(losses),
            "lr": optimiser.param_groups[0]["lr"],
        }
        if epoch % settings.validate_every == 0 or epoch == settings.epochs:
            val_loss = validate(model, val_pairs, settings, device)
            scheduler.step(val_loss)
            record["val_loss"] = val_loss
            if val_loss < state["best_val"]:
                state["best_val"], state["best_epoch"] = val_loss, epoch
                save_denoiser(model, out / BEST_NAME)
        state["epoch"] = epoch
        state["history"] = [*state["history"], record]
        path = out / f"denoiser_epoch_{epoch:05d}.checkpoint"
        train_state = {
            "optimizer": optimiser.state_dict(),
            "scheduler": scheduler.state_dict(),
            "progress": state,
        }
        save_epoch_checkpoint(model, path, train_state)
        for old in epoch_checkpoints(out)[: -settings.keep_checkpoints]:
            old.unlink()
        run.log("epoch", **record)
        run.unit_done(f"epoch{epoch}", **record)
    if not (out / BEST_NAME).exists():  # never validated: the last model is the best we have
        save_denoiser(model, out / BEST_NAME)
    with atomic_path(out / FINAL_NAME) as temporary:
        shutil.copyfile(out / BEST_NAME, temporary)
    run.finish(epochs=state["epoch"], best_epoch=state["best_epoch"], best_val=state["best_val"])
    return out / FINAL_NAME


COMMAND = step_command("train-denoiser", TrainDenoiserSettings, run_train_denoiser)
main = COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())
