"""Step 5: the denoised twin of a clip set, made with the same ``models.denoiser`` code (and
streaming chunking) the daemon runs. Clips are resampled to the denoiser's rate, denoised in
batches of equal length, resampled back to the clip rate and written with a new manifest whose
rows match the input's one for one. One batch is one unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.denoiser import load_denoiser
from models.device import select_device
from training.audio import load_mono, resample, save_mono
from training.cli_support import step_command
from training.manifest import Clip, manifest_file, read_manifest, write_manifest
from training.steprun import StepRun


@dataclass(frozen=True)
class DenoiseSettings:
    batch_size: int = 8
    clip_format: str = "flac"
    device: str = "auto"


def batches(clips: list[Clip], size: int) -> list[list[Clip]]:
    """Clips grouped by length in samples (no padding), then cut into batches, in a fixed order."""
    by_length: dict[tuple[int, int], list[Clip]] = {}
    for clip in clips:
        length = round((clip.end_s - clip.start_s) * clip.sample_rate)
        by_length.setdefault((length, clip.sample_rate), []).append(clip)
    out = []
    for key in sorted(by_length):
        group = by_length[key]
        out += [group[i : i + size] for i in range(0, len(group), size)]
    return out


def denoised_path(out: Path, clip: Clip, clip_format: str) -> Path:
    return out / "clips" / f"{clip.clip_id}.{clip_format}"


def run_denoise(
    settings: DenoiseSettings,
    out: Path,
    manifest: Path,
    checkpoint: Path,
    *,
    max_units: int | None = None,
) -> Path:
    manifest_path = manifest_file(manifest)
    run = StepRun(
        "denoise",
        out,
        settings,
        inputs={"manifest": manifest_path, "denoiser": checkpoint},
        max_units=max_units,
    )
    clips = read_manifest(manifest_path)
    denoiser = load_denoiser(checkpoint, select_device(settings.device))
    rate = denoiser.sample_rate
    device = next(denoiser.parameters()).device
    for number, batch in enumerate(
        tqdm(batches(clips, settings.batch_size), desc="denoise", unit="batch")
    ):
        unit = f"batch{number}:{batch[0].clip_id}"
        if run.progress.done(unit):
            continue
        audio = np.stack([load_mono(clip.path, rate) for clip in batch])
        cleaned = denoiser.denoise(torch.from_numpy(audio).to(device)).cpu().numpy()
        for clip, samples in zip(batch, cleaned, strict=True):
            save_mono(
                denoised_path(out, clip, settings.clip_format),
                resample(samples, rate, clip.sample_rate),
                clip.sample_rate,
            )
        run.unit_done(unit, clips=len(batch))
    write_manifest(
        out / "manifest.csv", [c.moved(denoised_path(out, c, settings.clip_format)) for c in clips]
    )
    run.finish(clips=len(clips), denoiser_sha256=denoiser.checkpoint_sha256)
    return out / "manifest.csv"


COMMAND = step_command("denoise", DenoiseSettings, run_denoise)
main = COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())
