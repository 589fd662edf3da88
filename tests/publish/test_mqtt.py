"""The MQTT output against a real mosquitto broker: topics, QoS 1, retained feed status, the
last will, an outage spooled and delivered in order once, and authentication."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from monitor.publish.mqtt import MqttOutput, MqttSettings
from monitor.publish.output import OutputUnusable
from monitor.publish.spooled import RetrySettings
from tests.support.certificates import make_certificates
from tests.support.detections import detection_series, feed_status, wire
from tests.support.services import MosquittoServer
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(workdir=tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


def settings_for(port: int, tmp_path: Path, **overrides: Any) -> MqttSettings:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    values: dict[str, Any] = {
        "port": port,
        "client_id": f"{prefix}-daemon",
        "detection_topic": prefix + "/{feed}/detection",
        "status_topic": prefix + "/{feed}/status",
        "availability_topic": prefix + "/availability",
        "timeout_s": 2.0,
        "retry": RetrySettings(initial_s=0.05, max_s=0.2),
        "spool_path": tmp_path / "spool" / "mqtt.sqlite3",
    }
    values.update(overrides)
    return MqttSettings(**values)


async def connected(output: MqttOutput) -> MqttOutput:
    """``output`` started and connected (it connects in the background)."""
    await output.start()
    await until(lambda: output.stats.connects >= 1, 5, "the connection to the broker")
    return output


async def delivers_a_detection(settings: MqttSettings, **subscriber: Any) -> None:
    """An output with ``settings`` gets a detection to a subscriber (``subscriber``: its
    login or TLS arguments)."""
    prefix = prefix_of(settings)
    output = await connected(MqttOutput(settings))
    try:
        async with aiomqtt.Client("127.0.0.1", settings.port, **subscriber) as live:
            await live.subscribe(f"{prefix}/+/detection", qos=1)
            message = detection_series(1)[0]
            await output.publish(message)
            assert [body for _t, body, _r in await collect(live, 1)] == wire([message])
    finally:
        await output.close()


def prefix_of(settings: MqttSettings) -> str:
    return settings.availability_topic.split("/")[0]


async def collect(
    client: aiomqtt.Client, count: int, wait_s: float = 5.0
) -> list[tuple[str, Any, bool]]:
    """``count`` messages as (topic, decoded payload, retained flag)."""
    out: list[tuple[str, Any, bool]] = []
    async with asyncio.timeout(wait_s):
        async for message in client.messages:
            payload = bytes(message.payload)  # type: ignore[arg-type]
            try:
                body: Any = json.loads(payload)
            except ValueError:
                body = payload.decode()
            out.append((str(message.topic), body, message.retain))
            if len(out) == count:
                return out
    return out


async def test_detections_and_retained_status_reach_their_topics(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    settings = settings_for(broker.port, tmp_path)
    prefix = prefix_of(settings)
    detections = detection_series(4)
    status = feed_status("up")
    output = await connected(MqttOutput(settings))
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port) as live:
            await live.subscribe(f"{prefix}/+/detection", qos=1)
            for message in detections:
                await output.publish(message)
            got = await collect(live, 4)
        assert [body for _topic, body, _ in got] == wire(detections)
        assert {topic for topic, _, _ in got} == {f"{prefix}/rpi_orcasound_lab/detection"}
        await output.publish(status)
        assert output.stats.delivered == 5 and output.spool_depth == 0
        # A subscriber that comes later still learns the feed's state and the daemon's presence.
        async with aiomqtt.Client("127.0.0.1", broker.port) as late:
            await late.subscribe(f"{prefix}/#", qos=1)
            got = sorted(await collect(late, 2))
        assert got == [
            (f"{prefix}/availability", "online", True),
            (f"{prefix}/rpi_orcasound_lab/status", wire([status])[0], True),
        ]
    finally:
        await output.close()
    async with aiomqtt.Client("127.0.0.1", broker.port) as after:
        await after.subscribe(f"{prefix}/availability", qos=1)
        assert await collect(after, 1) == [(f"{prefix}/availability", "offline", True)]


async def test_the_last_will_says_offline_when_the_daemon_dies(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    settings = settings_for(broker.port, tmp_path)
    prefix = prefix_of(settings)
    # A real process that connects and is then killed: no goodbye, so the broker sends the will.
    script = (
        "import asyncio, sys\n"
        "from monitor.publish.mqtt import MqttOutput, MqttSettings\n"
        "async def main():\n"
        f"    out = MqttOutput(MqttSettings(port={broker.port}, client_id='{prefix}-dying',"
        f" availability_topic='{prefix}/availability', spool_path=sys.argv[1]))\n"
        "    await out.start()\n"
        "    while not out.stats.connects:\n"
        "        await asyncio.sleep(0.05)\n"
        "    print('up', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    process = subprocess.Popen(  # noqa: ASYNC220  # started once, waited on in a thread
        [sys.executable, "-c", script, str(tmp_path / "dying.sqlite3")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        stdout = process.stdout

        def wait_up() -> None:
            for line in stdout:  # its log lines, then "up"
                if line.strip() == b"up":
                    return

        await asyncio.wait_for(asyncio.to_thread(wait_up), 30)
        async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
            await watcher.subscribe(f"{prefix}/availability", qos=1)
            assert await collect(watcher, 1) == [(f"{prefix}/availability", "online", True)]
            process.send_signal(signal.SIGKILL)
            assert await collect(watcher, 1) == [(f"{prefix}/availability", "offline", False)]
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_an_outage_is_spooled_and_delivered_in_order_once(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    """A persistent subscriber session (QoS 1) is queued by the broker while it is away, so
    everything the output delivered is seen, in order, however the timing falls."""
    settings = settings_for(broker.port, tmp_path)
    prefix = prefix_of(settings)
    reader = f"{prefix}-reader"
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=reader, clean_session=False
    ) as c:
        await c.subscribe(f"{prefix}/+/detection", qos=1)
    messages = detection_series(12)
    output = await connected(MqttOutput(settings))
    try:
        for message in messages[:3]:
            await output.publish(message)
        broker.stop()
        for message in messages[3:9]:
            await output.publish(message)  # spooled, none raises
        assert output.spool_depth == 6
        broker.start()
        for message in messages[9:]:
            await output.publish(message)  # behind the spool, never ahead of it
        await asyncio.wait_for(output.wait_drained(), 15)
        assert output.spool_depth == 0 and output.stats.errors >= 1
        assert output.stats.connects >= 2  # it reconnected by itself
    finally:
        await output.close()
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=reader, clean_session=False
    ) as again:
        got = await collect(again, 12)
        with pytest.raises(TimeoutError):  # and nothing twice
            await collect(again, 1, wait_s=0.5)
    assert [body["message_id"] for _t, body, _r in got] == [m.message_id for m in messages]


async def test_a_connection_lost_while_idle_comes_back_online_by_itself(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    settings = settings_for(broker.port, tmp_path)
    prefix = prefix_of(settings)
    output = await connected(MqttOutput(settings))
    try:
        broker.stop()
        broker.start()
        # No message is published: the output reconnects on its own and says so.
        await until(lambda: output.stats.connects == 2, 10, "the reconnection")
        async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
            await watcher.subscribe(f"{prefix}/availability", qos=1)
            # Retained, or live if the reconnection's "online" comes just after the subscribe.
            ((_topic, said, _retained),) = await collect(watcher, 1)
            assert said == "online"
    finally:
        await output.close()


async def test_the_spool_outlives_a_restart_of_the_daemon(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    settings = settings_for(broker.port, tmp_path)
    prefix = prefix_of(settings)
    messages = detection_series(4)
    broker.stop()
    first = MqttOutput(settings)
    await first.start()
    for message in messages:
        await first.publish(message)
    await first.close()
    broker.start()
    async with aiomqtt.Client("127.0.0.1", broker.port) as live:
        await live.subscribe(f"{prefix}/+/detection", qos=1)
        second = MqttOutput(settings)
        await second.start()
        try:
            got = await collect(live, 4)
            await asyncio.wait_for(second.wait_drained(), 10)
        finally:
            await second.close()
    assert [body for _t, body, _r in got] == wire(messages)


async def test_username_and_password(tmp_path: Path) -> None:
    broker = MosquittoServer(workdir=tmp_path / "auth", users={"hydromon": "s3cret"})
    broker.start()
    try:
        wrong = MqttOutput(
            settings_for(broker.port, tmp_path, username="hydromon", password="nope")
        )
        await wrong.start()
        try:
            await wrong.publish(detection_series(1)[0])
            await until(lambda: wrong.stats.connect_failures >= 2, 5, "refused logins")
            assert wrong.spool_depth == 1 and wrong.stats.connects == 0  # refused: kept
        finally:
            await wrong.close()
        settings = settings_for(
            broker.port, tmp_path / "right", username="hydromon", password="s3cret"
        )
        await delivers_a_detection(settings, username="hydromon", password="s3cret")
    finally:
        broker.stop()


async def test_tls_to_a_broker_with_a_private_ca(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path / "tls")
    tls = (certificates.ca, certificates.cert, certificates.key)
    broker = MosquittoServer(workdir=tmp_path / "tls-broker", tls=tls)
    broker.start()
    try:
        untrusted = MqttOutput(settings_for(broker.port, tmp_path / "untrusted", tls=True))
        await untrusted.start()  # the system's CAs do not know this broker
        try:
            await until(lambda: untrusted.stats.connect_failures >= 1, 5, "a refused handshake")
            assert untrusted.stats.connects == 0
        finally:
            await untrusted.close()
        settings = settings_for(broker.port, tmp_path, tls=True, ca_file=certificates.ca)
        trust = ssl.create_default_context(cafile=str(certificates.ca))
        await delivers_a_detection(settings, tls_context=trust)
    finally:
        broker.stop()


async def test_unreadable_tls_files_are_a_one_line_error(tmp_path: Path) -> None:
    settings = settings_for(1883, tmp_path, tls=True, ca_file=tmp_path / "missing.pem")
    with pytest.raises(OutputUnusable, match="mqtt TLS: cannot load the certificates"):
        await MqttOutput(settings).start()


def test_a_topic_template_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match=r"detection_topic: .* may only use \{feed\}"):
        MqttSettings(detection_topic="hydromon/{node}/detection")
