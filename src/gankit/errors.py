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


class WriteError(GankitError, OSError):
    """A file could not be written (full disk, quota, I/O error); the previous version of the file, if
    any, is intact and no temporary file is left behind. Also an ``OSError``, as the error it replaces."""

    def __init__(self, path: str | Path, needed: int, free: int | None, reason: str, hint: str = ""):
        self.path, self.needed, self.free, self.reason = Path(path), needed, free, reason
        room = f" ({free:,} bytes free)" if free is not None else ""
        super().__init__(f"{self.path}: cannot write {needed:,} bytes: {reason}{room}" + (f"; {hint}" if hint else ""))

    def with_hint(self, hint: str) -> WriteError:
        return WriteError(self.path, self.needed, self.free, self.reason, hint)


class DiskSpaceError(GankitError):
    """The output folder's disk cannot hold what a run will write (checked before it starts)."""


class MemoryLimitError(GankitError):
    """A run's estimated peak memory exceeds the memory available (checked before it starts)."""


class Interrupted(GankitError):
    """Training stopped on SIGTERM or SIGINT after saving a checkpoint; ``exit_status`` is 128 + signal."""

    def __init__(self, message: str, signal_number: int):
        self.signal_number = signal_number
        super().__init__(message)

    @property
    def exit_status(self) -> int:
        return 128 + self.signal_number
