"""Atomic writes and checksums: a result file is either complete or absent."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from models.bundle import sha256_file


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


# A step's own records change when it is rerun; they are not part of its results.
BOOKKEEPING = ("params.json", "progress.jsonl")


def _is_result(path: Path) -> bool:
    name = path.name
    return not (name.startswith(".") or name in BOOKKEEPING or name.endswith((".log", ".part")))


def checksum(path: Path) -> str:
    """sha256 of a file, or of a directory's result files (relative names and contents, in
    order; hidden files, partial downloads and step logs/params/progress left out)."""
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"input {path} does not exist")
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and _is_result(p)):
        digest.update(str(item.relative_to(path)).encode())
        digest.update(sha256_file(item).encode())
    return digest.hexdigest()
