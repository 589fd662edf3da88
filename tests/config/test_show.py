"""``hydromon config show`` as a real subprocess of the installed entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from monitor.config.loader import Config, ConfigError, build, load_config, parse_set

REPO = Path(__file__).resolve().parents[2]
HYDROMON = Path(sys.executable).parent / "hydromon"


def hydromon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HYDROMON_")}
    return subprocess.run(
        [str(HYDROMON), *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_show_prints_the_effective_config_as_toml() -> None:
    done = hydromon("config", "show", "--config", "config/default.toml")
    assert done.returncode == 0, done.stderr
    shown = build(Config, tomllib.loads(done.stdout))
    assert shown == load_config(REPO / "config" / "default.toml", env={})


def test_show_applies_env_then_flags_and_prints_json() -> None:
    done = hydromon(
        "config",
        "show",
        "--format",
        "json",
        "--set",
        "engine.max_batch=16",
        "--redis-url",
        "redis://127.0.0.1:6390/0",
        "--feeds",
        "rpi_bush_point",
        env={"HYDROMON_ENGINE__MAX_BATCH": "4", "HYDROMON_ENGINE__MAX_WAIT_MS": "7"},
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["engine"]["max_batch"] == 16
    assert shown["engine"]["max_wait_ms"] == 7.0
    assert shown["redis"]["url"] == "redis://127.0.0.1:6390/0"
    assert shown["outputs"]["redis"] is True  # --redis-url turns the output on
    assert [f["node"] for f in shown["feeds"] if f["enabled"]] == ["rpi_bush_point"]


def test_show_reads_the_file_named_by_hydromon_config(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("[http]\nport = 9999\n", encoding="utf-8")
    done = hydromon("config", "show", "--format", "json", env={"HYDROMON_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["http"]["port"] == 9999


def test_show_exits_2_naming_the_bad_setting(tmp_path: Path) -> None:
    done = hydromon("config", "show", "--set", "engine.max_batch=x")
    assert done.returncode == 2
    assert done.stdout == ""
    assert 'engine.max_batch: expected an integer ≥ 1, got "x"' in done.stderr

    path = tmp_path / "bad.toml"
    path.write_text("[websocket]\nhots = '0.0.0.0'\n", encoding="utf-8")
    done = hydromon("config", "show", "--config", str(path))
    assert done.returncode == 2
    assert "websocket.hots: unknown setting" in done.stderr

    done = hydromon("config", "show", "--config", str(tmp_path / "missing.toml"))
    assert done.returncode == 2
    assert "no such configuration file" in done.stderr


def test_show_nested_overrides_and_derived_settings() -> None:
    done = hydromon(
        "config",
        "show",
        "--config",
        "config/default.toml",
        "--set",
        "follower.timing.precedence=number",
        "--set",
        "classifier.bundle=",  # the AudioSet labels, whose thresholds follow default_threshold
        env={"HYDROMON_FOLLOWER__ARCHIVE__PREFETCH": "2", "HYDROMON_DECODER__CHANNEL_POLICY": "1"},
    )
    assert done.returncode == 0, done.stderr
    shown = tomllib.loads(done.stdout)
    assert shown["follower"]["timing"]["precedence"] == "number"
    assert shown["follower"]["archive"]["prefetch"] == 2
    assert "timing" not in shown["follower"]["archive"]  # follows follower.timing
    assert shown["decoder"]["channel_policy"] == 1
    assert "# [follower.archive.timing] follows follower.timing" in done.stdout
    assert '# thresholds = { "Whale vocalization" = 0.5 }  (follows' in done.stdout
    config = build(Config, shown)
    assert config.follower.archive.timing.precedence.value == "number"


def test_show_redis_url_flag_turns_the_output_on_and_off() -> None:
    on = hydromon("config", "show", "--format", "json", "--redis-url", "redis://h:1/0")
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout)["outputs"]["redis"] is True
    off = hydromon(
        "config",
        "show",
        "--format",
        "json",
        "--redis-url",
        "",
        env={"HYDROMON_OUTPUTS__REDIS": "true"},
    )
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout)["outputs"]["redis"] is False  # the flag is over the env


def test_a_node_name_that_is_a_path_is_refused_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "escape.toml"
    config.write_text('[[feeds]]\nnode = "../../escaped"\n')
    for command in (("config", "show"), ("run",)):
        done = hydromon(*command, "--config", str(config), "--state-dir", str(tmp_path))
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1, done.stderr
        assert "feeds[0].node: expected a node name" in done.stderr
        assert '"../../escaped"' in done.stderr
    assert sorted(p.name for p in tmp_path.parent.iterdir() if "escaped" in p.name) == []


def test_every_node_name_is_one_plain_path_component() -> None:
    for bad in ("..", ".", "a/b", "a\\b", "", "nö", "a b"):
        with pytest.raises(ConfigError, match="node: expected a node name"):
            load_config(env={}, overrides=[parse_set(f"feeds.rpi_bush_point.node={bad}")])
    renamed = load_config(env={}, overrides=[parse_set("feeds.rpi_bush_point.node=rpi.bush-2_b")])
    assert "rpi.bush-2_b" in [feed.node for feed in renamed.feeds]


def test_a_server_on_a_non_loopback_address_needs_a_token(tmp_path: Path) -> None:
    for setting in ("websocket.host=0.0.0.0", "http.host=192.0.2.7", "http.host=::"):
        done = hydromon("run", "--set", setting, "--state-dir", str(tmp_path))
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1, done.stderr
        where = setting.split("=")[0]
        assert f"bad configuration: {where}: " in done.stderr
        assert "websocket.token" in done.stderr and "allow_anonymous" in done.stderr
    for allowed in (
        ["--set", "websocket.host=0.0.0.0", "--set", "websocket.token=t"],
        ["--set", "http.host=0.0.0.0", "--set", "access.allow_anonymous=true"],
        ["--set", "websocket.host=localhost", "--set", "http.host=::1"],
        ["--set", "http.host=0.0.0.0", "--set", "http.enabled=false"],
    ):
        assert hydromon("config", "show", *allowed).returncode == 0, allowed
    token = load_config(env={}, overrides=[parse_set("websocket.token=t")])
    assert token.http.token == "t"  # one token for every server


def test_show_masks_tokens_and_url_passwords() -> None:
    secrets = ("HuntER2", "pAss:w0rd")
    for fmt in ("toml", "json"):
        done = hydromon(
            "config", "show", "--format", fmt,
            "--set", f"websocket.token={secrets[0]}",
            "--redis-url", f"redis://user:{secrets[1]}@redis.example:6379/0",
            "--set", "s3.endpoint_url=http://key:pw@127.0.0.1:9000",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert not any(secret in done.stdout for secret in secrets), done.stdout
        assert ":pw@" not in done.stdout
        assert "redis://user:***@redis.example:6379/0" in done.stdout
        assert "http://key:***@127.0.0.1:9000" in done.stdout
        assert '"***"' in done.stdout
