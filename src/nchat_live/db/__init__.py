"""Postgres: schema migrations, row-level security and the session API."""

from .database import Database
from .session import Session

__all__ = ["Database", "Session"]
