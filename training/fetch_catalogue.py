"""Step 1: fetch the Haro Humpback catalogue (FLAC recordings + Raven selection tables).

From the public ``acoustic-sandbox`` bucket (unsigned) or any S3 endpoint, or from a local folder.
Resumable: complete files (size and ETag match the listing) are skipped; a download goes to
``<name>.part`` (continued with a Range request after an interruption) and is renamed only after
its size (and MD5, for single-part ETags) check out.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from monitor.ingest.local_store import is_local_endpoint
from monitor.ingest.s3 import S3Settings, S3Store, open_store
from training.cli_support import step_command
from training.result_files import atomic_path, atomic_write_json
from training.steprun import StepRun

AUDIO_DIR = "audio"
ANNOTATION_DIR = "annotations"


@dataclass(frozen=True)
class FetchSettings:
    bucket: str = "acoustic-sandbox"
    prefix: str = "humpbacks/Emily-Vierling-Orcasound-data/Em_HW_data/"
    audio_folder: str = "flac_files/"
    annotation_folder: str = "Annotations/"
    annotation_suffix: str = ".selections.txt"
    audio_extensions: tuple[str, ...] = (".flac", ".wav")
    endpoint_url: str = ""  # empty: AWS
    region: str = "us-west-2"
    anonymous: bool = True  # the catalogue bucket is public; unsigned requests
    local_dir: str = ""  # non-empty: copy audio + tables from this folder instead of S3
    concurrency: int = 3
    chunk_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if is_local_endpoint(self.endpoint_url) and not self.local_dir:
            # The download streams through the S3 client (Range GETs): a folder is read directly.
            raise ValueError(
                f"endpoint_url {self.endpoint_url!r}: for a local catalogue folder set local_dir"
            )


@dataclass(frozen=True)
class RemoteFile:
    key: str
    size: int
    etag: str
    kind: str  # audio | annotation

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def destination(self, out: Path) -> Path:
        return out / (AUDIO_DIR if self.kind == "audio" else ANNOTATION_DIR) / self.name


def classify(name: str, settings: FetchSettings) -> str | None:
    lowered = name.lower()
    if lowered.endswith(settings.annotation_suffix.lower()):
        return "annotation"
    if lowered.endswith(tuple(ext.lower() for ext in settings.audio_extensions)):
        return "audio"
    return None


def store_settings(settings: FetchSettings) -> S3Settings:
    return S3Settings(
        bucket=settings.bucket,
        region=settings.region,
        endpoint_url=settings.endpoint_url or None,
        anonymous=settings.anonymous,
        read_timeout_s=60.0,
    )


async def list_remote(store: S3Store, settings: FetchSettings) -> list[RemoteFile]:
    found: list[RemoteFile] = []
    for folder in (settings.audio_folder, settings.annotation_folder):
        listing = await store.list(settings.prefix + folder)
        for item in listing.objects:
            kind = classify(item.key, settings)
            if kind is not None:
                found.append(RemoteFile(item.key, item.size, (item.etag or "").strip('"'), kind))
    if not any(item.kind == "audio" for item in found):
        raise ValueError(
            f"no audio under s3://{settings.bucket}/{settings.prefix}{settings.audio_folder}"
        )
    return sorted(found, key=lambda item: item.key)


def _md5(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def _verify(part: Path, item: RemoteFile) -> None:
    size = part.stat().st_size
    if size != item.size:
        raise OSError(f"{item.key}: got {size} bytes, the listing says {item.size}")
    if "-" not in item.etag and len(item.etag) == 32 and _md5(part) != item.etag:
        part.unlink()
        raise OSError(f"{item.key}: MD5 does not match the ETag; the partial file was removed")


async def download(store: S3Store, item: RemoteFile, out: Path, bar: tqdm, chunk_bytes: int) -> str:
    """Stream one object to ``.part`` (continuing a partial one with a Range GET), verify, rename.
    The store's whole-object ``get`` would hold a recording in memory, so this streams."""
    target = item.destination(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > item.size:
        part.unlink()
        have = 0
    bar.update(have)
    if have < item.size:
        extra = {"Range": f"bytes={have}-"} if have else {}
        response = await store.client.get_object(Bucket=store.bucket, Key=item.key, **extra)
        async with response["Body"] as body:
            with part.open("ab") as handle:
                while chunk := await body.read(chunk_bytes):
                    await asyncio.to_thread(handle.write, chunk)
                    bar.update(len(chunk))
    await asyncio.to_thread(_verify, part, item)
    part.replace(target)
    return "resumed" if have else "downloaded"


async def fetch_s3(settings: FetchSettings, run: StepRun) -> list[RemoteFile]:
    async with open_store(store_settings(settings)) as store:
        remote = await list_remote(store, settings)
        todo = [
            item
            for item in remote
            if not (
                run.progress.done(item.key)
                and run.progress.records[item.key].get("etag") == item.etag
                and item.destination(run.out).is_file()
                and item.destination(run.out).stat().st_size == item.size
            )
        ]
        run.log("listed", files=len(remote), to_fetch=len(todo))
        gate = asyncio.Semaphore(max(1, settings.concurrency))
        total = sum(item.size for item in todo)
        with tqdm(total=total, unit="B", unit_scale=True, desc="fetch") as bar:

            async def one(item: RemoteFile) -> None:
                async with gate:
                    how = await download(store, item, run.out, bar, settings.chunk_bytes)
                run.log(how, key=item.key, size=item.size)
                run.unit_done(item.key, etag=item.etag, size=item.size, kind=item.kind)

            try:
                async with asyncio.TaskGroup() as group:
                    for item in todo:
                        group.create_task(one(item))
            except ExceptionGroup as failures:
                # One failure (or the --max-units stop) cancels the rest; report the first.
                raise failures.exceptions[0] from None
        return remote


def fetch_local(settings: FetchSettings, run: StepRun) -> list[RemoteFile]:
    source = Path(settings.local_dir)
    if not source.is_dir():
        raise ValueError(f"[fetch] local_dir {source} is not a folder")
    found = [
        RemoteFile(str(path), path.stat().st_size, "", kind)
        for path in sorted(source.rglob("*"))
        if path.is_file() and (kind := classify(path.name, settings)) is not None
    ]
    if not any(item.kind == "audio" for item in found):
        raise ValueError(f"no audio files ({', '.join(settings.audio_extensions)}) in {source}")
    for item in tqdm(found, desc="fetch (local)", unit="file"):
        target = item.destination(run.out)
        if target.is_file() and target.stat().st_size == item.size and run.progress.done(item.key):
            continue
        with atomic_path(target) as temporary:
            shutil.copyfile(item.key, temporary)
        run.unit_done(item.key, size=item.size, kind=item.kind)
    return found


def run_fetch(settings: FetchSettings, out: Path, *, max_units: int | None = None) -> Path:
    run = StepRun("fetch", out, settings, max_units=max_units)
    files = (
        fetch_local(settings, run) if settings.local_dir else asyncio.run(fetch_s3(settings, run))
    )
    inventory = [
        {
            "key": item.key,
            "kind": item.kind,
            "size": item.size,
            "etag": item.etag,
            "path": str(item.destination(out).relative_to(out)),
        }
        for item in files
    ]
    atomic_write_json(out / "inventory.json", inventory)
    run.finish(files=len(files), bytes=sum(item.size for item in files))
    return out


COMMAND = step_command("fetch", FetchSettings, run_fetch)
main = COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["FetchSettings", "RemoteFile", "run_fetch"]
