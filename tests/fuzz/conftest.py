"""The fuzz suite's app (real Postgres, RLS, media off) and the hypothesis budget.

NCHAT_FUZZ_EXAMPLES sets the examples per test (per role and kind for GraphQL): the CI size is small so
the suite stays fast; a full run (a few thousand per role) is `NCHAT_FUZZ_EXAMPLES=2000 pytest tests/fuzz`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, settings
from starlette.applications import Starlette

from nchat_live.app import create_app
from nchat_live.config import Settings

# The CI size: GraphQL examples cost a document generation and a SQL statement each, the HTTP
# ones a cheap refusal, so GraphQL gets fewer to keep the package near a minute on two cores.
EXAMPLES = int(os.environ.get("NCHAT_FUZZ_EXAMPLES", "100"))
HTTP_EXAMPLES = int(os.environ.get("NCHAT_FUZZ_EXAMPLES", "150"))

# No example database: a failure prints its reproduction blob instead, and nothing is written into
# the working tree. The CI size runs the same examples every time (a red CI is a change, not luck);
# a sized run (NCHAT_FUZZ_EXAMPLES set) draws fresh ones.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    derandomize="NCHAT_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
)


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings.model_copy(update={"media_enabled": False}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test", timeout=30) as c:
        yield c

FUZZ_HTTP = settings(FUZZ, max_examples=HTTP_EXAMPLES)
