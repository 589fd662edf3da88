"""Webhook output: POST detections (the wire message as JSON) to an HTTP endpoint.

One ``WebhookOutput`` per configured target (``[[webhooks.targets]]``), each with its own queue
and spool, so a dead endpoint never delays another. A target takes the detections its filter
passes (``statuses``, by default only ``closed``; ``labels``, ``feeds``, ``min_score``); feed
status is not sent.

Each request carries:

- ``Content-Type: application/json``; the body is the wire message, exactly the bytes signed;
- ``Idempotency-Key: <message_id>``: the same for every retry of one message, so a receiver
  that stores it answers a repeat without acting twice;
- ``X-Hydromon-Signature-256: sha256=<hex>`` when the target has a ``secret``: HMAC-SHA256 of
  the body with the secret (see docs/integrations.md for how to check it).

A 2xx answer is delivered. A connection error, a timeout, 408, 429 or 5xx is an outage: the
message goes to the spool and is retried with backoff, oldest first (``monitor/publish/
spooled.py``). Any other answer (400, 401, 404, 410…) is the endpoint refusing that message:
logged, counted (``rejected``), not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from monitor.detect.records import Detection, Message
from monitor.detect.wire import encode, message_key
from monitor.health.logs import get_logger
from monitor.publish.spooled import (
    DeliveryRejected,
    DeliveryUnavailable,
    RetrySettings,
    SpooledDelivery,
    SpoolStats,
)
from monitor.publish.subscription import STATUSES, Subscription

log = get_logger(__name__)

SIGNATURE_HEADER = "X-Hydromon-Signature-256"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Answers that mean "not now", not "never": retried from the spool.
RETRIED_STATUSES = frozenset({408, 425, 429})
TARGET_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    name: str = ""  # in logs, metrics (output "webhook-<name>") and the spool file; "": index
    secret: str | None = None  # HMAC-SHA256 key for the signature header; None: unsigned
    statuses: tuple[str, ...] = ("closed",)  # add "opened" to be told when a detection starts
    labels: tuple[str, ...] = ()  # empty: every label
    feeds: tuple[str, ...] = ()  # node names; empty: every feed
    min_score: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})  # score.max
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {Authorization = "Bearer …"}

    def __post_init__(self) -> None:
        url = URL(self.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"url: expected an http:// or https:// URL, got {self.url!r}")
        if self.name and not TARGET_NAME.fullmatch(self.name):
            raise ValueError(f"name: letters, digits, _ and - only, got {self.name!r}")
        if not set(self.statuses) <= set(STATUSES) or not self.statuses:
            raise ValueError(f"statuses: one or both of {', '.join(STATUSES)}")

    @property
    def subscription(self) -> Subscription:
        return Subscription(
            feeds=frozenset(self.feeds) or None,
            labels=frozenset(self.labels) or None,
            min_score=self.min_score,
            statuses=frozenset(self.statuses),
            kinds=frozenset({"detection"}),
        )


@dataclass(frozen=True)
class WebhookSettings:
    targets: tuple[WebhookTarget, ...] = ()
    timeout_s: float = field(default=10.0, metadata={"gt": 0.0})  # per request
    retry: RetrySettings = field(default_factory=RetrySettings)
    spool_dir: Path = Path("var/spool/webhooks")  # one <name>.sqlite3 per target
    spool_max_messages: int = field(default=10_000, metadata={"min": 1})  # per target

    def __post_init__(self) -> None:
        names = self.target_names()
        if len(set(names)) != len(names):
            raise ValueError(f"targets: names must be unique, got {names}")

    def target_names(self) -> list[str]:
        return [target.name or str(index) for index, target in enumerate(self.targets)]

    def spool_path(self, name: str) -> Path:
        return self.spool_dir / f"{name}.sqlite3"


def signature(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass
class WebhookStats(SpoolStats):
    delivered: int = 0
    filtered: int = 0  # not for this target
    errors: int = 0  # failed attempts (outages retried, rejections given up)
    rejected: int = 0  # the endpoint refused the message: given up (logged)


class WebhookOutput:
    def __init__(self, target: WebhookTarget, settings: WebhookSettings, name: str) -> None:
        self.name = f"webhook-{name}"
        self.target = target
        self.settings = settings
        self.stats = WebhookStats()
        self._filter = target.subscription
        self._session: aiohttp.ClientSession | None = None
        self.delivery = SpooledDelivery(
            self.name,
            self._deliver,
            settings.spool_path(name),
            settings.spool_max_messages,
            retry_delay=settings.retry.delays(),
            stats=self.stats,
        )

    @property
    def spool_depth(self) -> int:
        return self.delivery.depth

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        await self.delivery.start()

    async def publish(self, record: Message) -> None:
        if not isinstance(record, Detection):
            return
        message = encode(record)
        if not self._filter.matches(message):
            self.stats.filtered += 1
            return
        await self.delivery.submit(message)

    async def wait_drained(self) -> None:
        await self.delivery.wait_drained()

    async def close(self) -> None:
        await self.delivery.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(self, message: dict[str, Any]) -> None:
        if self._session is None:
            raise RuntimeError(f"{self.name} used before start() or after close()")
        target = self.target
        body = json.dumps(message, separators=(",", ":")).encode()
        headers = {
            **target.headers,
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: message_key(message),
        }
        if target.secret:
            headers[SIGNATURE_HEADER] = signature(target.secret, body)
        try:
            async with self._session.post(target.url, data=body, headers=headers) as response:
                status = response.status
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    await response.read()  # let the connection be reused
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self.stats.errors += 1
            raise DeliveryUnavailable(f"{self.name}: {type(error).__name__}: {error}") from error
        if 200 <= status < 300:
            self.stats.delivered += 1
            return
        self.stats.errors += 1
        if status >= 500 or status in RETRIED_STATUSES:
            raise DeliveryUnavailable(f"{self.name}: HTTP {status}")
        self.stats.rejected += 1
        log.error(
            "webhook refused the message: not retried",
            output=self.name,
            message_id=message_key(message),
            status=status,
        )
        raise DeliveryRejected(f"{self.name}: HTTP {status}")


def make_webhooks(settings: WebhookSettings) -> list[WebhookOutput]:
    return [
        WebhookOutput(target, settings, name)
        for target, name in zip(settings.targets, settings.target_names(), strict=True)
    ]
