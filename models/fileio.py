"""File helpers every part shares (standard library only, so the daemon, the training steps
and the models use the same ones): atomic replacement and sha256 checksums."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(
    path: Path, *, durable: bool = False, partial: Path | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error it
    replaces ``path`` in one rename, otherwise it is removed. The temporary name keeps the
    suffix (writers that choose the format by it still work); ``partial`` names it instead.
    ``durable`` also fsyncs the file and the directory, so the contents survive a power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if partial is None:
        handle, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent
        )
        os.close(handle)
        partial = Path(name)
    temporary = partial
    try:
        yield temporary
        if durable:
            _fsync(temporary, os.O_RDONLY)
        os.replace(temporary, path)
        if durable:
            _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    finally:
        temporary.unlink(missing_ok=True)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = False) -> None:
    with atomic_path(path, durable=durable) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: Path, text: str, *, durable: bool = False) -> None:
    with atomic_path(path, durable=durable) as temporary:
        temporary.write_text(text, encoding="utf-8")


def sha256_files(paths: Iterable[Path]) -> str:
    """One sha256 over the contents of ``paths``, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return sha256_files([path])


def sha256_tree(root: Path, files: Iterable[Path]) -> str:
    """One sha256 over ``files`` under ``root``: each one's relative name and sha256, in the
    order given (a renamed file changes it, as does a changed one)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()
