"""Atomic writes and checksums: a result file is either complete or absent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.fileio import atomic_path, atomic_write_text, sha256_file, sha256_tree

__all__ = ["atomic_path", "atomic_write_json", "atomic_write_text", "checksum"]


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
    return sha256_tree(path, sorted(p for p in path.rglob("*") if p.is_file() and _is_result(p)))
