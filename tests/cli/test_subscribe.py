"""``hydromon subscribe`` as a real subprocess against a real server / Redis stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from monitor.cli.main import build_parser
from monitor.cli.subscribe import local_filter, subscribe_request
from monitor.detect.records import FeedInfo
from monitor.publish.redis import RedisOutput
from monitor.publish.subscription import Subscription
from monitor.publish.websocket import WebsocketOutput, WebsocketSettings
from tests.support.detections import T0, detection_series, feed_status, wire
from tests.support.outputs import settings_for
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 60.0  # the CLI imports every subcommand; on a busy 2-core box that takes a while


async def spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli.main",
        "subscribe",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_until(condition: Callable[[], bool], within_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def read_lines(process: asyncio.subprocess.Process, count: int) -> list[str]:
    assert process.stdout is not None
    lines = []
    for _ in range(count):
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "subscribe exited early"
        lines.append(line.decode().rstrip("\n"))
    return lines


async def stop(process: asyncio.subprocess.Process, sig: int) -> tuple[int, str]:
    process.send_signal(sig)
    # Generous: interpreter teardown after the heavy imports takes seconds on a busy box.
    code = await asyncio.wait_for(process.wait(), STARTUP_S)
    assert process.stderr is not None
    return code, (await process.stderr.read()).decode()


async def exit_and_stderr(process: asyncio.subprocess.Process) -> tuple[int, str]:
    """Wait for a subscribe that should end by itself (killed if it does not)."""
    try:
        code = await asyncio.wait_for(process.wait(), STARTUP_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    return code, (await process.stderr.read()).decode()


async def test_prints_closed_detections_reconnects_resumes_and_exits_on_sigint() -> None:
    messages = detection_series(8)
    port = free_port()
    settings = WebsocketSettings(port=port)
    server = WebsocketOutput(settings)
    await server.start()
    process = await spawn("--url", f"ws://127.0.0.1:{port}", "--closed-only")
    try:
        await wait_until(lambda: server.client_count == 1, STARTUP_S)
        await asyncio.sleep(0.2)  # let its subscribe message land
        for message in messages[:4]:
            await server.publish(message)
        first = await read_lines(process, 2)
        for line, message in zip(first, wire([messages[1], messages[3]]), strict=True):
            assert line.startswith(f"{message['start_utc']}  closed  rpi_orcasound_lab  humpback")
            assert line.endswith(message["id"])
            assert f"max {message['score']['max']:.2f}" in line

        # The server restarts; meanwhile messages 4..7 happen. The client must come back on
        # its own and resume after the last message it printed, without repeating it.
        await server.close()
        server = WebsocketOutput(settings)
        await server.start()
        for message in messages:
            await server.publish(message)  # the new server's history holds all eight
        second = await read_lines(process, 2)
        assert [line.split()[-1] for line in second] == [messages[5].id, messages[7].id]

        code, stderr = await stop(process, signal.SIGINT)
        assert code == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await server.close()


async def test_reads_the_redis_stream_as_json_lines_and_exits_on_sigterm(
    redis_server, tmp_path: Path
) -> None:
    messages = detection_series(6)
    settings = settings_for(redis_server.url, tmp_path)
    output = RedisOutput(settings)
    await output.start()
    for message in messages[:2]:
        await output.publish(message)
    process = await spawn(
        "--redis", redis_server.url, "--stream", settings.stream_key, "--since", "0-0", "--json"
    )
    try:
        assert process.stdout is not None
        try:
            first = await asyncio.wait_for(process.stdout.readline(), STARTUP_S)
        except TimeoutError:
            process.kill()
            assert process.stderr is not None
            raise AssertionError((await process.stderr.read()).decode()) from None
        lines = [first.decode().rstrip("\n"), *await read_lines(process, 1)]
        for message in messages[2:]:
            await output.publish(message)
        lines += await read_lines(process, 4)
        assert [json.loads(line) for line in lines] == wire(messages)
        code, stderr = await stop(process, signal.SIGTERM)
        assert code == 0, stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await output.close()


async def test_redis_mistakes_are_clear_errors_not_endless_retries(redis_server) -> None:
    admin = aioredis.Redis.from_url(redis_server.url)
    key = f"t{uuid.uuid4().hex[:10]}:not-a-stream"
    await admin.set(key, "x")
    try:
        bad_id = await spawn("--redis", redis_server.url, "--since", "0190-abc")
        wrong_type = await spawn("--redis", redis_server.url, "--stream", key)
        for process, expected in (
            (bad_id, "is not a Redis stream entry id"),
            (wrong_type, "WRONGTYPE"),
        ):
            code, stderr = await exit_and_stderr(process)
            assert code == 2 and expected in stderr, stderr
            assert "Traceback" not in stderr
    finally:
        await admin.delete(key)
        await admin.aclose()


async def test_a_url_that_cannot_work_is_a_one_line_error() -> None:
    """Exit 2 at once, instead of retrying a URL that can never connect."""
    cases = [
        (("--url", f"http://127.0.0.1:{free_port()}"), "is not a websocket URL"),
        (("--url", "not a url"), "is not a websocket URL"),
        (("--redis", "http://127.0.0.1:6379"), "is not a Redis URL"),
        (("--min-score", "nan"), "--min-score must be a finite number"),
    ]
    processes = [(await spawn(*args), expected) for args, expected in cases]
    for process, expected in processes:
        code, stderr = await exit_and_stderr(process)
        assert code == 2 and expected in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_redis_reader_filters_like_the_websocket_server() -> None:
    lab = wire(detection_series(4))
    bush = wire(detection_series(2, feed="rpi_bush_point"))
    (status,) = wire([feed_status("up", T0, feed=FeedInfo("rpi_orcasound_lab", "Lab"))])
    messages = [*lab, *bush, status]
    parser = build_parser()
    cases = {
        (): messages,
        ("--closed-only",): [m for m in [*lab, *bush] if m["status"] == "closed"],
        ("--feed", "rpi_bush_point"): bush,
        ("--feed", "rpi_orcasound_lab", "--min-score", "0.8"): [
            m for m in lab if m["score"]["max"] >= 0.8
        ]
        + [status],
        ("--label", "nothing"): [status],
    }
    assert any(m["score"]["max"] < 0.8 for m in lab)
    for flags, expected in cases.items():
        args = parser.parse_args(["subscribe", "--redis", "redis://x", *flags])
        local = [m for m in messages if local_filter(args).matches(m)]
        served = Subscription.parse(subscribe_request(args, None))
        assert local == expected, flags
        assert [m for m in messages if served.matches(m)] == expected, flags
