"""The records that travel from the event builder and the health monitor to the outputs.

Who a detection is about and what made it (feed, species and model identities, built by the
config loader from the config file), and the two messages themselves: ``Detection`` and
``FeedStatus``. Only the outputs turn them into dicts, with ``monitor.detect.wire.encode``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from monitor.detect.ids import random_id


@dataclass(frozen=True, slots=True)
class FeedInfo:
    node: str
    display_name: str
    lat: float | None = None
    lon: float | None = None

    @classmethod
    def unknown(cls, node: str) -> FeedInfo:
        """A feed missing from the config still gets messages, named after its node."""
        return cls(node=node, display_name=node)


@dataclass(frozen=True, slots=True)
class Species:
    common_name: str
    scientific_name: str
    itis_tsn: int


HUMPBACK = Species("humpback whale", "Megaptera novaeangliae", 180529)

# Model label name → species. The AudioSet label is mapped to humpback because that is the only
# whale this project listens for; a config can map more labels.
DEFAULT_SPECIES: dict[str, Species] = {
    "humpback": HUMPBACK,
    "Whale vocalization": HUMPBACK,
}


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    name: str
    checksum: str  # e.g. "sha256:…" of the checkpoint file


@dataclass(frozen=True, slots=True)
class PipelineModels:
    classifier: ModelIdentity
    denoiser: ModelIdentity | None = None  # None when the denoiser is switched off

    def as_dict(self) -> dict[str, dict[str, str] | None]:
        def one(model: ModelIdentity | None) -> dict[str, str] | None:
            return None if model is None else {"name": model.name, "checksum": model.checksum}

        return {"classifier": one(self.classifier), "denoiser": one(self.denoiser)}


# ---- the messages the outputs publish (encoded for the wire by ``monitor.detect.wire``) ----

DetectionStatus = Literal["opened", "closed"]
CloseReason = Literal["quiet", "max_duration", "gap", "shutdown"]


class FeedState(enum.StrEnum):
    """A feed's health: the one vocabulary of /status, the metrics and ``feed_status``."""

    UNKNOWN = "unknown"  # nothing heard yet (never published)
    ABSENT = "absent"
    OFFLINE = "offline"
    SILENT = "silent"
    UNINTELLIGIBLE = "unintelligible"
    LAGGED = "lagged"
    UP = "up"


@dataclass(frozen=True, slots=True)
class SegmentUse:
    """The part of one segment that a detection's windows read."""

    bucket: str
    key: str
    folder_epoch: int
    number: int
    offset_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class DetectionSummary:
    """Everything a detection message reports, frozen at the moment it is emitted."""

    id: str
    feed: FeedInfo
    label: str
    species: Species | None
    start_utc: datetime
    end_utc: datetime
    score_max: float
    score_mean: float
    window_count: int
    positive_window_count: int
    window_s: float
    hop_s: float
    threshold: float
    min_positive_windows: int
    contains_gap: bool
    gap_s: float
    previous_id: str | None
    segments: tuple[SegmentUse, ...]


@dataclass(frozen=True, slots=True)
class DetectionMedia:
    """A closed detection's files, as URLs relative to the HTTP server's root
    (``media/<feed>/<day>/<id>.<ext>``; see ``monitor/media``)."""

    audio: str  # browser-playable (Ogg/Opus)
    audio_archive: str  # lossless (FLAC)
    spectrogram: str  # PNG
    clip_start_utc: datetime  # where the clips begin (the detection start − the margin, or later)
    audio_denoised: str | None = None  # only when a denoiser ran
    audio_denoised_archive: str | None = None

    def urls(self) -> dict[str, str]:
        pairs = {
            "audio": self.audio,
            "audio_archive": self.audio_archive,
            "spectrogram": self.spectrogram,
            "audio_denoised": self.audio_denoised,
            "audio_denoised_archive": self.audio_denoised_archive,
        }
        return {name: url for name, url in pairs.items() if url is not None}


@dataclass(frozen=True, slots=True)
class Detection:
    """A detection opened or closed. ``audio_end_utc``: the end of the audio that triggered
    the message; ``scored_utc``: when that audio was scored (None when nothing was scored,
    e.g. a shutdown or a gap closed it)."""

    summary: DetectionSummary
    status: DetectionStatus
    models: PipelineModels
    emitted_utc: datetime
    audio_end_utc: datetime
    scored_utc: datetime | None = None
    close_reason: CloseReason | None = None
    media: DetectionMedia | None = None  # closed detections, when media writing is on

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def message_id(self) -> str:
        return f"{self.summary.id}.{self.status}"

    @property
    def feed(self) -> FeedInfo:
        return self.summary.feed


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A feed changed state (from the health monitor, published by the outputs)."""

    feed: FeedInfo
    state: FeedState
    previous: FeedState
    since_utc: datetime
    emitted_utc: datetime
    details: Mapping[str, object] = field(default_factory=dict)
    message_id: str = ""  # "": a fresh random id (from ``emitted_utc``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", FeedState(self.state))
        object.__setattr__(self, "previous", FeedState(self.previous))
        if not self.message_id:
            object.__setattr__(self, "message_id", random_id(self.emitted_utc))


# What the event builder and the health monitor hand to the fan-out.
Message = Detection | FeedStatus
