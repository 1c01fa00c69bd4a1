"""GET /docs: the OpenAPI document (/openapi.json) in Swagger UI.

Swagger UI's files come from the swagger-ui-bundle-v2 package (Swagger UI 5, which reads
OpenAPI 3.1) and are served by the API itself under /docs/: the page loads nothing from
another host. Like /openapi.json, it needs no API key (api/auth.py PUBLIC); trying a
call from it needs one (the Authorize button)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from api.errors import ApiError

# the files the page loads (the bundle has more: source maps, ES module builds)
CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
BUNDLED = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")
FAVICONS = ("favicon-32x32.png", "favicon-16x16.png")
INIT_SCRIPT = "oms-docs.js"  # ours: starts Swagger UI on /openapi.json
ASSETS = (*BUNDLED, *FAVICONS, INIT_SCRIPT)
DOCS_PATH = "/docs"
ASSET_ROUTE = "/docs/{asset}"
# answered without an API key (api/auth.py)
PUBLIC_PATHS = frozenset({DOCS_PATH, *(f"{DOCS_PATH}/{name}" for name in ASSETS)})
CACHE = "public, max-age=3600"

# URLs relative to the page (/docs), so the API also works behind a path prefix
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>OMS API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/swagger-ui-standalone-preset.js"></script>
  <script src="docs/oms-docs.js"></script>
</body>
</html>
"""

INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayRequestDuration: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
});
"""

_files: dict[str, bytes] = {INIT_SCRIPT: INIT.encode()}


def asset_file(name: str) -> Path:
    """Where the package keeps one of BUNDLED or FAVICONS."""
    return Path(str(swagger_ui_path)) / name


async def _read(name: str) -> bytes:
    found = _files.get(name)
    if found is None:
        found = await asyncio.to_thread(asset_file(name).read_bytes)
        _files[name] = found
    return found


async def docs_page(request: web.Request) -> web.Response:
    """Swagger UI on this API's OpenAPI document (no API key needed to read it)."""
    return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": CACHE})


async def docs_asset(request: web.Request) -> web.Response:
    """One of the files the /docs page loads."""
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no file {name[:64]!r} under /docs")
    body = await _read(name)
    content_type = CONTENT_TYPES[Path(name).suffix]
    charset = None if content_type.startswith("image/") else "utf-8"
    return web.Response(
        body=body, content_type=content_type, charset=charset, headers={"Cache-Control": CACHE}
    )
