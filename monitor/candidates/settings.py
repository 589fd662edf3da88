"""The ``[detector]`` section: how windows are chosen for the classifier, and stage 1's knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from monitor.limits import check_limits

DetectorMode = Literal["cascade", "every-window"]


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    # "cascade": only windows centred on stage-1 boxes are scored; "every-window": all of them.
    mode: DetectorMode = field(default="cascade", metadata={"choices": ("cascade", "every-window")})
    low_hz: float = field(default=50.0, metadata={"min": 0.0})  # the band searched for energy
    high_hz: float = field(default=4000.0, metadata={"gt": 0.0})
    frame_s: float = field(default=0.04, metadata={"gt": 0.0})  # FFT length (25 Hz bins)
    frame_hop_s: float = field(default=0.02, metadata={"gt": 0.0})
    smooth_frames: int = field(default=5, metadata={"min": 1})  # time smoothing (odd)
    # The background floor of a band: a quantile of the block means of the last history_s
    # and the next lookahead_s (not the block's own).
    block_s: float = field(default=0.5, metadata={"gt": 0.0})
    history_s: float = field(default=6.0, metadata={"gt": 0.0})
    # Which quantile: a call shorter than (1 - quantile) × (history_s + lookahead_s) does not
    # raise it.
    floor_quantile: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    # The floor also reads this far ahead (boxes are known this much later): a step in the
    # background (a new recording, a ship arriving) is part of the floor from its first frame.
    lookahead_s: float = field(default=6.0, metadata={"min": 0.0})
    threshold_db: float = field(default=10.0, metadata={"gt": 0.0})  # a cell is active above this
    min_snr_db: float = field(default=18.0, metadata={"min": 0.0})  # a box's peak SNR
    min_cells: int = field(default=3, metadata={"min": 1})  # active cells for an active frame
    band_share: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})  # box band bins
    # A box spans the frames whose power over the floor is within edge_drop_db of its loudest
    # frame's (0: all its active frames): a weak lead-in or tail does not stretch it.
    edge_drop_db: float = field(default=10.0, metadata={"min": 0.0})
    min_duration_s: float = field(default=0.2, metadata={"min": 0.0})
    min_bandwidth_hz: float = field(default=0.0, metadata={"min": 0.0})
    merge_gap_s: float = field(default=0.3, metadata={"min": 0.0})  # bridges pulses of one call
    # Cells this close in frequency are one sound (with merge_gap_s in time); sounds whose time
    # spans overlap by same_sound_overlap of their union (harmonics) are one box.
    merge_hz: float = field(default=50.0, metadata={"min": 0.0})
    same_sound_overlap: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    max_duration_s: float = field(default=10.0, metadata={"gt": 0.0})  # longer boxes are split
    # Mains hum: bins within hum_width_hz of a multiple of hum_hz never make a cell active.
    hum_hz: float = field(default=60.0, metadata={"min": 0.0})  # 0: no hum notches
    hum_width_hz: float = field(default=10.0, metadata={"min": 0.0})
    min_positive_candidates: int = field(default=1, metadata={"min": 1})  # events' min hits

    def __post_init__(self) -> None:
        check_limits(self)
        if self.high_hz <= self.low_hz:
            raise ValueError(f"detector band {self.low_hz}..{self.high_hz} Hz is empty")
        if self.frame_hop_s > self.frame_s:
            raise ValueError("detector frame_hop_s must be <= frame_s")
        if abs(self.lookahead_s / self.block_s - round(self.lookahead_s / self.block_s)) > 1e-6:
            raise ValueError("detector lookahead_s must be a whole number of block_s")
        if self.history_s < self.block_s:
            raise ValueError("detector history_s must be >= block_s")
