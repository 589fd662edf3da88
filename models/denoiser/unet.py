"""The ORCA-CLEAN U-Net: a classic 4-level U-Net that maps a spectrogram to a [0, 1] mask.

Layout (B, 1, time, freq). Child and parameter names follow the upstream state-dict keys
(`inc.double_conv.0.weight`, `down1.maxpool_conv.1.double_conv.0.weight`, `up1.up.weight`,
`up1.conv.double_conv.0.weight`, `outc.conv.weight`, ...) so that upstream checkpoints load
as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 4
LEAKY_SLOPE = 0.1


class DoubleConv(nn.Module):
    """[Conv 3×3 pad 1 → BatchNorm → LeakyReLU(0.1)] × 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(LEAKY_SLOPE),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class DownStep(nn.Module):
    """Max-pool by 2, then a double conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class UpStep(nn.Module):
    """Transposed conv halving the channels, pad to the skip's size, concat [skip, up], conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        d_time = skip.shape[2] - x.shape[2]
        d_freq = skip.shape[3] - x.shape[3]
        # Odd sizes lose a row/column when pooled; pad it back, split evenly on both sides.
        x = F.pad(x, [d_freq // 2, d_freq - d_freq // 2, d_time // 2, d_time - d_time // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Module):
    """1×1 convolution to the output channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """ORCA-CLEAN's U-Net. 31,042,369 parameters at base width 64.

    Input: normalised spectrogram (B, 1, time, freq), time and freq at least 16
    (four poolings by 2). Output: sigmoid mask of the same shape.
    """

    def __init__(self, base_width: int = 64) -> None:
        super().__init__()
        if not isinstance(base_width, int) or isinstance(base_width, bool) or base_width < 2:
            raise ValueError(f"base_width must be an int >= 2, got {base_width!r}")
        if base_width % 2:
            raise ValueError(f"base_width must be even (the decoder halves it), got {base_width}")
        self.base_width = base_width
        w = base_width
        self.inc = DoubleConv(1, w)
        self.down1 = DownStep(w, 2 * w)
        self.down2 = DownStep(2 * w, 4 * w)
        self.down3 = DownStep(4 * w, 8 * w)
        self.down4 = DownStep(8 * w, 16 * w)
        self.up1 = UpStep(16 * w, 8 * w)
        self.up2 = UpStep(8 * w, 4 * w)
        self.up3 = UpStep(4 * w, 2 * w)
        self.up4 = UpStep(2 * w, w)
        self.outc = OutConv(w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"expected (B, 1, time, freq), got {tuple(x.shape)}")
        if x.shape[2] < 2**LEVELS or x.shape[3] < 2**LEVELS:
            raise ValueError(
                f"time and freq must be at least {2**LEVELS} (got {tuple(x.shape[2:])})"
            )
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        y = self.up1(x5, x4)
        y = self.up2(y, x3)
        y = self.up3(y, x2)
        y = self.up4(y, x1)
        return torch.sigmoid(self.outc(y))
