"""Exceptions that name the offending file and the problem, so users can fix their input."""

from __future__ import annotations

from pathlib import Path


class GankitError(Exception):
    """Base class of every error gankit raises on purpose (the CLI prints these without a traceback)."""


class DataError(GankitError):
    """A dataset, folder or recipe cannot be used as asked."""


class ImageReadError(DataError):
    """One image file cannot be read; ``path`` says which and ``reason`` why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(GankitError):
    """A checkpoint or weights file is missing, truncated, corrupt or does not fit the model."""


class ConfigError(GankitError):
    """An option or config file has an invalid value."""


class TrainingDiverged(GankitError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
