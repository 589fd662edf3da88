"""The configuration loader: defaults, the shipped default.toml, errors, overrides."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from monitor.config.loader import (
    DEFAULT_FEEDS,
    Config,
    ConfigError,
    build,
    config_toml,
    env_overrides,
    load_config,
    parse_set,
)
from monitor.config.render import to_json
from monitor.ingest.timing import TimingSource
from monitor.runtime.resume import StateSettings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOML = REPO / "config" / "default.toml"
NODES = {
    "rpi_andrews_bay",
    "rpi_bush_point",
    "rpi_mast_center",
    "rpi_north_sjc",
    "rpi_orcasound_lab",
    "rpi_point_robinson",
    "rpi_port_townsend",
    "rpi_sunset_bay",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hydromon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_orcasound_setup() -> None:
    config = load_config(env={})
    assert config == Config()
    assert {feed.node for feed in config.feeds} == NODES
    assert config.s3.bucket == "audio-orcasound-net" and config.s3.region == "us-west-2"
    assert config.classifier.source == "MIT/ast-finetuned-audioset-10-10-0.4593"
    assert config.classifier.target_labels == ("Whale vocalization",)
    assert config.denoiser.checkpoint is None
    assert not config.outputs.redis
    assert config.websocket.host == "127.0.0.1" and config.http.host == "127.0.0.1"
    assert config.outputs.files and config.outputs.websocket
    assert config.decoder.channel_policy == "auto"  # a dead channel must not halve the signal
    assert config.events.thresholds == {"Whale vocalization": 0.5}


def test_default_toml_is_the_defaults_plus_a_state_dir_and_the_embedded_bundle() -> None:
    config = load_config(DEFAULT_TOML, env={}, overrides=[parse_set("classifier.bundle=")])
    assert config == replace(Config(), state=StateSettings(dir=Path("var/state")))
    assert load_config(DEFAULT_TOML, env={}).classifier.bundle == Path("models/default")
    assert all(feed.enabled for feed in config.feeds)
    assert config.feed("rpi_orcasound_lab").display_name == "Orcasound Lab"


def test_rendered_toml_and_json_load_back_to_the_same_config() -> None:
    config = load_config(DEFAULT_TOML, env={}, overrides=[parse_set("redis.url=redis://h:1/0")])
    assert build(Config, tomllib.loads(config_toml(config))) == config
    assert '"url": "redis://h:1/0"' in to_json(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[engine]\nmax_bach = 4\n", "engine.max_bach: unknown setting"),
        ("[engin]\nmax_batch = 4\n", "engin: unknown setting"),
        ('[engine]\nmax_batch = "x"\n', 'engine.max_batch: expected an integer ≥ 1, got "x"'),
        ("[engine]\nmax_batch = 0\n", "engine.max_batch: expected an integer ≥ 1, got 0"),
        ("[engine]\nmax_batch = 2.5\n", "engine.max_batch: expected an integer ≥ 1, got 2.5"),
        ('[engine]\ndevice = "tpu"\n', "engine.device: expected auto, cpu, cuda or cuda:N"),
        ("[websocket]\nport = 70000\n", "websocket.port: expected an integer in 0..65535"),
        ("[s3]\nanonymous = 1\n", "s3.anonymous: expected true or false, got 1"),
        ("[s3]\nmax_attempts = 0\n", "s3.max_attempts: expected an integer ≥ 1, got 0"),
        ('[decoder]\nchannel_policy = "best"\n', "decoder.channel_policy: expected one of"),
        ("[decoder]\nchannel_policy = -1\n", "decoder.channel_policy: "),
        ("[follower.timing]\naudio_offset_s = 90\n", "follower.timing.audio_offset_s must be in"),
        ('[follower.timing]\nprecedence = "pdt"\n', "follower.timing.precedence: expected one"),
        ("[follower.archive]\nprefetch = 0\n", "follower.archive.prefetch: expected an"),
        ("[follower.archive.timing]\n", "follower.archive.timing: not set here, it follows"),
        ("[events]\nthresholds = {}\n", "events.thresholds: not set here, it follows"),
        ("[events]\nquiet_s = 0\n", "events.quiet_s: expected a number > 0"),
        ("[daemon]\nshutdown_timeout_s = 0\n", "daemon.shutdown_timeout_s: expected a number"),
        ("[daemon.pipeline]\nin_flight_windows = 0\n", "daemon.pipeline.in_flight_windows"),
        ("[fanout]\nclose_timeout_s = 1\n", "fanout.close_timeout_s: not set here"),
        ("[classifier]\ntarget_labels = []\n", "classifier.target_labels: expected at least"),
        ('[classifier]\ntarget_labels = "x"\n', "classifier.target_labels: expected a list of"),
        ("engine = 3\n", "engine: expected a table, got 3"),
        ('[[feeds]]\nname = "x"\n', "feeds[0].node: missing (required)"),
        (
            '[[feeds]]\nnode = "a"\n[[feeds]]\nnode = "a"\n',
            'feeds: node "a" is listed twice',
        ),
        (
            '[[feeds]]\nnode = "a"\nthresholds = { "Whale vocalization" = 2 }\n',
            'feeds.a.thresholds."Whale vocalization": expected a number in 0..1, got 2',
        ),
        ('[[feeds]]\nnode = "a"\nlatitude = 91\n', "feeds.a.latitude: expected a number"),
        ('[[feeds]]\nnode = "a"\nchannel = "left"\n', "feeds.a.channel: expected"),
        ("[health.analysis]\nmin_signal_ratio = 30\n", "health.analysis.recover_signal_ratio"),
        ("[engine\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    assert message in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.toml", env={})


def test_a_file_only_changes_what_it_names(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[engine]\nmax_batch = 4\n"), env={})
    assert config.engine.max_batch == 4
    assert config.engine == replace(Config().engine, max_batch=4)
    assert config.feeds == DEFAULT_FEEDS


def test_precedence_file_then_env_then_cli(tmp_path: Path) -> None:
    path = write(tmp_path, "[engine]\nmax_batch = 4\nmax_wait_ms = 10\nnum_threads = 2\n")
    env = {"HYDROMON_ENGINE__MAX_BATCH": "16", "hydromon_engine__max_wait_ms": "20"}
    config = load_config(path, env=env, overrides=[parse_set("engine.max_batch=32")])
    assert config.engine.max_batch == 32  # CLI over env over file
    assert config.engine.max_wait_ms == 20.0  # env over file (any case)
    assert config.engine.num_threads == 2  # file over default
    later = [parse_set("engine.max_batch=32"), parse_set("engine.max_batch=64")]
    assert load_config(path, env=env, overrides=later).engine.max_batch == 64


def test_env_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={"HYDROMON_ENGINE__MAX_BATCH": "x"})
    assert str(caught.value) == (
        'engine.max_batch: expected an integer ≥ 1, got "x" (from HYDROMON_ENGINE__MAX_BATCH)'
    )
    with pytest.raises(ConfigError, match=r"engine\.nope: unknown setting \(from HYDROMON_ENG"):
        load_config(env={"HYDROMON_ENGINE__NOPE": "1"})


def test_env_ignores_other_hydromon_variables() -> None:
    assert env_overrides({"HYDROMON_CONFIG": "x.toml", "HOME": "/root"}) == []


def test_override_values_are_read_as_the_setting_type() -> None:
    config = load_config(
        env={"HYDROMON_REDIS__URL": "redis://127.0.0.1:6379/0"},
        overrides=[
            parse_set("websocket.token=1234"),  # a string stays a string
            parse_set("s3.anonymous=false"),
            parse_set("classifier.target_labels=Whale vocalization,Humpback"),
            parse_set('classifier.thresholds={ "Humpback" = 0.7 }'),
            parse_set("denoiser.checkpoint=models/x.pk"),
            parse_set("windows.length_s=3"),
        ],
    )
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert config.websocket.token == "1234"
    assert config.s3.anonymous is False
    assert config.classifier.target_labels == ("Whale vocalization", "Humpback")
    assert config.classifier.thresholds == {"Humpback": 0.7}
    assert config.denoiser.checkpoint == Path("models/x.pk")
    assert config.windows.length_s == 3.0


def test_empty_text_unsets_an_optional_setting(tmp_path: Path) -> None:
    path = write(tmp_path, '[websocket]\ntoken = "t"\n')
    assert load_config(path, env={}).websocket.token == "t"
    assert load_config(path, env={"HYDROMON_WEBSOCKET__TOKEN": ""}).websocket.token is None
    with pytest.raises(ConfigError, match=r"engine\.max_batch: expected an integer"):
        load_config(env={}, overrides=[parse_set("engine.max_batch=")])


def test_per_feed_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[classifier]\ntarget_labels = ["A", "B"]\ndefault_threshold = 0.5\n'
        "thresholds = { B = 0.6 }\n"
        '[[feeds]]\nnode = "rpi_bush_point"\nthresholds = { A = 0.9 }\nchannel = 1\n'
        '[[feeds]]\nnode = "rpi_sunset_bay"\n',
    )
    config = load_config(
        path,
        env={"HYDROMON_FEEDS__RPI_SUNSET_BAY__ENABLED": "false"},
        overrides=[parse_set("feeds.rpi_sunset_bay.thresholds={ B = 0.95 }")],
    )
    events = config.events  # what the event builder uses: feed's own over classifier's
    assert {label: events.threshold("rpi_bush_point", label) for label in "AB"} == {
        "A": 0.9,
        "B": 0.6,
    }
    assert {label: events.threshold("rpi_sunset_bay", label) for label in "AB"} == {
        "A": 0.5,
        "B": 0.95,
    }
    assert config.channel_for("rpi_bush_point") == 1
    assert config.channel_for("rpi_sunset_bay") == "auto"
    assert config.decoder_for("rpi_bush_point").channel_policy == 1
    assert config.decoder_for("rpi_sunset_bay") == config.decoder
    assert config.events.feed_thresholds == {
        "rpi_bush_point": {"A": 0.9},
        "rpi_sunset_bay": {"B": 0.95},
    }
    mixed = load_config(path, env={"HYDROMON_FEEDS__RPI_SUNSET_BAY__CHANNEL": "mix"})
    assert mixed.decoder_for("rpi_sunset_bay").channel_policy == "mix"
    assert [feed.node for feed in config.enabled_feeds] == ["rpi_bush_point"]


def test_feed_overrides_apply_to_the_default_feed_list() -> None:
    config = load_config(env={}, overrides=[parse_set("feeds.rpi_north_sjc.enabled=false")])
    assert {f.node for f in config.enabled_feeds} == NODES - {"rpi_north_sjc"}
    only = load_config(env={}, feeds_only=["rpi_bush_point", "rpi_orcasound_lab"])
    assert {f.node for f in only.enabled_feeds} == {"rpi_bush_point", "rpi_orcasound_lab"}
    with pytest.raises(ConfigError, match=r"--feeds: unknown feed\(s\) rpi_nowhere"):
        load_config(env={}, feeds_only=["rpi_nowhere"])
    with pytest.raises(ConfigError, match=r'feeds\.rpi_nowhere: no feed with node "rpi_nowhere"'):
        load_config(env={}, overrides=[parse_set("feeds.rpi_nowhere.enabled=false")])


def test_bad_assignments() -> None:
    with pytest.raises(ConfigError, match=r"expected SECTION\.KEY=VALUE"):
        parse_set("engine.max_batch")
    with pytest.raises(ConfigError, match="engine: a section; set its keys one by one"):
        load_config(env={}, overrides=[parse_set("engine=3")])
    with pytest.raises(
        ConfigError, match=r'engine.max_batch: expected an integer ≥ 1, got \{"x": "3"\}'
    ):
        load_config(env={}, overrides=[parse_set("engine.max_batch.x=3")])


def test_nested_sections_from_file_env_and_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[follower]\nquiet_after_arrival_s = 0\n"
        "[follower.timing]\naudio_offset_s = 1.5\n"
        "[follower.archive]\nprefetch = 2\n"
        "[daemon.pipeline]\nin_flight_windows = 8\n",
    )
    config = load_config(path, env={"HYDROMON_FOLLOWER__TIMING__PRECEDENCE": "number"})
    follower = config.follower
    assert follower.quiet_after_arrival_s == 0 and follower.archive.prefetch == 2
    assert follower.timing.audio_offset_s == 1.5
    assert follower.timing.precedence is TimingSource.NUMBER
    assert follower.archive.timing == follower.timing  # one clock for live and replay
    assert config.daemon.pipeline.in_flight_windows == 8
    flags = [parse_set("follower.timing.precedence=program-date-time")]
    later = load_config(
        path, env={"HYDROMON_FOLLOWER__TIMING__PRECEDENCE": "number"}, overrides=flags
    )
    assert later.follower.archive.timing.precedence is TimingSource.PROGRAM_DATE_TIME
    with pytest.raises(ConfigError, match=r"follower\.timing\.precedence: expected one of"):
        load_config(env={"HYDROMON_FOLLOWER__TIMING__PRECEDENCE": "pdt"})


def test_stream_denoise_settings_reach_the_stream_denoiser(tmp_path: Path) -> None:
    from monitor.inference.stream_denoise import StreamDenoiseSettings
    from monitor.runtime.wiring import stream_denoiser_factory
    from tests.support.stream_denoise import calibrated_denoiser, engine_with

    config = load_config(
        write(tmp_path, "[denoiser.stream]\nblock_grids = 3\n"),
        env={"HYDROMON_DENOISER__STREAM__SNAP_SAMPLES": "4"},
    )
    assert config.denoiser.stream == StreamDenoiseSettings(block_grids=3, snap_samples=4)
    with pytest.raises(ConfigError, match=r"denoiser\.stream\.block_grids: expected an integer"):
        load_config(overrides=[parse_set("denoiser.stream.block_grids=0")])
    noise = np.random.default_rng(0).standard_normal(48000).astype(np.float32) * 0.1
    engine = engine_with(calibrated_denoiser(noise, 48000), tmp_path / "tiny")
    make = stream_denoiser_factory(engine, config.denoiser.stream)
    assert make is not None and make().settings == config.denoiser.stream


def test_daemon_section_and_switches() -> None:
    config = load_config(
        env={"HYDROMON_DAEMON__SHUTDOWN_TIMEOUT_S": "5"},
        overrides=[parse_set("outputs.files=false"), parse_set("daemon.output_close_timeout_s=3")],
    )
    assert config.daemon.shutdown_timeout_s == 5.0
    assert config.fanout.close_timeout_s == 3.0  # follows the daemon's
    assert not config.outputs.files


def test_reading_a_config_does_not_load_the_models() -> None:
    code = (
        "import sys, monitor.config.loader;"
        " print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_threshold_for_a_label_never_scored_is_refused(tmp_path: Path) -> None:
    typo = 'feeds.rpi_bush_point.thresholds={ "Whale vocalisation" = 0.3 }'
    with pytest.raises(ConfigError, match=r'feeds\.rpi_bush_point\.thresholds: "Whale voc'):
        load_config(env={}, overrides=[parse_set(typo)])
    with pytest.raises(ConfigError, match=r'classifier\.thresholds: "orca" is not one of'):
        load_config(env={"HYDROMON_CLASSIFIER__THRESHOLDS": "{ orca = 0.3 }"})
