"""hydromon: a streaming monitor for the Orcasound live hydrophones."""

__version__ = "0.1.0"
