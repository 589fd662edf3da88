"""Notifications for people: one short line per detection through apprise (e-mail, Slack,
Discord, Telegram, ntfy, Matrix, … — any apprise URL), e.g.

    Humpback at Orcasound Lab, 14:03:12 UTC, score 0.93, listen: https://…/api/v1/detections/<id>

Only detections of the chosen status (``on``: ``closed`` by default, with the final score;
``opened`` alerts sooner), passing the filters (labels, feeds, min score). A cooldown per feed
and label (``monitor/publish/cooldown.py``) and quiet hours (``monitor/publish/quiet_hours.py``,
checked against the message's emission time) keep it bearable. An alert is not spooled: one
that cannot be sent is counted and logged (an alert hours late is noise). apprise is the
optional ``notify`` extra (``pip install 'hydromon[notify]'``), imported on start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from monitor.detect.records import Detection, Message
from monitor.health.logs import get_logger
from monitor.publish.cooldown import CooldownOutput, CooldownSettings
from monitor.publish.output import OutputUnusable
from monitor.publish.quiet_hours import QuietHours, zone

if TYPE_CHECKING:
    import apprise

log = get_logger(__name__)

DETECTION_PATH = "/api/v1/detections/{id}"


@dataclass(frozen=True)
class NotifySettings:
    urls: tuple[str, ...] = ()  # apprise URLs, e.g. "ntfys://ntfy.sh/my-topic"
    title: str = "hydromon"
    on: Literal["opened", "closed"] = "closed"
    labels: tuple[str, ...] = ()  # empty: every label
    feeds: tuple[str, ...] = ()  # empty: every feed
    min_score: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})
    # The detection's page: link_base_url + /api/v1/detections/<id>; "": no link.
    link_base_url: str = ""
    timezone: str = "UTC"  # IANA zone the alert's time is written in
    cooldown: CooldownSettings = field(default_factory=CooldownSettings)
    quiet_hours: QuietHours = field(default_factory=QuietHours)

    def __post_init__(self) -> None:
        zone(self.timezone)


def alert_text(detection: Detection, settings: NotifySettings) -> str:
    """The one line a person reads."""
    summary = detection.summary
    what = summary.species.common_name if summary.species is not None else summary.label
    what = what[:1].upper() + what[1:]
    when = summary.start_utc.astimezone(zone(settings.timezone)).strftime("%H:%M:%S %Z")
    text = f"{what} at {summary.feed.display_name}, {when}, score {summary.score_max:.2f}"
    if settings.link_base_url:
        link = settings.link_base_url.rstrip("/") + DETECTION_PATH.format(id=summary.id)
        text += f", listen: {link}"
    return text


@dataclass
class NotifyStats:
    sent: int = 0  # (one not sent raises: the fan-out counts it as a failed publish)
    quiet: int = 0  # held back by quiet hours
    filtered: int = 0


class NotifyOutput:
    """Sends the alerts; build it with ``make_notify`` to have the cooldown in front."""

    def __init__(self, settings: NotifySettings, name: str = "notify") -> None:
        self.name = name
        self.settings = settings
        self.stats = NotifyStats()
        self._apprise: apprise.Apprise | None = None

    @property
    def held_back(self) -> dict[str, int]:
        """Alerts not sent on purpose, by reason (exported to /metrics)."""
        return {"quiet_hours": self.stats.quiet}

    async def start(self) -> None:
        try:
            import apprise
        except ImportError as error:
            raise OutputUnusable(
                "outputs.notify needs apprise: pip install 'hydromon[notify]'"
            ) from error
        if not self.settings.urls:
            raise OutputUnusable("outputs.notify is on but notify.urls is empty")
        sender = apprise.Apprise()
        for index, url in enumerate(self.settings.urls):
            if not sender.add(url):
                # Never echo the URL: it usually holds a token.
                raise OutputUnusable(f"notify.urls[{index}]: apprise does not accept this URL")
        self._apprise = sender

    def wants(self, detection: Detection) -> bool:
        """Whether ``detection`` is one to alert about (filters, quiet hours), whatever its
        status; the cooldown counts only these."""
        return self._passes(detection) and not self._quiet(detection)

    def _passes(self, detection: Detection) -> bool:
        settings, summary = self.settings, detection.summary
        return (
            (not settings.feeds or summary.feed.node in settings.feeds)
            and (not settings.labels or summary.label in settings.labels)
            and summary.score_max >= settings.min_score
        )

    def _quiet(self, detection: Detection) -> bool:
        return self.settings.quiet_hours.covers(detection.emitted_utc)

    async def publish(self, message: Message) -> None:
        if not isinstance(message, Detection) or message.status != self.settings.on:
            return
        summary = message.summary
        if not self._passes(message):
            self.stats.filtered += 1
            return
        if self._quiet(message):
            self.stats.quiet += 1
            log.info("alert held back by quiet hours", output=self.name, id=summary.id)
            return
        if self._apprise is None:
            raise RuntimeError("NotifyOutput used before start()")
        sent = await self._apprise.async_notify(
            body=alert_text(message, self.settings), title=self.settings.title
        )
        if not sent:
            raise RuntimeError(f"{self.name}: apprise could not deliver the alert for {summary.id}")
        self.stats.sent += 1

    async def close(self) -> None:
        self._apprise = None


def make_notify(settings: NotifySettings) -> CooldownOutput:
    """The notifier behind its cooldown, which counts only the detections it would alert on
    (a filtered or quiet one never holds back a later alert)."""
    notifier = NotifyOutput(settings)
    return CooldownOutput(notifier, settings.cooldown, considers=notifier.wants)
