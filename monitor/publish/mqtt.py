"""MQTT output: detections and feed status as JSON (the wire messages) to an MQTT broker.

Topics (``{feed}`` = the feed's node name): detections to ``detection_topic``, feed status to
``status_topic`` (retained, so a new subscriber learns each feed's state at once), QoS 1. The
daemon's own availability goes to ``availability_topic`` (retained): ``online`` on each connect,
``offline`` on a clean stop, and the same ``offline`` as the broker-sent last will when the
connection dies without a goodbye (crash, kill, network loss).

A publish waits for the broker's PUBACK (``timeout_s``). While the broker is down or slow,
messages go to the disk spool and are delivered from it in order once it is back
(``monitor/publish/spooled.py``, reconnecting with backoff, ``[mqtt.retry]``). QoS 1 is "at
least once": a PUBACK lost with the connection means that message is sent again, so receivers
that must not see one twice de-duplicate on ``message_id``.

aiomqtt is the optional ``mqtt`` extra (``pip install 'hydromon[mqtt]'``), imported on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.detect.records import Message
from monitor.detect.wire import encode
from monitor.health.logs import get_logger
from monitor.publish.output import OutputUnusable
from monitor.publish.spooled import (
    DeliveryUnavailable,
    RetrySettings,
    SpooledDelivery,
    SpoolStats,
)

if TYPE_CHECKING:
    import aiomqtt

log = get_logger(__name__)
# aiomqtt warns on every forced disconnect of a dead connection; this output logs the outage
# itself, once, so only aiomqtt's errors get through.
_LIBRARY_LOG = logging.getLogger(f"{__name__}.aiomqtt")
_LIBRARY_LOG.setLevel(logging.ERROR)

ONLINE = b"online"
OFFLINE = b"offline"


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = field(default=1883, metadata={"min": 1, "max": 65535})
    username: str | None = None
    password: str | None = None
    client_id: str = "hydromon"
    tls: bool = False  # TLS to the broker (usually port 8883)
    ca_file: Path | None = None  # trust these CAs instead of the system's (self-signed brokers)
    cert_file: Path | None = None  # a client certificate, when the broker asks for one
    key_file: Path | None = None
    detection_topic: str = "hydromon/{feed}/detection"
    status_topic: str = "hydromon/{feed}/status"
    availability_topic: str = "hydromon/availability"
    qos: int = field(default=1, metadata={"min": 0, "max": 2})
    keepalive_s: int = field(default=30, metadata={"min": 5})
    timeout_s: float = field(default=5.0, metadata={"gt": 0.0})  # connect, and each PUBACK
    retry: RetrySettings = field(default_factory=RetrySettings)
    spool_path: Path = Path("var/spool/mqtt.sqlite3")
    spool_max_messages: int = field(default=100_000, metadata={"min": 1})

    def __post_init__(self) -> None:
        for name in ("detection_topic", "status_topic"):
            topic = getattr(self, name)
            try:
                topic.format(feed="node")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"{name}: {json.dumps(topic)} may only use {{feed}} ({error})"
                ) from None
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file: set both or neither")

    def topic_for(self, message: dict[str, Any]) -> str:
        template = self.status_topic if message["kind"] == "feed_status" else self.detection_topic
        return template.format(feed=message["feed"]["node"])


@dataclass
class MqttStats(SpoolStats):
    delivered: int = 0
    errors: int = 0  # failed attempts (each one retried from the spool)
    connects: int = 0
    connect_failures: int = 0


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for the broker (blocking: reads certificate files)."""
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(
            cafile=None if settings.ca_file is None else str(settings.ca_file)
        )
        if settings.cert_file is not None and settings.key_file is not None:
            context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    except (OSError, ssl.SSLError) as error:
        raise OutputUnusable(f"mqtt TLS: cannot load the certificates: {error}") from error
    return context


class MqttOutput:
    def __init__(self, settings: MqttSettings, name: str = "mqtt") -> None:
        self.name = name
        self.settings = settings
        self.stats = MqttStats()
        self.delivery = SpooledDelivery(
            name,
            self._deliver,
            settings.spool_path,
            settings.spool_max_messages,
            retry_delay=settings.retry.delays(),
            stats=self.stats,
        )
        self._client: aiomqtt.Client | None = None  # set while connected
        self._keeper: asyncio.Task[None] | None = None
        self._tls: ssl.SSLContext | None = None

    @property
    def spool_depth(self) -> int:
        return self.delivery.depth

    async def start(self) -> None:
        try:
            import aiomqtt  # noqa: F401  # the optional extra: fail here, in one line
        except ImportError as error:
            raise OutputUnusable(
                "outputs.mqtt needs aiomqtt: pip install 'hydromon[mqtt]'"
            ) from error
        self._tls = await asyncio.to_thread(tls_context, self.settings)
        await self.delivery.start()
        self._keeper = asyncio.create_task(self._keep_connected(), name=f"{self.name}-connection")

    async def publish(self, record: Message) -> None:
        await self.delivery.submit(encode(record))

    async def wait_drained(self) -> None:
        await self.delivery.wait_drained()

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        await self.delivery.close()
        client, self._client = self._client, None
        if client is not None:
            # A clean goodbye: the broker does not send the will, so say "offline" ourselves.
            with contextlib.suppress(Exception):
                await client.publish(
                    self.settings.availability_topic,
                    OFFLINE,
                    qos=self.settings.qos,
                    retain=True,
                    timeout=self.settings.timeout_s,
                )
            await _discard(client)

    async def _keep_connected(self) -> None:
        """Connect, and reconnect with backoff whenever the connection is lost, so the broker
        shows this daemon online (and the spool drains) without waiting for a message."""
        delays = self.settings.retry.delays()
        failures = 0
        while True:
            try:
                client = await self._connect()
            except Exception as error:  # anything: this task must never end while open
                self.stats.connect_failures += 1
                if failures == 0:
                    log.warning("mqtt broker unreachable, retrying", error=repr(error))
                await asyncio.sleep(delays(failures))
                failures += 1
                continue
            failures = 0
            self._client = client
            self.delivery.wake()
            await _lost(client)
            if self._client is client:
                self._client = None
                log.warning("mqtt connection lost, reconnecting")
            await _discard(client)

    async def _connect(self) -> aiomqtt.Client:
        import aiomqtt

        settings = self.settings
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=settings.client_id,
            will=aiomqtt.Will(settings.availability_topic, OFFLINE, qos=settings.qos, retain=True),
            keepalive=settings.keepalive_s,
            timeout=settings.timeout_s,
            tls_context=self._tls,
            logger=_LIBRARY_LOG,
        )
        try:
            async with asyncio.timeout(settings.timeout_s * 2):
                await client.__aenter__()
                await client.publish(
                    settings.availability_topic, ONLINE, qos=settings.qos, retain=True
                )
        except (aiomqtt.MqttError, OSError, TimeoutError) as error:
            await _discard(client)
            raise DeliveryUnavailable(
                f"mqtt broker {settings.host}:{settings.port}: {error}"
            ) from error
        self.stats.connects += 1
        log.info("mqtt connected", host=settings.host, port=settings.port)
        return client

    async def _deliver(self, message: dict[str, Any]) -> None:
        import aiomqtt

        settings = self.settings
        client = self._client
        if client is None:
            self.stats.errors += 1
            raise DeliveryUnavailable("mqtt: not connected to the broker (reconnecting)")
        try:
            await client.publish(
                settings.topic_for(message),
                json.dumps(message, separators=(",", ":")).encode(),
                qos=settings.qos,
                retain=message["kind"] == "feed_status",
                timeout=settings.timeout_s,
            )
        except (aiomqtt.MqttError, OSError) as error:
            self.stats.errors += 1
            # Drop the connection: the keeper reconnects, the spool delivers after that.
            self._client = None
            await _discard(client)
            raise DeliveryUnavailable(f"mqtt publish: {error}") from error
        self.stats.delivered += 1


async def _lost(client: aiomqtt.Client) -> None:
    """Until ``client``'s connection ends, however it ends."""
    # aiomqtt has no public "disconnected" event; its future is stable within aiomqtt 2.x
    # (pinned in pyproject.toml). Reading its outcome also keeps asyncio from logging it.
    with contextlib.suppress(Exception):
        await asyncio.shield(client._disconnected)


async def _discard(client: aiomqtt.Client) -> None:
    """Disconnect (if still connected) and let go of ``client``."""
    with contextlib.suppress(Exception):
        await client.__aexit__(None, None, None)
    # aiomqtt keeps a lost connection's error in a future nobody awaits once the client is
    # dropped; read it so asyncio does not log "Future exception was never retrieved".
    lost = getattr(client, "_disconnected", None)
    if isinstance(lost, asyncio.Future) and lost.done() and not lost.cancelled():
        lost.exception()
