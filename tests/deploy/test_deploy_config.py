"""deploy/hydromon.toml, the server configuration the unit and the image start with, loads;
its servers listen on every interface, so it is refused without the token."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.loader import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "hydromon.toml"
# The installed checkout's bundle path, here: this checkout's.
HERE = {"HYDROMON_CLASSIFIER__BUNDLE": str(ROOT / "models" / "default")}


def test_the_server_config_loads_with_the_token_from_the_environment() -> None:
    config = load_config(DEPLOY, env={**HERE, "HYDROMON_WEBSOCKET__TOKEN": "t0ken"})
    assert config.websocket.host == "0.0.0.0" and config.http.token == "t0ken"
    assert config.outputs.redis and config.state.dir == Path("state")
    # Everything it writes is below the working directory (the service's state directory).
    written = [config.redis.spool_path, config.files.directory, config.mqtt.spool_path]
    assert all(not Path(path).is_absolute() for path in written)


def test_without_the_token_it_is_refused() -> None:
    with pytest.raises(ConfigError, match="no token is set"):
        load_config(DEPLOY, env=HERE)
