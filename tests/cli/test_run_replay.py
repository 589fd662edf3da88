"""``hydromon run`` / ``replay`` refuse bad input with a clear error and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.runtime.resume import state_path
from tests.support.e2e import config_toml
from tests.support.pipeline import tiny_checkpoint


@pytest.fixture
def config(tmp_path: Path, moto_server) -> Path:
    path = tmp_path / "hydromon.toml"
    path.write_text(
        config_toml(
            endpoint=moto_server.endpoint_url,
            bucket="no-such-bucket",
            node="rpi_cli",
            classifier=tiny_checkpoint(tmp_path / "tiny"),
            workdir=tmp_path,
            state_dir=tmp_path / "state",
        ).replace('target_labels = ["humpback"]', 'target_labels = ["Whale vocalization"]')
    )
    return path


def test_a_corrupt_state_file_stops_run_before_anything_starts(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = state_path(tmp_path / "state", "live", "rpi_cli")
    saved.parent.mkdir(parents=True)
    saved.write_text("{half a file")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "corrupt state file" in err and str(saved) in err
    assert saved.read_text() == "{half a file"  # left for the operator to look at


def test_a_missing_classifier_is_named(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["run", "--config", str(config), "--classifier", str(missing)]) == 2
    assert "cannot load the models" in capsys.readouterr().err


def test_an_unusable_device_is_named(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(config), "--device", "cuda:99"]) == 2
    err = capsys.readouterr().err
    assert "cannot load the models" in err and "cuda:99" in err


def test_replay_refuses_an_empty_range(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["replay", "--config", str(config), "--feed", "rpi_cli"]
    args += ["--start", "2024-06-07T12:00:00Z", "--end", "2024-06-07T11:00:00Z"]
    assert main(args) == 2
    assert "empty range" in capsys.readouterr().err
