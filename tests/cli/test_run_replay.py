"""``hydromon run`` / ``replay`` refuse bad input with a clear error and exit code 2."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.runtime.locks import lock_spool, lock_state_dir
from monitor.runtime.resume import state_path
from tests.support.e2e import config_toml
from tests.support.pipeline import tiny_checkpoint
from tests.support.synthetic_node import synthetic_node


def cli_config(tmp_path: Path, endpoint: str, bucket: str) -> Path:
    path = tmp_path / "hydromon.toml"
    path.write_text(
        config_toml(
            endpoint=endpoint,
            bucket=bucket,
            node="rpi_cli",
            classifier=tiny_checkpoint(tmp_path / "tiny"),
            workdir=tmp_path,
            state_dir=tmp_path / "state",
        ).replace('target_labels = ["humpback"]', 'target_labels = ["Whale vocalization"]')
    )
    return path


@pytest.fixture
def config(tmp_path: Path, moto_server) -> Path:
    return cli_config(tmp_path, moto_server.endpoint_url, "no-such-bucket")


def replay_args(config: Path, feed: str = "rpi_cli", *, day: str = "2024-06-07") -> list[str]:
    args = ["replay", "--config", str(config), "--feed", feed]
    return [*args, "--start", f"{day}T00:00:00Z", "--end", f"{day}T23:59:59Z"]


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


def test_replay_refuses_a_feed_that_is_not_configured(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(replay_args(config, "nope")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown feed 'nope'" in err and "rpi_cli" in err


def test_a_replay_that_cannot_load_its_models_reports_no_replayed_audio(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*replay_args(config), "--classifier", str(tmp_path / "nowhere")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot load the models" in err and "replayed" not in err


@pytest.mark.parametrize("command", ["run", "replay"])
def test_a_second_daemon_on_the_same_state_directory_exits_2(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    held = lock_state_dir(tmp_path / "state")  # as a running daemon holds it
    try:
        args = ["run", "--config", str(config)] if command == "run" else replay_args(config)
        assert main(args) == 2
    finally:
        held.release()
    err = capsys.readouterr().err
    assert "in use by another hydromon" in err and str(tmp_path / "state") in err
    assert "replayed" not in err


def test_a_replay_of_a_day_with_20_s_of_audio_reports_20_s(
    moto_server, bucket_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    epoch = 1_717_761_600  # 2024-06-07T12:00:00Z: two 10 s segments in the whole day

    async def upload() -> None:
        async with synthetic_node(moto_server.endpoint_url, bucket_name, "rpi_cli") as node:
            await node.set_latest(epoch)
            await node.put_segments(epoch, range(2))
            await node.put_legacy_playlist(epoch, range(2))

    asyncio.run(upload())
    config = cli_config(tmp_path, moto_server.endpoint_url, bucket_name)
    assert main([*replay_args(config), "--out", str(tmp_path / "out")]) == 0
    [summary] = [line for line in capsys.readouterr().err.splitlines() if "replayed" in line]
    seconds = float(summary.split()[1])
    assert 15 <= seconds <= 21, summary


@pytest.mark.parametrize("command", ["run", "replay"])
def test_a_missing_bucket_exits_2_with_one_line_instead_of_restarting_the_feed(
    config: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--config", str(config)] if command == "run" else replay_args(config)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot read the bucket" in err and "no-such-bucket" in err
    assert "restarting" not in err and "Traceback" not in err


def test_a_second_daemon_on_the_same_redis_spool_exits_2(
    moto_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "with-redis.toml"
    text = cli_config(tmp_path, moto_server.endpoint_url, "no-such-bucket").read_text()
    config.write_text(text.replace("redis = false", "redis = true", 1))
    spool = tmp_path / "spool" / "redis.sqlite3"
    held = lock_spool(spool)  # another daemon, with a state dir of its own, drains this spool
    try:
        assert main(["run", "--config", str(config)]) == 2
    finally:
        held.release()
    err = capsys.readouterr().err
    assert "in use by another hydromon" in err and str(spool) in err


def test_a_replay_into_a_folder_that_cannot_be_written_is_one_line_and_exit_2(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    assert main([*replay_args(config), "--out", str(blocked / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot write detections here" in err and str(blocked / "out") in err
    assert "Traceback" not in err and "replayed" not in err
