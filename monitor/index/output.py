"""The index as a fan-out output: each message written by one worker thread, off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from monitor.detect.records import Message
from monitor.detect.wire import encode
from monitor.index.store import DetectionIndex
from monitor.publish.output import OutputUnusable

T = TypeVar("T")


class IndexOutput:
    """Writes go through one thread (SQLite has one writer); ``call`` runs any other index
    work there too (reviews, media forgotten by the retention policy)."""

    def __init__(self, index: DetectionIndex, name: str = "index") -> None:
        self.name = name
        self.index = index
        self._writer: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="index-writer")
        try:
            await self.call(self.index.open)
        except (OSError, sqlite3.Error) as error:
            await self.close()
            raise OutputUnusable(f"{self.index.path}: cannot open the index ({error})") from None

    async def publish(self, message: Message) -> None:
        await self.call(self.index.put, encode(message))

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        if self._writer is None:
            raise RuntimeError("IndexOutput used before start()")
        return await asyncio.get_running_loop().run_in_executor(self._writer, function, *args)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.get_running_loop().run_in_executor(writer, self.index.close)
            writer.shutdown(wait=True)
