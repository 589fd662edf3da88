"""The integration outputs inside the daemon's fan-out: each one independent (a dead broker, a
failing webhook and a failing notifier never hold back a working endpoint) and each failure
counted in /metrics (``hydromon_publish_failures_total``, ``hydromon_spool_depth``, and the
alerts a notifier held back: ``hydromon_alerts_held_back_total``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.config.loader import load_config
from monitor.publish.mqtt import MqttOutput, MqttSettings
from monitor.publish.notify import NotifySettings, make_notify
from monitor.publish.spooled import RetrySettings
from monitor.publish.webhook import WebhookSettings, WebhookTarget, make_webhooks
from monitor.runtime.daemon import Daemon
from monitor.runtime.modes import LiveMode
from tests.support.detections import detection_series
from tests.support.receiver import Receiver
from tests.support.services import free_port


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    good, failing = Receiver(), Receiver()
    await good.start()
    await failing.start()
    yield good, failing
    await good.stop()
    await failing.stop()


async def test_failing_outputs_are_counted_and_block_nobody(
    receivers: tuple[Receiver, Receiver], tmp_path: Path
) -> None:
    good, failing = receivers
    failing.statuses.extend([500] * 1000)
    retry = RetrySettings(initial_s=0.05, max_s=0.1)
    hooks = WebhookSettings(
        targets=(
            WebhookTarget(url=good.url, name="good", statuses=("opened", "closed")),
            WebhookTarget(url=failing.url, name="failing", statuses=("opened", "closed")),
        ),
        retry=retry,
        spool_dir=tmp_path / "hooks",
    )
    dead_broker = MqttSettings(
        port=free_port(), timeout_s=0.5, retry=retry, spool_path=tmp_path / "mqtt.sqlite3"
    )
    notify = NotifySettings(urls=(f"json://127.0.0.1:{failing.port}/alerts",))
    outputs = [MqttOutput(dead_broker), *make_webhooks(hooks), make_notify(notify)]
    config = load_config(None, env={})
    daemon = Daemon(config, LiveMode(), ["rpi_orcasound_lab"], outputs=outputs, serve_http=False)
    messages = detection_series(6)
    await daemon.fanout.start()
    try:
        for message in messages:
            await daemon.fanout.publish(message)
        got = await good.wait_for(6)
        assert [r.headers["Idempotency-Key"] for r in got] == [m.message_id for m in messages]
        await asyncio.sleep(0.5)  # the failing ones keep retrying meanwhile
        daemon._sample_metrics()  # what the daemon's health tick does
        text = daemon.metrics.exposition().decode()
    finally:
        await daemon.fanout.close()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values['hydromon_publish_failures_total{output="webhook-good"}'] == 0
    assert values['hydromon_publish_failures_total{output="webhook-failing"}'] >= 2
    assert values['hydromon_spool_depth{output="webhook-failing"}'] == 6
    assert values['hydromon_publish_failures_total{output="mqtt"}'] >= 2
    assert values['hydromon_spool_depth{output="mqtt"}'] == 6
    # One alert tried (the others fall in its 10 min cooldown), and it failed.
    assert values['hydromon_publish_failures_total{output="notify"}'] == 1
    held = 'hydromon_alerts_held_back_total{output="notify",reason="%s"}'
    assert values[held % "cooldown"] == len(messages) // 2 - 1  # detections after the first
    assert values[held % "quiet_hours"] == 0
