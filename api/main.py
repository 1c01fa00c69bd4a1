"""API entry point."""

from __future__ import annotations

import logging

from aiohttp import web

from api.app import init_app
from workers.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    web.run_app(
        init_app(settings), host=settings.api_host, port=settings.api_port, print=lambda *_: None
    )


if __name__ == "__main__":
    main()
