"""Work units tile a replay range once; shards split the feeds once, the same in every process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from monitor.cluster.shard import parse_shard, shard_of
from monitor.cluster.unit import UnitOutput
from monitor.cluster.units import ReplayRange, plan_units, reach
from monitor.config.loader import DEFAULT_FEEDS

ROOT = Path(__file__).parents[2]
T0 = datetime(2024, 6, 1, tzinfo=UTC)
NODES = [feed.node for feed in DEFAULT_FEEDS] + [f"node-{i}" for i in range(200)]


def test_units_tile_the_range_once_per_feed() -> None:
    span = ReplayRange(("a", "b"), T0, T0 + timedelta(seconds=7250))
    units = plan_units(span, 3600)
    assert len(units) == 6 and len({u.id for u in units}) == 6
    for feed in span.feeds:
        own = [u for u in units if u.feed == feed]
        assert own[0].start == span.start and own[-1].end == span.end
        assert all(a.end == b.start for a, b in pairwise(own))
    assert units[-1].seconds == 50
    assert sum(u.seconds for u in units) == span.seconds


def test_a_units_reach_stays_inside_the_range() -> None:
    span = ReplayRange(("a",), T0, T0 + timedelta(hours=2))
    first, second = plan_units(span, 3600)
    at_start = reach(first, span, warmup_s=60, margin_s=0.5, follow_s=330)
    # At the range start there is no warm-up and no margin: as the single-process replay.
    assert at_start.first_window == at_start.read_from == span.start and at_start.at_range_start
    assert at_start.last_window == first.end + timedelta(seconds=330)
    inside = reach(second, span, warmup_s=60, margin_s=0.5, follow_s=330)
    assert inside.first_window == second.start - timedelta(seconds=60)
    assert inside.read_from == inside.first_window - timedelta(seconds=0.5)
    assert inside.last_window == span.end and not inside.at_range_start
    # A warm-up reaching almost to the range start reads no audio before it (the single-process
    # replay has none), and without a margin a unit inside the range is still not at its start.
    near = reach(second, span, warmup_s=3598, margin_s=6.5, follow_s=330)
    assert near.first_window == span.start + timedelta(seconds=2)
    assert near.read_from == span.start and not near.at_range_start
    bare = reach(second, span, warmup_s=60, margin_s=0.0, follow_s=330)
    assert bare.read_from == bare.first_window and not bare.at_range_start


def test_each_detection_start_is_owned_by_one_unit() -> None:
    span = ReplayRange(("a",), T0, T0 + timedelta(seconds=100))
    outputs = [UnitOutput(unit) for unit in plan_units(span, 20)]
    for tenth in range(1000):
        moment = T0 + timedelta(seconds=tenth / 10)
        assert sum(output.owns(moment) for output in outputs) == 1


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_n_shards_cover_every_feed_exactly_once(count: int) -> None:
    shards = [parse_shard(f"{i}/{count}") for i in range(count)]
    taken = [node for shard in shards for node in shard.select(NODES)]
    assert sorted(taken) == sorted(NODES)
    if count > 1:
        assert all(shard.select(NODES) for shard in shards)  # the hash spreads them


def test_the_shard_hash_is_the_same_in_every_process() -> None:
    code = (
        "from monitor.cluster.shard import shard_of\n"
        f"print([shard_of(n, 7) for n in {NODES[:20]!r}])\n"
    )
    seen = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        seen.add(done.stdout.strip())
    assert seen == {str([shard_of(n, 7) for n in NODES[:20]])}


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1", "a/b", "0/0", ""])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected i/n"):
        parse_shard(text)


def test_run_refuses_a_bad_shard_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli.main", "run", "--shard", "3/2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("hydromon: --shard: shard '3/2'")


def test_replay_refuses_an_unknown_cluster_address_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    command = [sys.executable, "-m", "monitor.cli.main", "replay", "--feed", "rpi_bush_point"]
    command += ["--start", "2024-06-01T00:00:00Z", "--end", "2024-06-01T01:00:00Z"]
    command += ["--out", str(tmp_path / "out"), "--cluster", "nowhere:1"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "hydromon: --cluster 'nowhere:1': expected local, auto or ray://HOST:PORT"
    )
