"""Logging, configured once: JSON lines for the daemon, readable lines for interactive use.

structlog renders everything, including records from the standard ``logging`` module (what
``models/``, transformers and other libraries use): they go through the same processors, so an
engine's start-up line or a library's exception reaches the JSON log like any other event."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, json_lines: bool, level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"bad log level {level!r}: use debug, info, warning or error")
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if json_lines:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(shared, renderer, numeric)


def _route_stdlib_logging(
    shared: list[structlog.types.Processor], renderer: structlog.types.Processor, level: int
) -> None:
    """One handler on the root logger that renders stdlib records as structlog does."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    # transformers keeps a handler of its own and does not propagate: route it here too.
    transformers = sys.modules.get("transformers")
    if transformers is not None:
        transformers.utils.logging.disable_default_handler()
        transformers.utils.logging.enable_propagation()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
