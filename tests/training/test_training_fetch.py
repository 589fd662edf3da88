"""fetch against a real S3 emulator (moto server): listing, download, resume, checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.humpback_catalogue import PREFIX, build_catalogue, upload_catalogue
from tests.support.services import MotoServer
from training.fetch_catalogue import FetchSettings, run_fetch
from training.steprun import StepInterrupted


@pytest.fixture(scope="module")
def catalogue(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("catalogue")
    build_catalogue(data_dir, folder)
    return folder


@pytest.fixture
def bucket_objects(moto_server: MotoServer, bucket_name: str, catalogue: Path) -> dict[str, bytes]:
    return upload_catalogue(moto_server.endpoint_url, bucket_name, catalogue)


def local_name(key: str) -> str:
    folder = "audio" if key.endswith(".flac") else "annotations"
    return f"{folder}/{key.rsplit('/', 1)[-1]}"


def test_fetch_downloads_resumes_and_checks(
    moto_server: MotoServer, bucket_name: str, bucket_objects: dict[str, bytes], tmp_path: Path
) -> None:
    settings = FetchSettings(
        bucket=bucket_name, endpoint_url=moto_server.endpoint_url, concurrency=1, chunk_bytes=65536
    )
    out = tmp_path / "fetch"
    with pytest.raises(StepInterrupted):
        run_fetch(settings, out, max_units=2)
    first = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".flac", ".txt"))
    assert len(first) == 2
    stamps = {p: p.stat().st_mtime_ns for p in first}

    # A download cut off half-way: the rest must come with a Range request.
    audio_key = next(k for k in bucket_objects if k.endswith("OS_10_28_2021_1900_HB.flac"))
    part = out / "audio" / "OS_10_28_2021_1900_HB.flac.part"
    part.parent.mkdir(exist_ok=True)
    part.write_bytes(bucket_objects[audio_key][:100_000])

    run_fetch(settings, out)
    for key, data in bucket_objects.items():
        assert (out / local_name(key)).read_bytes() == data
    assert not list(out.rglob("*.part"))
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())  # not redone
    units = [json.loads(line)["unit"] for line in (out / "progress.jsonl").read_text().splitlines()]
    assert sorted(units) == sorted(bucket_objects)  # each file fetched exactly once
    log = [json.loads(line) for line in (out / "fetch.log").read_text().splitlines()]
    assert any(e["event"] == "resumed" and e["key"] == audio_key for e in log)
    inventory = json.loads((out / "inventory.json").read_text())
    assert {item["key"] for item in inventory} == set(bucket_objects)
    params = json.loads((out / "params.json").read_text())
    assert params["settings"]["bucket"] == bucket_name and params["finished_utc"]


def test_corrupt_partial_download_is_caught_and_then_refetched(
    moto_server: MotoServer, bucket_name: str, bucket_objects: dict[str, bytes], tmp_path: Path
) -> None:
    settings = FetchSettings(bucket=bucket_name, endpoint_url=moto_server.endpoint_url)
    out = tmp_path / "fetch"
    key = next(k for k in bucket_objects if k.endswith("OS_10_03_2021_19_34_00_.flac"))
    part = out / "audio" / "OS_10_03_2021_19_34_00_.flac.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 50_000)  # wrong bytes: the completed file cannot match the ETag
    with pytest.raises(OSError, match="MD5 does not match"):
        run_fetch(settings, out)
    assert not part.exists()
    run_fetch(settings, out)
    assert (
        hashlib.md5((out / "audio" / "OS_10_03_2021_19_34_00_.flac").read_bytes()).digest()
        == hashlib.md5(bucket_objects[key]).digest()
    )


def test_fetch_from_an_empty_prefix_is_a_clear_error(
    moto_server: MotoServer, bucket_name: str, bucket_objects: dict[str, bytes], tmp_path: Path
) -> None:
    settings = FetchSettings(
        bucket=bucket_name, endpoint_url=moto_server.endpoint_url, prefix=PREFIX + "nothing/"
    )
    with pytest.raises(ValueError, match="no audio under"):
        run_fetch(settings, tmp_path / "fetch")


def test_fetch_from_a_local_folder_copies_once(catalogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "fetch"
    run_fetch(FetchSettings(local_dir=str(catalogue)), out)
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*") if p.parent != out)
    assert copied == [
        "annotations/OS_10_03_2021_19_34_00_.Table.1.selections.txt",
        "annotations/OS_10_05_2021_11_20_00_.Table.1.selections.txt",
        "annotations/OS_10_28_2021_1900_HB.Table.1.selections.txt",
        "audio/OS_10_03_2021_19_34_00_.flac",
        "audio/OS_10_05_2021_11_20_00_.flac",
        "audio/OS_10_28_2021_1900_HB.flac",
    ]
    stamp = (out / "audio" / "OS_10_03_2021_19_34_00_.flac").stat().st_mtime_ns
    run_fetch(FetchSettings(local_dir=str(catalogue)), out)
    assert (out / "audio" / "OS_10_03_2021_19_34_00_.flac").stat().st_mtime_ns == stamp
    assert len((out / "progress.jsonl").read_text().splitlines()) == 6
    with pytest.raises(ValueError, match="not a folder"):
        run_fetch(FetchSettings(local_dir=str(tmp_path / "missing")), tmp_path / "other")


def test_a_file_endpoint_is_refused_with_a_pointer_to_local_dir() -> None:
    with pytest.raises(ValueError, match="for a local catalogue folder set local_dir"):
        FetchSettings(endpoint_url="file:///data/catalogue")
