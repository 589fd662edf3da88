"""Settings only the configuration holds: what no single component owns (the classifier and
denoiser to load, the feeds, logging, which outputs run). Every other section of ``Config`` is
a component's own settings class (see docs/configuration.md)."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from models.thresholds import bad_thresholds
from monitor.audio.decode import ChannelPolicy, check_channel_policy
from monitor.inference.stream_denoise import StreamDenoiseSettings


@dataclass(frozen=True, slots=True)
class ClassifierSettings:
    source: str = "MIT/ast-finetuned-audioset-10-10-0.4593"  # hub id or local directory
    # An exported model bundle (models/bundle.py); when set, it decides source, target_labels,
    # thresholds, denoiser.checkpoint and the window (under explicit --set flags).
    bundle: Path | None = None
    target_labels: tuple[str, ...] = ("Whale vocalization",)
    default_threshold: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    thresholds: dict[str, float] = field(default_factory=dict)  # per label, 0..1

    def __post_init__(self) -> None:
        if not self.target_labels:
            raise ValueError("target_labels: expected at least one label")
        check_thresholds(self.thresholds)


def check_thresholds(thresholds: dict[str, float]) -> None:
    for label, value in bad_thresholds(thresholds).items():
        raise ValueError(f'thresholds."{label}": expected a number in 0..1, got {value}')


@dataclass(frozen=True, slots=True)
class DenoiserSettings:
    checkpoint: Path | None = None  # None: no denoising
    # Each feed's stream is denoised once, in blocks (see monitor/inference/stream_denoise.py).
    stream: StreamDenoiseSettings = field(default_factory=StreamDenoiseSettings)


@dataclass(frozen=True, slots=True)
class OutputSwitches:
    """Which outputs run; each one's settings are its own section."""

    redis: bool = False
    websocket: bool = True
    files: bool = True
    mqtt: bool = False  # the `mqtt` extra (aiomqtt)
    webhooks: bool = False  # each [[webhooks.targets]] is an output of its own
    notify: bool = False  # the `notify` extra (apprise)


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = field(default="info", metadata={"choices": ("debug", "info", "warning", "error")})
    json: bool = True  # JSON lines (the daemon's default); false: readable lines


# A node name becomes an S3 prefix and part of file names (Raven tables, resume points), so it
# is one plain path component: letters, digits, "_", "." and "-", and never "." or "..".
NODE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_node(node: object, name: str = "node") -> str:
    """``node`` if it is a usable node name; else ``ValueError`` naming the setting."""
    if not isinstance(node, str) or not NODE_NAME.fullmatch(node) or node in (".", ".."):
        raise ValueError(
            f"{name}: expected a node name of letters, digits, _ . - (not . or ..), got "
            f"{json.dumps(node, ensure_ascii=False)}"
        )
    return node


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """One hydrophone: the S3 prefix (node) and what to tell people about it."""

    node: str
    name: str = ""  # display name; empty: the node name
    latitude: float | None = field(default=None, metadata={"min": -90.0, "max": 90.0})
    longitude: float | None = field(default=None, metadata={"min": -180.0, "max": 180.0})
    enabled: bool = True
    thresholds: dict[str, float] = field(default_factory=dict)  # per label, over classifier's
    channel: ChannelPolicy | None = None  # None: decoder.channel_policy

    def __post_init__(self) -> None:
        check_node(self.node)
        check_thresholds(self.thresholds)
        if self.channel is not None:
            check_channel_policy(self.channel, "channel")

    @property
    def display_name(self) -> str:
        return self.name or self.node


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Who may use the servers. ``websocket.token`` is the one bearer token: websocket clients
    and /status and /metrics need it (/healthz and /readyz stay open for orchestrators)."""

    # A server on a non-loopback address without a token is refused unless this is true.
    allow_anonymous: bool = False


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves only this machine ("localhost", 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name (or "" = every interface) may reach other machines
