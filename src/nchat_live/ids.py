"""The one check for ids that name rows in URLs and arguments (streams, recordings, WHIP paths).

Only the canonical form Postgres prints (lowercase, hyphenated) names a row: braces, `urn:uuid:`,
uppercase or bare hex do not, so one row has one URL (caches, logs and access checks agree) and a
malformed id is answered like an unknown one (404). Imports nothing from the package, so every
layer may use it.
"""

from __future__ import annotations

import re

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_canonical_uuid(value: object) -> bool:
    """True only for a lowercase, hyphenated UUID string."""
    return isinstance(value, str) and _CANONICAL_UUID.fullmatch(value) is not None


__all__ = ["is_canonical_uuid"]
