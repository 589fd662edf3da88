"""Per-output cooldown for notification-type outputs (push, chat, webhooks, pagers).

A humpback singing for an hour makes many detections; a person wants one notification, not
twenty. ``CooldownOutput`` wraps any output: after it passes a detection of a label on a feed,
later detections of that label on that feed whose start is less than ``cooldown_s`` after the
passed one's start are held back. The decision is made once per detection id, so its ``opened``
and ``closed`` messages are either both passed or both held back. Times are feed time (the
detections' starts), so a replay behaves like live. ``feed_status`` messages always pass.
Each wrapped output has its own gate: a cooldown on notifications never thins the Redis stream,
the files or the websocket feed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from monitor.health.logs import get_logger
from monitor.publish.output import Output

log = get_logger(__name__)


@dataclass(frozen=True)
class CooldownSettings:
    cooldown_s: float = 600.0  # per feed and label, between detection starts
    # Detection ids whose decision is remembered until their ``closed`` comes (bounded).
    max_open: int = 10_000

    def __post_init__(self) -> None:
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s must be ≥ 0, got {self.cooldown_s}")
        if self.max_open < 1:
            raise ValueError("max_open must be ≥ 1")


class Cooldown:
    """Decides, per detection id, whether a notification output gets it."""

    def __init__(self, settings: CooldownSettings) -> None:
        self.settings = settings
        self._last_ms: dict[tuple[str, str], int] = {}
        self._decided: OrderedDict[str, bool] = OrderedDict()
        self.suppressed = 0  # detections held back

    def admit(self, message: dict[str, Any]) -> bool:
        if message.get("kind") != "detection":
            return True
        ident = str(message["id"])
        closing = message.get("status") == "closed"
        if ident in self._decided:
            return self._decided.pop(ident) if closing else self._decided[ident]
        key = (str(message["feed"]["node"]), str(message["label"]))
        start_ms = int(message["start_epoch_ms"])
        last_ms = self._last_ms.get(key)
        # A start before the last one (a replay of older audio) starts a fresh cooldown.
        allowed = (
            last_ms is None
            or start_ms < last_ms
            or start_ms - last_ms >= self.settings.cooldown_s * 1000
        )
        if allowed:
            self._last_ms[key] = start_ms
        else:
            self.suppressed += 1
        if not closing:
            self._decided[ident] = allowed
            while len(self._decided) > self.settings.max_open:
                self._decided.popitem(last=False)
        return allowed


class CooldownOutput:
    """``inner`` behind a ``Cooldown``: same interface, same name unless ``name`` is given."""

    def __init__(self, inner: Output, settings: CooldownSettings, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.gate = Cooldown(settings)

    async def start(self) -> None:
        await self.inner.start()

    async def publish(self, message: dict[str, Any]) -> None:
        if self.gate.admit(message):
            await self.inner.publish(message)
        elif message.get("status") != "closed":
            log.info(
                "detection held back by cooldown",
                output=self.name,
                id=message.get("id"),
                feed=message.get("feed", {}).get("node"),
                label=message.get("label"),
            )

    async def close(self) -> None:
        await self.inner.close()
