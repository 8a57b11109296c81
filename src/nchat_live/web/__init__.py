"""The browser console: pages built from `web/` (Vite) and shipped inside the package."""

from .routes import STATIC_DIR, web_routes

__all__ = ["STATIC_DIR", "web_routes"]
