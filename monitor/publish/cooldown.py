"""Per-output cooldown for outputs that notify people (chat, push, e-mail).

A humpback singing for an hour makes many detections; a person wants one alert, not twenty.
``CooldownOutput`` wraps any output: after it passes a detection of a label on a feed, later
detections of that label on that feed starting less than ``cooldown_s`` after the passed one's
start are held back (counted). The decision is made once per detection id, so its ``opened`` and
``closed`` messages are passed or held together. Times are feed time (detection starts), so a
replay behaves like live; a start before the last passed one (older audio) starts afresh. Feed
status always passes. The gate belongs to the wrapped output alone: Redis, the websocket, files,
MQTT and webhooks still get everything.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.detect.records import Detection, Message
from monitor.health.logs import get_logger
from monitor.publish.output import Output

log = get_logger(__name__)


@dataclass(frozen=True)
class CooldownSettings:
    cooldown_s: float = field(default=600.0, metadata={"min": 0.0})  # per feed and label
    # Detection ids whose decision is remembered until their ``closed`` comes (bounded).
    max_open: int = field(default=10_000, metadata={"min": 1})


class Cooldown:
    """Decides, per detection id, whether the wrapped output gets it."""

    def __init__(self, settings: CooldownSettings) -> None:
        self.settings = settings
        self._last_start: dict[tuple[str, str], float] = {}
        self._decided: OrderedDict[str, bool] = OrderedDict()
        self.suppressed = 0  # detections held back

    def admit(self, detection: Detection) -> bool:
        summary = detection.summary
        closing = detection.status == "closed"
        if summary.id in self._decided:
            return self._decided.pop(summary.id) if closing else self._decided[summary.id]
        key = (summary.feed.node, summary.label)
        start = summary.start_utc.timestamp()
        last = self._last_start.get(key)
        allowed = last is None or start < last or start - last >= self.settings.cooldown_s
        if allowed:
            self._last_start[key] = start
        else:
            self.suppressed += 1
        if not closing:
            self._decided[summary.id] = allowed
            while len(self._decided) > self.settings.max_open:
                self._decided.popitem(last=False)
        return allowed


class CooldownOutput:
    """``inner`` behind a ``Cooldown``: same interface and name; ``inner``'s counters show
    through (``stats``, ``spool_depth``) so /metrics sees the wrapped output."""

    def __init__(
        self,
        inner: Output,
        settings: CooldownSettings,
        considers: Callable[[Detection], bool] | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.gate = Cooldown(settings)
        # Detections the gate ignores (passed on untouched): those ``inner`` drops anyway.
        self._considers = considers or (lambda _detection: True)

    def __getattr__(self, name: str) -> object:
        if name == "inner":  # not set yet (copy, pickle): no endless lookup
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def held_back(self) -> dict[str, int]:
        """Alerts not passed on, by reason: the cooldown's and ``inner``'s own."""
        inner = getattr(self.inner, "held_back", None)
        return {**(inner if isinstance(inner, dict) else {}), "cooldown": self.gate.suppressed}

    async def start(self) -> None:
        await self.inner.start()

    async def publish(self, message: Message) -> None:
        if (
            not isinstance(message, Detection)
            or not self._considers(message)
            or self.gate.admit(message)
        ):
            await self.inner.publish(message)
        elif message.status != "closed":
            log.info(
                "detection held back by cooldown",
                output=self.name,
                id=message.summary.id,
                feed=message.summary.feed.node,
                label=message.summary.label,
            )

    async def close(self) -> None:
        await self.inner.close()
