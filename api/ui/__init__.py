"""The back office: server-rendered pages under /ui for approvers, operations and
locations, signed in with an API key (api/ui/session.py), acting through the same
look-ups and workflow updates as the JSON API (api/ui/pages.py)."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from api.ui.pages import FILTERS, routes

PREFIX = "/ui"
STATIC = Path(__file__).parent / "static"


def is_ui_path(path: str) -> bool:
    """Paths the back office answers (its own sign-in instead of a Bearer key)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("api.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    env.filters.update(FILTERS)
    app.add_routes(routes)
    app.router.add_static(f"{PREFIX}/static", STATIC, name="ui_static", append_version=True)
