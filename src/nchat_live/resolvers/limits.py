"""Per-user quotas and rates of the creating paths, as the Postgres rules of migration 0012 read them.

The rules live in Postgres (BEFORE INSERT / UPDATE triggers) so the domain operations and the
Hasura-style table API give the same answer. They read their figures from the `nchat.limits` table,
which every server process writes from its settings when it starts (`apply_limits`); a name missing
from the table falls back to the migration's default, the same as Settings' default.
"""

from __future__ import annotations

from ..auth import Claims
from ..config import Settings
from ..db import Database

# nchat.limits name -> Settings attribute.
LIMITS: dict[str, str] = {
    "channels_per_user": "quota_channels_per_user",
    "channels_per_hour": "rate_channels_per_hour",
    "streams_per_hour": "rate_streams_per_hour",
    "scheduled_streams": "quota_scheduled_streams",
    "live_streams": "quota_live_streams",
    "clips_per_hour": "rate_clips_per_hour",
    "questions_max": "rate_questions",
    "questions_window_s": "rate_questions_window_seconds",
    "schedule_max_days": "schedule_max_days_ahead",
    "schedule_past_s": "schedule_past_tolerance_seconds",
    "max_guests": "max_guests",
}


def limit_values(settings: Settings) -> dict[str, float]:
    return {name: float(getattr(settings, attribute)) for name, attribute in LIMITS.items()}


async def write_limits(db: Database, values: dict[str, float]) -> None:
    """Upsert figures into nchat.limits (as the server)."""
    async with db.session(Claims.service()) as s:
        await s.fetchval(
            "WITH t AS (INSERT INTO nchat.limits (name, value) SELECT * FROM unnest($1::text[], $2::numeric[]) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = now() RETURNING 1) "
            "SELECT count(*) FROM t",
            list(values), list(values.values()),
        )


async def apply_limits(db: Database, settings: Settings) -> None:
    """The settings' figures into nchat.limits: called once at start by every server process."""
    await write_limits(db, limit_values(settings))
