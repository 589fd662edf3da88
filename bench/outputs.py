"""Output benchmark: messages per second through the Redis, MQTT and webhook outputs, live and
drained from the spool after an outage, against real local services.

Baseline (same process, same messages): the Redis output delivering live to a local
redis-server. Each output publishes the same real detections (opened + closed pairs from the
event builder) one after another, as the fan-out does; "live" waits for each delivery (Redis:
the Lua script's reply; MQTT: the broker's PUBACK, QoS 1; webhook: the endpoint's 200), "spool"
is the time to deliver the same messages from the on-disk spool once the service is back.
Reported: messages per wall second and per process CPU second, and the ratio to the baseline.

Run: ``.venv/bin/python bench/outputs.py [--messages N]`` (needs redis-server and mosquitto).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.publish.mqtt import MqttOutput, MqttSettings  # noqa: E402
from monitor.publish.redis import RedisOutput  # noqa: E402
from monitor.publish.spooled import RetrySettings  # noqa: E402
from monitor.publish.webhook import WebhookSettings, WebhookTarget, make_webhooks  # noqa: E402
from tests.support.detections import detection_series  # noqa: E402
from tests.support.outputs import settings_for  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from tests.support.services import MosquittoServer, RedisServer  # noqa: E402

FAST_RETRY = RetrySettings(initial_s=0.05, max_s=0.1)


async def timed(work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await work()
    return time.perf_counter() - wall, time.process_time() - cpu


async def measure(
    make: Callable[[Path], Any], down: Callable[[], Any], up: Callable[[], Any], messages: list
) -> dict[str, tuple[float, float]]:
    """Live delivery, then the same messages spooled while the service is down and drained."""
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        output = make(Path(scratch) / "live")
        await output.start()
        await asyncio.sleep(0.5)  # connected (MQTT connects in the background)

        async def live() -> None:
            for message in messages:
                await output.publish(message)
            await output.wait_drained()

        results["live"] = await timed(live)
        await output.close()
        output = make(Path(scratch) / "spooled")
        await output.start()
        await asyncio.sleep(0.5)
        await down()
        for message in messages:
            await output.publish(message)
        assert output.spool_depth == len(messages), output.spool_depth

        async def drain() -> None:
            await up()
            await output.wait_drained()

        results["spool"] = await timed(drain)
        await output.close()
    return results


async def main(count: int) -> None:
    messages = detection_series(count)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        redis = RedisServer(workdir=root / "redis")
        broker = MosquittoServer(workdir=root / "mosquitto")
        receiver = Receiver()
        redis.start()
        broker.start()
        await receiver.start()
        port = receiver.port
        try:

            async def receiver_back() -> None:
                receiver.port = port
                await receiver.start()

            async def in_thread(action: Callable[[], None]) -> None:
                await asyncio.to_thread(action)

            target = WebhookTarget(url=receiver.url, statuses=("opened", "closed"))
            results = {
                "redis (baseline)": await measure(
                    lambda d: RedisOutput(settings_for(redis.url, d, retry_s=0.05)),
                    lambda: in_thread(redis.stop),
                    lambda: in_thread(redis.start),
                    messages,
                )
            }
            results["mqtt (QoS 1)"] = await measure(
                lambda d: MqttOutput(
                    MqttSettings(port=broker.port, retry=FAST_RETRY, spool_path=d / "mqtt.sqlite3")
                ),
                lambda: in_thread(broker.stop),
                lambda: in_thread(broker.start),
                messages,
            )
            results["webhook"] = await measure(
                lambda d: make_webhooks(
                    WebhookSettings(targets=(target,), retry=FAST_RETRY, spool_dir=d / "hooks")
                )[0],
                receiver.stop,
                receiver_back,
                messages,
            )
        finally:
            await receiver.stop()
            broker.stop()
            redis.stop()
    base = results["redis (baseline)"]
    print(f"{count} messages; msg/s wall (msg/s CPU), ratio to the Redis baseline of the same run")
    print(f"{'output':<18} {'live':>24} {'spool drain':>24}")
    for name, result in results.items():
        cells = []
        for phase in ("live", "spool"):
            wall, cpu = result[phase]
            ratio = base[phase][0] / wall
            cells.append(f"{count / wall:7.0f} ({count / cpu:6.0f}) ×{ratio:4.2f}")
        print(f"{name:<18} {cells[0]:>24} {cells[1]:>24}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    asyncio.run(main(parser.parse_args().messages))
