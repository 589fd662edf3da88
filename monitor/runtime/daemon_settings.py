"""The daemon's settings (``monitor/runtime/daemon.py`` re-exports them), apart from the daemon
so that reading a configuration does not import the models."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.limits import check_limits
from monitor.runtime.pipeline import PipelineSettings


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    # feeds must drain and close within this after stop (`run --shutdown-timeout` overrides it)
    shutdown_timeout_s: float = field(default=20.0, metadata={"gt": 0.0})
    # then each output gets this long to drain
    output_close_timeout_s: float = field(default=10.0, metadata={"gt": 0.0})
    health_tick_s: float = field(default=5.0, metadata={"gt": 0.0})  # Offline, Lagged by clock
    decoder_threads: int = field(default=2, metadata={"min": 1})  # shared by all feeds
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)

    def __post_init__(self) -> None:
        check_limits(self)
