"""The ``[cluster]`` section: how a replay is split into work units and run on Ray, and which
shard of the feeds a live daemon follows."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.cluster.shard import parse_shard
from monitor.limits import check_limits


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    # A work unit is one feed × this much of the replay range (the last one may be shorter).
    unit_s: float = field(default=3600.0, metadata={"gt": 0.0})
    # Each unit first scores this much audio before its start (doubled until the event state
    # there is known: no detection open, see monitor/cluster/unit.py).
    warmup_s: float = field(default=60.0, metadata={"gt": 0.0})
    # Ray task retries of a unit whose worker died.
    unit_retries: int = field(default=3, metadata={"min": 0})
    # Ray resources: one engine actor per node takes these; each running unit takes unit_cpus.
    engines_per_node: int = field(default=1, metadata={"min": 1})
    engine_cpus: float = field(default=1.0, metadata={"min": 0.0})
    engine_gpus: float = field(default=0.0, metadata={"min": 0.0})
    unit_cpus: float = field(default=1.0, metadata={"min": 0.0})
    # ``--cluster local``: CPUs of the local Ray cluster (0: all of this machine's).
    local_cpus: int = field(default=0, metadata={"min": 0})
    # How often the JSON status file is rewritten.
    status_interval_s: float = field(default=2.0, metadata={"gt": 0.0})
    # Live (``hydromon run``): follow only the feeds of shard "i/n" (empty: every feed).
    shard: str = ""

    def __post_init__(self) -> None:
        check_limits(self)
        if self.shard:
            parse_shard(self.shard)
