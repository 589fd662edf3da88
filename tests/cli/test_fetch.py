"""``hydromon fetch`` end to end: real AAC segments in the moto S3 server → FLAC/WAV + sidecar."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from monitor.audio import extract
from monitor.audio.audiofile import read_audio
from monitor.audio.decode import DecoderSettings
from monitor.cli import fetch as fetch_command
from monitor.ingest.archive import ArchiveSettings
from monitor.ingest.playlist import segment_name
from monitor.ingest.s3 import S3Settings
from monitor.timebase import parse_utc
from tests.support.aac import chirp, encode_segments, locate, noise, place
from tests.support.synthetic_node import synthetic_node

E1 = 1717761600  # 2024-06-07T12:00:00Z; segment N starts at 12:00:02 + 10 N
NODE = "rpi_test_node"
RATE = 48000
FIRST_CHIRP = 8 * RATE  # 12:00:10, in segment 0
LAST_CHIRP = 32 * RATE  # 12:00:34, in segment 3 (after the broken segment 2)


def upload(endpoint: str, bucket: str, datas: dict[int, bytes]) -> None:
    async def put() -> None:
        async with synthetic_node(endpoint, bucket, node=NODE) as node:
            for number, data in datas.items():
                await node.put(node.key(E1, segment_name(number)), data)
            await node.put_legacy_playlist(E1, sorted(datas))

    asyncio.run(put())


def main(argv: list[str]) -> int:
    """``hydromon`` with the fetch subcommand registered exactly as the CLI registers it."""
    parser = argparse.ArgumentParser(prog="hydromon")
    fetch_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def fetch(endpoint: str, bucket: str, output: Path, *extra: str) -> int:
    return main(
        [
            "fetch",
            "--feed",
            NODE,
            "--start",
            "2024-06-07T12:00:05Z",
            "--duration",
            "30s",
            "-o",
            str(output),
            "--bucket",
            bucket,
            "--endpoint-url",
            endpoint,
            "--no-progress",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def segment_files() -> list[bytes]:
    signal = noise(36, RATE, level=0.02, seed=11)
    place(signal, chirp(), FIRST_CHIRP)
    place(signal, chirp(), LAST_CHIRP)
    return encode_segments(signal)


def test_fetch_writes_the_range_with_gaps_and_provenance(
    moto_server, bucket_name, segment_files, tmp_path
) -> None:
    datas = dict(enumerate(segment_files))
    datas[2] = bytes(range(256)) * 400  # uploaded, but not audio
    upload(moto_server.endpoint_url, bucket_name, datas)
    output = tmp_path / "x.flac"

    assert fetch(moto_server.endpoint_url, bucket_name, output) == 0

    audio, rate = read_audio(output)
    assert rate == RATE and audio.shape == (1, 30 * RATE)
    # The output starts at 12:00:05 exactly: the chirp at 12:00:10 sits 5 s in.
    assert abs(locate(audio[0], chirp()) - 5 * RATE) <= 2
    side = json.loads((tmp_path / "x.flac.json").read_text())
    assert side["feed"] == NODE and side["bucket"] == bucket_name
    assert side["start_utc"] == "2024-06-07T12:00:05.000000Z"
    assert side["end_utc"] == "2024-06-07T12:00:35.000000Z"
    assert side["sample_rate"] == RATE and side["samples"] == 30 * RATE
    assert side["channel_policy"] == "auto" and side["folders"] == [E1]
    assert [s["number"] for s in side["segments"]] == [0, 1, 3]
    assert side["segments"][0]["key"] == f"{NODE}/hls/{E1}/live000.ts"
    assert side["bytes_fetched"] == sum(len(datas[n]) for n in range(4))
    [broken] = side["segment_gaps"]
    assert broken["key"].endswith("live002.ts") and broken["reason"].startswith("undecodable")
    [silence] = side["gaps"]
    # From the end of segment 1's audio (segment 2 starts at input sample 937 × 1024,
    # 12:00:21.989333) to the restart of the decoder one frame into segment 3, whose first
    # frame starts at input sample 1406 × 1024 (12:00:31.994667, from its PTS): 12:00:32.016.
    assert silence["start_utc"] == "2024-06-07T12:00:21.989333Z"
    assert silence["end_utc"] == "2024-06-07T12:00:32.016000Z"
    assert silence["reason"].startswith("undecodable")
    lo, hi = round(16.989333 * RATE), round(27.016 * RATE)
    assert not audio[0, lo + 1 : hi - 1].any()
    assert audio[0, : lo - 1].std() > 0.005 and audio[0, hi + 1 :].std() > 0.005
    assert side["audio_samples"] == 30 * RATE - (hi - lo)
    # Segment 3 is a fresh decoder run, placed from its timestamps: still to the sample.
    assert abs(locate(audio[0, hi:], chirp()) + hi - 29 * RATE) <= 2
    assert not list(tmp_path.glob("*.part"))


def test_fetch_as_wav_around_missing_segments(moto_server, bucket_name, segment_files, tmp_path):
    upload(moto_server.endpoint_url, bucket_name, {0: segment_files[0]})
    output = tmp_path / "y.wav"
    assert fetch(moto_server.endpoint_url, bucket_name, output, "--channel-policy", "mix") == 0
    audio, _ = read_audio(output)
    assert audio.shape == (1, 30 * RATE)
    side = json.loads((tmp_path / "y.wav.json").read_text())
    assert side["channel_policy"] == "mix"
    [tail] = side["gaps"]
    # segment 0's audio is 468 frames (9.984 s): like the nodes', it ends up to a frame
    # before its slot does, where segment 1's first frame would begin
    assert tail["start_utc"] == "2024-06-07T12:00:11.984000Z"
    assert tail["end_utc"] == "2024-06-07T12:00:35.000000Z"
    assert tail["duration_s"] == pytest.approx(23.016, abs=1e-6)
    assert not audio[0, round(6.985 * RATE) :].any()


def test_fetch_with_no_audio_fails_cleanly(moto_server, bucket_name, tmp_path) -> None:
    upload(moto_server.endpoint_url, bucket_name, {0: b""})
    output = tmp_path / "z.flac"
    assert fetch(moto_server.endpoint_url, bucket_name, output) == 1
    assert list(tmp_path.iterdir()) == []


def test_fetch_refuses_bad_arguments(moto_server, bucket_name, tmp_path) -> None:
    assert fetch(moto_server.endpoint_url, bucket_name, tmp_path / "x.mp3") == 1
    assert (
        fetch(moto_server.endpoint_url, bucket_name, tmp_path / "x.wav", "--channel-policy", "left")
        == 2
    )
    # a missing bucket is a configuration error (issue 13): exit 2, like a bad argument
    assert fetch(moto_server.endpoint_url, "no-such-bucket-here", tmp_path / "x.wav") == 2
    assert list(tmp_path.iterdir()) == []


def test_fetch_across_a_restart_keeps_both_folders_on_time(moto_server, bucket_name, tmp_path):
    """Two folders 2 minutes apart (a node restart): each folder's audio lands at its own UTC
    time to the sample, and the restart is one silence entry (longer than the ring buffer)."""
    e2 = E1 + 120
    first = noise(20, RATE, level=0.02, seed=3)
    place(first, chirp(), 4 * RATE)  # 12:00:06
    second = noise(20, RATE, level=0.02, seed=4)
    place(second, chirp(), 13 * RATE)  # e2 + 2 + 13 = 12:02:15

    async def put() -> None:
        async with synthetic_node(moto_server.endpoint_url, bucket_name, node=NODE) as node:
            for epoch, signal in ((E1, first), (e2, second)):
                files = encode_segments(signal)
                for number, data in enumerate(files):
                    await node.put(node.key(epoch, f"live{number:03d}.ts"), data)
                await node.put_legacy_playlist(epoch, range(len(files)))

    asyncio.run(put())
    output = tmp_path / "restart.flac"
    argv = ["fetch", "--feed", NODE, "--start", "2024-06-07T12:00:05Z", "--end"]
    argv += ["2024-06-07T12:02:20Z", "-o", str(output), "--bucket", bucket_name]
    argv += ["--endpoint-url", moto_server.endpoint_url, "--no-progress"]
    assert main(argv) == 0

    audio, rate = read_audio(output)
    assert rate == RATE and audio.shape == (1, 135 * RATE)
    side = json.loads((tmp_path / "restart.flac.json").read_text())
    assert side["folders"] == [E1, e2]
    # Segment 0 of each folder starts a run at its nominal time: both chirps to the sample.
    assert abs(locate(audio[0, : 10 * RATE], chirp()) - 1 * RATE) <= 1
    tail = audio[0, 120 * RATE :]
    assert abs(locate(tail, chirp()) + 120 * RATE - 130 * RATE) <= 1
    [restart] = side["gaps"]
    assert restart["reason"] == "restart"
    assert restart["start_utc"].startswith("2024-06-07T12:00:22.")
    assert restart["end_utc"] == "2024-06-07T12:02:02.000000Z"
    assert side["audio_samples"] + round(restart["duration_s"] * RATE) == 135 * RATE


def test_cancelled_fetch_leaves_nothing_behind(moto_server, bucket_name, segment_files, tmp_path):
    """Ctrl-C mid-write: the worker thread's write finishes, the partial file is removed."""
    upload(moto_server.endpoint_url, bucket_name, {n: segment_files[n % 3] for n in range(30)})
    output = tmp_path / "cut.flac"

    async def fetch_then_cancel() -> None:
        task = asyncio.create_task(
            extract.fetch_range(
                NODE,
                parse_utc("2024-06-07T12:00:02Z"),
                parse_utc("2024-06-07T12:05:02Z"),
                output,
                s3=S3Settings(bucket=bucket_name, endpoint_url=moto_server.endpoint_url),
                archive=ArchiveSettings(),
                decoder=DecoderSettings(),
                progress=False,
            )
        )
        partial = tmp_path / "cut.flac.part"
        while not partial.exists():
            assert not task.done(), "finished before it could be cancelled"
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(fetch_then_cancel())
    assert list(tmp_path.iterdir()) == []


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a mode 0555 folder, or (for root, whom
    modes do not stop) sysfs or procfs, which refuse new files to everyone."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys"), Path("/proc")):
        try:
            (candidate / "probe.flac").touch()
        except OSError:
            return candidate
        (candidate / "probe.flac").unlink()
    raise AssertionError("no folder on this machine refuses new files: the test cannot run")


def test_fetch_reads_the_configuration_like_run_and_replay(
    moto_server, bucket_name, segment_files, tmp_path, monkeypatch
) -> None:
    upload(moto_server.endpoint_url, bucket_name, dict(enumerate(segment_files)))
    config = tmp_path / "mirror.toml"
    config.write_text(f'[s3]\nbucket = "{bucket_name}"\n')
    monkeypatch.setenv("HYDROMON_S3__ENDPOINT_URL", moto_server.endpoint_url)
    args = ["--feed", NODE, "--start", "2024-06-07T12:00:05Z", "--duration", "10s"]
    output = tmp_path / "z.flac"
    extra = ["--no-progress", "--config", str(config), "--set", "decoder.channel_policy=mix"]
    assert main(["fetch", *args, "-o", str(output), *extra]) == 0
    side = json.loads((tmp_path / "z.flac.json").read_text())
    assert side["bucket"] == bucket_name and side["endpoint_url"] == moto_server.endpoint_url
    assert side["channel_policy"] == "mix"
    # A flag is a shorthand for its setting: --set still wins over it.
    shorthand = ["--channel-policy", "0", "--set", "decoder.channel_policy=auto"]
    assert main(["fetch", *args, "-o", str(output), *extra, *shorthand]) == 0
    assert json.loads((tmp_path / "z.flac.json").read_text())["channel_policy"] == "auto"


def test_bad_settings_and_unwritable_outputs_are_one_line_errors(
    moto_server, bucket_name, segment_files, tmp_path, capsys
) -> None:
    upload(moto_server.endpoint_url, bucket_name, dict(enumerate(segment_files)))
    folder = read_only_folder(tmp_path)
    assert fetch(moto_server.endpoint_url, bucket_name, folder / "x.flac") == 2
    error = capsys.readouterr().err
    assert (
        error.startswith(f"hydromon fetch: {folder}: cannot write here (")
        and error.count("\n") == 1
    ), error
    assert not any(p.name.startswith("x.flac") for p in folder.iterdir())
    output = tmp_path / "x.flac"
    assert fetch(moto_server.endpoint_url, bucket_name, output, "--set", "s3.max_attempts=0") == 2
    assert capsys.readouterr().err.startswith("hydromon fetch: s3.max_attempts: expected")
    bad_feed = ["--feed", "../../escaped"]
    assert fetch(moto_server.endpoint_url, bucket_name, output, *bad_feed) == 2
    assert "--feed: expected a node name" in capsys.readouterr().err
    assert not output.exists()
