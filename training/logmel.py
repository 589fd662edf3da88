"""Log-mel features and a small CNN: the call-vs-noise model the noise-refine step trains."""

from __future__ import annotations

from pathlib import Path

import torch
import torchaudio
from torch import nn

from training.audio import load_mono_fixed


def log_mel_batch(paths: list[Path], sample_rate: int, n_mels: int, seconds: float) -> torch.Tensor:
    """(N, 1, n_mels, frames) log-mel features of clips, padded/cropped to ``seconds``."""
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=512, hop_length=sample_rate // 100, n_mels=n_mels
    )
    length = round(seconds * sample_rate)
    features = []
    for path in paths:
        samples = load_mono_fixed(path, sample_rate, length)
        features.append(torch.log(mel(torch.from_numpy(samples)) + 1e-6))
    return torch.stack(features).unsqueeze(1)


class CallNoiseNet(nn.Module):
    """Two conv blocks, global average pooling, one logit: small enough to train per fold."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(1),
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
        )
        self.head = nn.Linear(2 * width, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(features).flatten(1)).squeeze(1)


def train_call_noise(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    width: int,
    seed: int,
    device: torch.device | None = None,
) -> CallNoiseNet:
    """BCE with the positive class weighted to balance calls against noise."""
    device = device or torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = CallNoiseNet(width).to(device)
    positives = float(labels.sum())
    negatives = float(len(labels) - positives)
    weight = torch.tensor(negatives / max(positives, 1.0), device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            if len(batch) < 2:
                continue  # BatchNorm needs two samples
            optimiser.zero_grad()
            inputs, targets = features[batch].to(device), labels[batch].float().to(device)
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimiser.step()
    return model.eval()


def predict_call_probability(model: CallNoiseNet, features: torch.Tensor) -> torch.Tensor:
    """Call probabilities on the CPU, computed on the model's device."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        return torch.sigmoid(model(features.to(device))).cpu()
