"""Where a node's stream lives on S3 (the S3 prefix is the node name).

The nodes themselves, with their names and coordinates, are ``monitor.config.loader.DEFAULT_FEEDS``.
"""

from __future__ import annotations


def latest_key(node: str) -> str:
    return f"{node}/latest.txt"


def folders_prefix(node: str) -> str:
    return f"{node}/hls/"


def folder_prefix(node: str, folder_epoch: int) -> str:
    return f"{node}/hls/{folder_epoch}/"


def playlist_key(node: str, folder_epoch: int) -> str:
    return f"{folder_prefix(node, folder_epoch)}live.m3u8"
