"""The server's options: one typed, validated object from the command line to every part of the server."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass

from gankit.errors import ConfigError

TOKEN_ENV = "GANKIT_SERVE_TOKEN"
MIN_TOKEN_LENGTH = 8
DEFAULT_MAX_PIXELS = 4096 * 4096
"""16.8 megapixels: a 4096 × 4096 photo, which the default resnet-9 generator translates in tiles in
about 1.5 GB; above it a request is refused with 413 before anything is decoded."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (names other than ``localhost`` count as
    reachable from outside: what they resolve to can change)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """``0.0.0.0`` / ``::``: every network interface of the machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeOptions:
    """What ``gankit serve`` was asked for. Defaults are safe: loopback only, one translation at a time
    per model, a short queue, bounded uploads."""

    runs: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 20.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    queue_size: int = 8
    concurrency: int = 1
    """Requests computed at once per model (the rest wait in the one shared queue)."""
    auth_token: str | None = None
    device: str = "auto"
    max_memory: int | None = None
    """Bytes one translation may use before it is tiled (None: half the available memory, shared
    among the translations that may run at once)."""
    examples: int = 3
    """Example images per direction taken from the run's own data."""

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def with_token_from_env(self) -> ServeOptions:
        """``--auth-token`` wins over ``$GANKIT_SERVE_TOKEN``."""
        if self.auth_token is None and os.environ.get(TOKEN_ENV):
            return dataclasses.replace(self, auth_token=os.environ[TOKEN_ENV])
        return self

    def validate(self) -> ServeOptions:
        """The options, or a :class:`ConfigError` naming the flag and what is wrong with it."""
        if not self.runs:
            raise ConfigError("give at least one RUN (a run folder, model.safetensors or checkpoint)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: expected a port number 0–65535 (0: any free port)")
        if not self.host.strip():
            raise ConfigError("--host: expected an address such as 127.0.0.1 or 0.0.0.0")
        if not self.max_upload_mb > 0:
            raise ConfigError(f"--max-upload-mb {self.max_upload_mb}: expected a size in MB > 0")
        if self.max_pixels < 1:
            raise ConfigError(f"--max-pixels {self.max_pixels}: expected a number of pixels ≥ 1")
        if self.queue_size < 0:
            raise ConfigError(f"--queue-size {self.queue_size}: expected a number ≥ 0 (0: refuse when busy)")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency {self.concurrency}: expected a number ≥ 1")
        if self.examples < 0:
            raise ConfigError(f"--examples {self.examples}: expected a number ≥ 0")
        if self.max_memory is not None and self.max_memory < 1:
            raise ConfigError(f"--max-memory {self.max_memory}: expected a size > 0 (e.g. 2G)")
        if self.auth_token is not None and len(self.auth_token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"--auth-token / ${TOKEN_ENV}: expected at least {MIN_TOKEN_LENGTH} characters")
        if not self.loopback and not self.auth_token:
            raise ConfigError(f"--host {self.host} makes the server reachable from other machines: give an access "
                              f"token with --auth-token TOKEN or ${TOKEN_ENV}")  # fmt: skip
        return self
