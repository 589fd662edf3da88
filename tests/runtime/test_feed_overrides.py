"""Per-feed overrides (thresholds, channel, enabled) reach the pipeline each feed really runs."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.config.loader import load_config
from monitor.runtime import wiring
from monitor.runtime.daemon import Daemon, LiveMode, _Feed
from tests.support.pipeline import LABEL, tiny_checkpoint


async def test_each_feed_pipeline_gets_its_own_threshold_and_channel(tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "tiny")
    path = tmp_path / "hydromon.toml"
    path.write_text(
        f"[classifier]\nsource = {json.dumps(str(checkpoint))}\n"
        f'target_labels = ["{LABEL}"]\ndefault_threshold = 0.5\n'
        "[outputs]\nwebsocket = false\nfiles = false\n"
        '[[feeds]]\nnode = "rpi_bush_point"\n'
        f'thresholds = {{ "{LABEL}" = 0.9 }}\nchannel = 1\n'
        '[[feeds]]\nnode = "rpi_sunset_bay"\n'
        '[[feeds]]\nnode = "rpi_port_townsend"\nenabled = false\n',
        encoding="utf-8",
    )
    config = load_config(path, env={"HYDROMON_FEEDS__RPI_SUNSET_BAY__CHANNEL": "mix"})
    feeds = [feed.node for feed in config.enabled_feeds]
    assert feeds == ["rpi_bush_point", "rpi_sunset_bay"]

    daemon = Daemon(config, LiveMode(), feeds, serve_http=False)
    models = await wiring.load_models(config)
    daemon.engine = wiring.make_engine(config, models)  # built, not started: nothing is scored
    window = config.windows.resolved(models.classifier.window_seconds)
    settings = config.daemon.pipeline
    pipelines = {}
    for node in feeds:
        # store, executor, stop: not used until the pipeline runs
        pipelines[node] = daemon._pipeline(
            node,
            None,  # type: ignore[arg-type]
            models,
            window,
            settings,
            _Feed(),
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
        )
    bush, sunset = pipelines["rpi_bush_point"], pipelines["rpi_sunset_bay"]
    assert bush.builder.settings.threshold("rpi_bush_point", LABEL) == 0.9
    assert sunset.builder.settings.threshold("rpi_sunset_bay", LABEL) == 0.5
    assert bush.decoding.decoder.channel_policy == 1
    assert sunset.decoding.decoder.channel_policy == "mix"
    assert bush.builder.feeds["rpi_bush_point"].node == "rpi_bush_point"
