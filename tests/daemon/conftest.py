"""Fixtures of the daemon's end-to-end tests (the trained classifier is made once a session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from tests.daemon.e2e_support import train_classifier


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AST fine-tuned on the scenario's calls vs its background (~15 s on 2 cores)."""
    return train_classifier(tmp_path_factory.mktemp("humpback-ast"))


@pytest.fixture(autouse=True)
def fresh_logging():
    """A test that runs ``hydromon`` in-process configures structlog to write to its captured
    stderr; later tests must not log into that file once it is closed."""
    yield
    structlog.reset_defaults()
