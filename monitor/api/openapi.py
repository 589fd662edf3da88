"""The OpenAPI 3.1 description served at ``/api/v1/openapi.json`` (docs/api.md in prose).

The detection schema is the wire schema (``monitor/schemas/detection.schema.json``) plus the
API's ``media`` and ``review``; it is embedded, not copied, so the two cannot drift."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from monitor import __version__


def _wire_schema(name: str) -> dict[str, Any]:
    text = resources.files("monitor").joinpath("schemas", name).read_text()
    schema = json.loads(text)
    schema.pop("$schema", None)
    schema.pop("$id", None)
    return _rebase(schema, name.split(".")[0])


def _rebase(node: Any, prefix: str) -> Any:
    """``#/$defs/x`` inside a wire schema → ``#/components/schemas/<prefix>_x``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                out[key] = f"#/components/schemas/{prefix}_{value.removeprefix('#/$defs/')}"
            else:
                out[key] = _rebase(value, prefix)
        return out
    if isinstance(node, list):
        return [_rebase(item, prefix) for item in node]
    return node


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_FILTERS = [
    _param("feed", "feed node(s), comma-separated or repeated"),
    _param("label", "label(s), comma-separated or repeated"),
]


@cache
def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    for name in ("detection.schema.json", "feed_status.schema.json"):
        schema = _wire_schema(name)
        prefix = name.split(".")[0]
        for key, value in schema.pop("$defs", {}).items():
            components[f"{prefix}_{key}"] = value
        components[f"{prefix}_message"] = schema
    url = {"type": "string", "description": "relative to the server root"}
    components.update(
        {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "Media": {
                "type": ["object", "null"],
                "properties": {
                    "audio": url,
                    "audio_archive": url,
                    "spectrogram": url,
                    "audio_denoised": url,
                    "audio_denoised_archive": url,
                },
            },
            "Review": {
                "type": ["object", "null"],
                "required": ["verdict", "note", "reviewed_utc"],
                "properties": {
                    "verdict": {"enum": ["confirmed", "rejected", "unsure"]},
                    "note": {"type": "string"},
                    "reviewed_utc": {"type": "string"},
                },
            },
            "Detection": {
                "description": "The latest wire message of the detection, plus media and review.",
                "allOf": [
                    {"$ref": "#/components/schemas/detection_message"},
                    {
                        "type": "object",
                        "required": ["media", "review"],
                        "properties": {
                            "media": {"$ref": "#/components/schemas/Media"},
                            "review": {"$ref": "#/components/schemas/Review"},
                        },
                    },
                ],
            },
            "DetectionPage": {
                "type": "object",
                "required": ["detections", "next_cursor"],
                "properties": {
                    "detections": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Detection"},
                    },
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
            "Feed": {
                "type": "object",
                "properties": {
                    "node": {"type": "string"},
                    "display_name": {"type": "string"},
                    "state": {
                        "enum": [
                            "Unknown",
                            "Up",
                            "Lagged",
                            "Silent",
                            "Unintelligible",
                            "Offline",
                            "Absent",
                        ]
                    },
                    "since_utc": {"type": ["string", "null"]},
                    "last_segment_utc": {"type": ["string", "null"]},
                    "lag_s": {"type": ["number", "null"]},
                    "last_error": {"type": ["object", "null"]},
                },
            },
            "ReviewRequest": {
                "type": "object",
                "required": ["verdict"],
                "properties": {
                    "verdict": {"enum": ["confirmed", "rejected", "unsure"]},
                    "note": {"type": "string"},
                },
            },
        }
    )
    paths: dict[str, Any] = {
        "/api/v1/detections": {
            "get": {
                "summary": "Detections, newest first, paged",
                "parameters": [
                    *_FILTERS,
                    _param("since", "start_utc ≥ this (ISO 8601)"),
                    _param("until", "start_utc < this (ISO 8601)"),
                    _param("min_score", "score.max ≥ this", {"type": "number"}),
                    _param("status", "opened or closed", {"enum": ["opened", "closed"]}),
                    _param("verdict", "only reviewed ones with these verdict(s)"),
                    _param("limit", "page size", {"type": "integer", "minimum": 1}),
                    _param("cursor", "next_cursor of the previous page"),
                ],
                "responses": {
                    "200": _json("DetectionPage", "one page"),
                    "400": _error("a bad filter or cursor"),
                },
            }
        },
        "/api/v1/detections/{id}": {
            "get": {
                "summary": "One detection",
                "parameters": [_ID],
                "responses": {
                    "200": _json("Detection", "the detection"),
                    "404": _error("unknown id"),
                },
            }
        },
        "/api/v1/detections/{id}/audio": {
            "get": {
                "summary": "The detection's audio (± the media margin)",
                "parameters": [
                    _ID,
                    _param(
                        "version",
                        "browser (Ogg/Opus, default), archive (FLAC), denoised, denoised_archive",
                        {"enum": ["browser", "archive", "denoised", "denoised_archive"]},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "audio",
                        "content": {"audio/ogg": {}, "audio/flac": {}},
                    },
                    "404": _error("unknown id, or no such file"),
                },
            }
        },
        "/api/v1/detections/{id}/spectrogram": {
            "get": {
                "summary": "Spectrogram PNG with the detection box",
                "parameters": [_ID],
                "responses": {
                    "200": {"description": "PNG", "content": {"image/png": {}}},
                    "404": _error("unknown id, or no such file"),
                },
            }
        },
        "/api/v1/detections/{id}/review": {
            "post": {
                "summary": "Record a reviewer's verdict (bearer token)",
                "parameters": [_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ReviewRequest"}
                        }
                    },
                },
                "security": [{"bearer": []}],
                "responses": {
                    "200": _json("Detection", "the updated detection"),
                    "400": _error("a bad body"),
                    "401": {"description": "missing or wrong token"},
                    "403": _error("no token configured and anonymous reviews are off"),
                    "404": _error("unknown id"),
                },
            }
        },
        "/api/v1/feeds": {
            "get": {
                "summary": "The feeds and their state",
                "responses": {
                    "200": {
                        "description": "feeds",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "feeds": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Feed"},
                                        }
                                    },
                                }
                            }
                        },
                    }
                },
            }
        },
        "/api/v1/events": {
            "get": {
                "summary": "Live messages as Server-Sent Events (event: detection | feed_status)",
                "parameters": [
                    *_FILTERS,
                    _param("status", "opened, closed"),
                    _param("kind", "detection, feed_status"),
                    _param("min_score", "score.max ≥ this", {"type": "number"}),
                ],
                "responses": {
                    "200": {"description": "an event stream", "content": {"text/event-stream": {}}}
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hydromon API",
            "version": __version__,
            "description": "Detections of the hydromon daemon, their media and reviews. "
            "When the server has a token, send Authorization: Bearer <token> (or, for "
            "<audio>, <img> and EventSource, ?access_token=<token>).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
