"""Provisional settings sections for components whose own modules do not define them yet.

Each class here belongs in its component's module (named in its docstring); once the component
defines it, ``monitor/config.py`` imports it from there and the class here is deleted. The fields
are what the component needs; defaults match ``config/default.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Field metadata the config loader checks: "min"/"max" (inclusive), "gt" (exclusive lower bound),
# "choices" (allowed values). Components may use the same keys on their own dataclasses.


def _at_least(value: float) -> dict[str, float]:
    return {"min": value}


def _above(value: float) -> dict[str, float]:
    return {"gt": value}


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Belongs in ``monitor/hls/s3.py``."""

    bucket: str = "audio-orcasound-net"
    region: str = "us-west-2"
    endpoint_url: str | None = None  # None: AWS; set for a local S3 (moto, minio)
    unsigned: bool = True  # the Orcasound bucket is public: no credentials
    connect_timeout_s: float = field(default=10.0, metadata=_above(0))
    read_timeout_s: float = field(default=30.0, metadata=_above(0))
    max_attempts: int = field(default=5, metadata=_at_least(1))


@dataclass(frozen=True, slots=True)
class FollowerSettings:
    """Belongs in ``monitor/hls/follower.py``."""

    poll_interval_s: float = field(default=5.0, metadata=_above(0))
    latest_poll_interval_s: float = field(default=30.0, metadata=_above(0))
    segment_grace_s: float = field(default=60.0, metadata=_at_least(0))  # then a gap
    start_behind_s: float = field(default=30.0, metadata=_at_least(0))  # start this far back


@dataclass(frozen=True, slots=True)
class DecoderSettings:
    """Belongs in ``monitor/audio/decoder.py``."""

    sample_rate: int = field(default=48_000, metadata=_at_least(8_000))
    workers: int = field(default=2, metadata=_at_least(1))
    channel: str = "mix"  # "mix", "best" (the louder live channel) or a channel index "0", "1"

    def __post_init__(self) -> None:
        check_channel(self.channel)


def check_channel(channel: str) -> None:
    if channel not in ("mix", "best") and not channel.isdigit():
        raise ValueError(f'channel: expected "mix", "best" or a channel index, got "{channel}"')


@dataclass(frozen=True, slots=True)
class WindowSettings:
    """Belongs in ``monitor/audio/window.py`` (or the windowing module)."""

    length_s: float | None = field(default=None, metadata=_above(0))  # None: the classifier's
    hop_s: float = field(default=2.0, metadata=_above(0))
    ring_seconds: float = field(default=120.0, metadata=_above(0))


@dataclass(frozen=True, slots=True)
class ClassifierSettings:
    """Belongs in ``models/classifier``."""

    source: str = "MIT/ast-finetuned-audioset-10-10-0.4593"  # hub id or local directory
    target_labels: tuple[str, ...] = ("Whale vocalization",)
    default_threshold: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    thresholds: dict[str, float] = field(default_factory=dict)  # per label, 0..1

    def __post_init__(self) -> None:
        if not self.target_labels:
            raise ValueError("target_labels: expected at least one label")
        check_thresholds(self.thresholds)


def check_thresholds(thresholds: dict[str, float]) -> None:
    for label, value in thresholds.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f'thresholds."{label}": expected a number in 0..1, got {value}')


@dataclass(frozen=True, slots=True)
class DenoiserSettings:
    """Belongs in ``models/denoiser``."""

    checkpoint: Path | None = None  # None: no denoising


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Belongs in ``models/engine.py``."""

    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda")})
    max_batch: int = field(default=8, metadata=_at_least(1))
    max_wait_ms: float = field(default=50.0, metadata=_at_least(0))
    queue_size: int = field(default=64, metadata=_at_least(1))
    torch_threads: int = field(default=1, metadata=_at_least(1))


@dataclass(frozen=True, slots=True)
class EventSettings:
    """Belongs in ``monitor/events/builder.py``."""

    min_windows: int = field(default=2, metadata=_at_least(1))  # positive windows to open
    close_after_s: float = field(default=6.0, metadata=_above(0))  # quiet time that closes
    max_duration_s: float = field(default=120.0, metadata=_above(0))


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Belongs in ``monitor/outputs/redis.py``."""

    url: str | None = None  # None: Redis output off
    stream: str = "hydromon:detections"
    channel: str = "hydromon:detections"
    stream_maxlen: int = field(default=100_000, metadata=_at_least(1))
    spool_dir: Path = Path("var/spool")


@dataclass(frozen=True, slots=True)
class WebsocketSettings:
    """Belongs in ``monitor/outputs/websocket.py``."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = field(default=8765, metadata={"min": 0, "max": 65535})
    token: str | None = None  # None: no token asked (loopback only is the default)
    client_queue: int = field(default=256, metadata=_at_least(1))


@dataclass(frozen=True, slots=True)
class FilesSettings:
    """Belongs in ``monitor/outputs/files.py``."""

    enabled: bool = True
    dir: Path = Path("var/detections")  # one JSON-lines file per UTC day


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = field(default="info", metadata={"choices": ("debug", "info", "warning", "error")})
    json: bool = True  # JSON lines (the daemon's default); false: readable lines


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """One hydrophone: the S3 prefix (node) and what to tell people about it."""

    node: str
    name: str = ""  # display name; empty: the node name
    latitude: float | None = field(default=None, metadata={"min": -90.0, "max": 90.0})
    longitude: float | None = field(default=None, metadata={"min": -180.0, "max": 180.0})
    enabled: bool = True
    thresholds: dict[str, float] = field(default_factory=dict)  # per label, over classifier's
    channel: str | None = None  # None: the decoder's choice

    def __post_init__(self) -> None:
        if not self.node:
            raise ValueError("node: expected a non-empty node name")
        check_thresholds(self.thresholds)
        if self.channel is not None:
            check_channel(self.channel)

    @property
    def display_name(self) -> str:
        return self.name or self.node
