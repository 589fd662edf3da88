"""A detection's spectrogram as a PNG: numpy STFT, drawn with Pillow.

Axes are labelled (UTC time of day, with the date in the axis title; frequency in kHz), the
detection's box is drawn (its band when the detector gives one, else the full band shown) and a
title line names the feed, label and score. Pillow rather than matplotlib: a figure here is one
image, a rectangle and a few lines of text, which Pillow draws in a few milliseconds with no
global state (safe in a worker thread), while matplotlib is a ~40 MB dependency that takes about
a second to import; a PNG writer of our own would need a font of its own for the labels.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Colour ramp from quiet to loud (dark blue → purple → orange → pale yellow), interpolated.
_RAMP = np.array(
    [
        [0, 0, 16],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float64,
)
# A palette image (one byte per pixel, a third of RGB's size): 252 levels of the ramp, then the
# colours of the frame.
_LEVELS = 252
_WHITE, _INK, _BOX = 252, 253, 254
_STOPS = np.linspace(0, 1, len(_RAMP))
_PALETTE = np.zeros((256, 3), dtype=np.uint8)
_PALETTE[:_LEVELS] = np.stack(
    [np.interp(np.linspace(0, 1, _LEVELS), _STOPS, _RAMP[:, c]) for c in range(3)], axis=1
)
_PALETTE[_WHITE], _PALETTE[_INK], _PALETTE[_BOX] = (255, 255, 255), (30, 30, 30), (0, 255, 255)
_TIME_STEPS_S = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)


@dataclass(frozen=True, slots=True)
class SpectrogramSettings:
    width_px: int = field(default=900, metadata={"min": 200})  # the plot area
    height_px: int = field(default=300, metadata={"min": 100})
    max_freq_hz: float | None = field(default=12000.0, metadata={"gt": 0.0})  # None: Nyquist
    fft_s: float = field(default=0.04, metadata={"gt": 0.0})  # analysis window length
    dynamic_range_db: float = field(default=70.0, metadata={"gt": 0.0})


@dataclass(frozen=True, slots=True)
class Box:
    start_utc: datetime
    end_utc: datetime
    low_hz: float | None = None  # None: the full band shown
    high_hz: float | None = None


def power_db(samples: np.ndarray, rate: int, settings: SpectrogramSettings) -> np.ndarray:
    """(frequency bins, frames) in dB, lowest frequency first."""
    n_fft = 1 << max(6, math.ceil(math.log2(max(2, settings.fft_s * rate))))
    hop = n_fft // 4
    signal = np.asarray(samples, dtype=np.float32)
    if signal.shape[0] < n_fft:
        signal = np.pad(signal, (0, n_fft - signal.shape[0]))
    frames = 1 + (signal.shape[0] - n_fft) // hop
    strided = np.lib.stride_tricks.as_strided(
        signal, (frames, n_fft), (signal.strides[0] * hop, signal.strides[0]), writeable=False
    )
    spectrum = np.fft.rfft(strided * np.hanning(n_fft).astype(np.float32), axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).T
    return 10.0 * np.log10(power + 1e-12)


def render_png(
    samples: np.ndarray,
    rate: int,
    start_utc: datetime,
    box: Box,
    title: str,
    settings: SpectrogramSettings,
) -> bytes:
    """The PNG bytes of ``samples`` (mono float32 starting at ``start_utc``)."""
    nyquist = rate / 2
    top_hz = min(nyquist, settings.max_freq_hz or nyquist)
    db = power_db(samples, rate, settings)
    bins = max(2, round(db.shape[0] * top_hz / nyquist))
    db = db[:bins]
    peak = float(db.max())
    level = np.clip((db - (peak - settings.dynamic_range_db)) / settings.dynamic_range_db, 0, 1)
    levels = np.round(level[::-1] * (_LEVELS - 1)).astype(np.uint8)  # high frequencies on top
    width, height = settings.width_px, settings.height_px
    plot = Image.fromarray(levels, "L").resize((width, height), Image.Resampling.BILINEAR)

    font = ImageFont.load_default(12)
    left, right, top, bottom = 62, 16, 26, 44
    canvas = np.full((top + height + bottom, left + width + right), _WHITE, dtype=np.uint8)
    canvas[top : top + height, left : left + width] = np.asarray(plot)
    image = Image.fromarray(canvas, "P")
    image.putpalette(_PALETTE.tobytes())
    draw = ImageDraw.Draw(image)
    duration_s = len(samples) / rate

    def x_of(moment: datetime) -> float:
        seconds = (moment - start_utc).total_seconds()
        return left + min(max(seconds / duration_s, 0.0), 1.0) * width if duration_s else left

    def y_of(hz: float) -> float:
        return top + height * (1 - min(max(hz / top_hz, 0.0), 1.0))

    low = 0.0 if box.low_hz is None else box.low_hz
    high = top_hz if box.high_hz is None else box.high_hz
    rectangle = (x_of(box.start_utc), y_of(high), x_of(box.end_utc), y_of(low))
    draw.rectangle(rectangle, outline=_BOX, width=2)
    draw.rectangle((left, top, left + width, top + height), outline=_INK, width=1)

    step = next((s for s in _TIME_STEPS_S if duration_s / s <= 8), _TIME_STEPS_S[-1])
    first = math.ceil(start_utc.timestamp() / step) * step
    tick = first
    while tick <= start_utc.timestamp() + duration_s + 1e-9:
        moment = start_utc + timedelta(seconds=tick - start_utc.timestamp())
        x = x_of(moment)
        draw.line((x, top + height, x, top + height + 4), fill=_INK)
        text = f"{moment:%H:%M:%S}" + (f".{moment.microsecond // 100000}" if step < 1 else "")
        draw.text((x, top + height + 6), text, fill=_INK, font=font, anchor="ma")
        tick += step
    draw.text(
        (left + width / 2, top + height + 24),
        f"time (UTC, {start_utc:%Y-%m-%d})",
        fill=_INK,
        font=font,
        anchor="ma",
    )

    khz_step = next(s for s in (0.5, 1, 2, 5, 10, 20) if top_hz / 1000 / s <= 6)
    khz = 0.0
    while khz * 1000 <= top_hz + 1e-6:
        y = y_of(khz * 1000)
        draw.line((left - 4, y, left, y), fill=_INK)
        draw.text((left - 6, y), f"{khz:g}", fill=_INK, font=font, anchor="rm")
        khz += khz_step
    label = Image.new("P", (height, 16), _WHITE)
    label.putpalette(_PALETTE.tobytes())
    ImageDraw.Draw(label).text(
        (height / 2, 8), "frequency (kHz)", fill=_INK, font=font, anchor="mm"
    )
    image.paste(label.rotate(90, expand=True), (4, top))
    draw.text((left, 6), title, fill=_INK, font=font)

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()
