"""API entry point."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from api.app import StartupRefused, init_app
from oms import logs, tracing
from workers.settings import Settings, check_or_exit

log = logging.getLogger("oms.api")


def main() -> None:
    settings = Settings()
    logs.configure(settings)
    check_or_exit(settings, api=True, log=log)
    tracing.configure(settings, tracing.API_SERVICE)
    try:
        web.run_app(
            init_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            print=lambda *_: None,
            access_log_class=logs.AccessLogger,
        )
    except StartupRefused as refused:
        log.error("refusing to start (OMS_ENV=%s): %s", settings.env, refused)
        sys.exit(2)
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    main()
