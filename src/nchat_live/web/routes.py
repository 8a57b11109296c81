"""Routes for the console pages and their assets.

The bundle is built by `npm run build` in `web/` into `static/` next to this module and committed,
so `nchat-live serve` needs no Node. Pages are plain HTML files; each reads its stream id from the
URL, so one file serves every `/watch/{id}`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"

# Pages are small and change with each build; assets carry a content hash in their names.
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _page(name: str) -> Response:
    path = STATIC_DIR / f"{name}.html"
    if not path.is_file():
        return JSONResponse(
            {"error": "web console not built", "hint": "run `npm ci && npm run build` in web/"},
            status_code=503,
        )
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


async def console_page(request: Request) -> Response:
    return _page("console")


async def watch_page(request: Request) -> Response:
    return _page("watch")


async def schedule_page(request: Request) -> Response:
    return _page("schedule")


async def dashboard_page(request: Request) -> Response:
    return _page("dashboard")


async def guest_page(request: Request) -> Response:
    return _page("guest")


async def root(request: Request) -> Response:
    return RedirectResponse("/console", status_code=307)


class _ImmutableStatic(StaticFiles):
    """Hashed asset files never change under the same name, so browsers may keep them."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200 and path.startswith("assets/"):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def web_routes() -> list[BaseRoute]:
    return [
        Route("/", root, methods=["GET"]),
        Route("/console", console_page, methods=["GET"]),
        Route("/watch/{stream_id}", watch_page, methods=["GET"]),
        Route("/schedule", schedule_page, methods=["GET"]),
        Route("/dashboard/{stream_id}", dashboard_page, methods=["GET"]),
        Route("/guest", guest_page, methods=["GET"]),
        Mount("/ui", app=_ImmutableStatic(directory=STATIC_DIR, check_dir=False), name="ui"),
    ]
