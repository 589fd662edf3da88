"""A Python client for hydromon's detections (docs/client.md).

- ``subscribe(url, token=…, labels=…, since=…)``: the websocket server, typed records,
  reconnecting and resuming; ``subscribe_messages`` for the wire dicts.
- ``stream_messages(redis_url)``: follow the Redis stream; ``StreamWorkers``: a consumer group
  for workers that share the detections (each entry to one worker, acked when done).
- ``parse``: a wire message as a ``DetectionEvent`` or ``FeedStatusEvent``.
"""

from monitor.client.events import DetectionEvent, Event, FeedStatusEvent, parse
from monitor.client.redis_stream import StreamEntry, StreamWorkers, stream_messages
from monitor.client.websocket_client import SubscriptionRefused, subscribe, subscribe_messages

__all__ = [
    "DetectionEvent",
    "Event",
    "FeedStatusEvent",
    "StreamEntry",
    "StreamWorkers",
    "SubscriptionRefused",
    "parse",
    "stream_messages",
    "subscribe",
    "subscribe_messages",
]
