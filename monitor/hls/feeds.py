"""The Orcasound hydrophone nodes (S3 prefix = node name).

The authoritative live list (with coordinates) is https://live.orcasound.net/api/json/feeds;
coordinates are left None here rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Feed:
    node: str
    display_name: str
    latitude: float | None = None
    longitude: float | None = None


FEEDS: tuple[Feed, ...] = (
    Feed("rpi_andrews_bay", "Andrews Bay"),
    Feed("rpi_bush_point", "Bush Point"),
    Feed("rpi_mast_center", "Mast Center"),
    Feed("rpi_north_sjc", "North San Juan Channel"),
    Feed("rpi_orcasound_lab", "Orcasound Lab"),
    Feed("rpi_point_robinson", "Point Robinson"),
    Feed("rpi_port_townsend", "Port Townsend"),
    Feed("rpi_sunset_bay", "Sunset Bay"),
)

FEED_NODES: tuple[str, ...] = tuple(feed.node for feed in FEEDS)


def feed_by_node(node: str) -> Feed:
    for feed in FEEDS:
        if feed.node == node:
            return feed
    raise KeyError(f"unknown Orcasound node {node!r}; known: {', '.join(FEED_NODES)}")


def latest_key(node: str) -> str:
    return f"{node}/latest.txt"


def folders_prefix(node: str) -> str:
    return f"{node}/hls/"


def folder_prefix(node: str, folder_epoch: int) -> str:
    return f"{node}/hls/{folder_epoch}/"


def playlist_key(node: str, folder_epoch: int) -> str:
    return f"{folder_prefix(node, folder_epoch)}live.m3u8"
