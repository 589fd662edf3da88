"""Output settings that would make the daemon spin or duplicate are refused by the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.loader import ConfigError, load_config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # 0: one heartbeat after another, as fast as the loop goes (115 % CPU)
        ("[websocket]\nheartbeat_s = 0\n", "websocket.heartbeat_s: expected a number > 0"),
        ("[websocket]\nping_interval_s = -1\n", "websocket.ping_interval_s: expected a number"),
        ("[websocket]\nping_timeout_s = 0\n", "websocket.ping_timeout_s: expected a number"),
        ("[websocket]\nclose_timeout_s = -1\n", "websocket.close_timeout_s: expected a number"),
        # 0: SET … EX 0 fails inside the delivery script
        ("[redis]\ndedupe_ttl_s = 0\n", "redis.dedupe_ttl_s: expected an integer ≥ 1"),
        ("[files]\nretry_s = 0\n", "files.retry_s: expected a number > 0"),
    ],
)
def test_unsafe_output_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "hydromon.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert message in str(caught.value)


def test_the_defaults_pass() -> None:
    config = load_config(None, env={})
    assert config.websocket.heartbeat_s > 0 and config.redis.dedupe_ttl_s >= 1
