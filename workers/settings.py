"""Settings from `OMS_` environment variables, shared by the worker, the API and the launcher."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"OMS_{name}", default)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(_env("DATA_DIR", ".oms")))
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", ""))
    temporal_address: str = field(
        default_factory=lambda: _env("TEMPORAL_ADDRESS", "localhost:7233")
    )
    temporal_namespace: str = field(default_factory=lambda: _env("TEMPORAL_NAMESPACE", "default"))
    task_queue: str = field(default_factory=lambda: _env("TASK_QUEUE", "oms-orders"))
    api_host: str = field(default_factory=lambda: _env("API_HOST", "127.0.0.1"))
    api_port: int = field(default_factory=lambda: int(_env("API_PORT", "8080")))
    temporal_ui_port: int = field(default_factory=lambda: int(_env("TEMPORAL_UI_PORT", "8233")))
    # when set, the API makes sure an admin key with this value exists (first start of a
    # production stack, where no demo keys are seeded)
    bootstrap_admin_key: str = field(default_factory=lambda: _env("BOOTSTRAP_ADMIN_KEY", ""))
    webhook_secret: str = field(default_factory=lambda: _env("WEBHOOK_SECRET", "dev-secret"))
    # how often the schedule `oms-reconcile-reservations` gives back the stock of orders
    # whose workflow ended without releasing it (workers/schedules.py)
    reconcile_interval_seconds: int = field(
        default_factory=lambda: int(_env("RECONCILE_INTERVAL_SECONDS", "300"))
    )

    # on SIGTERM the worker stops polling and gives running activities this long to finish
    # before they are cancelled (Worker's graceful_shutdown_timeout)
    graceful_shutdown_seconds: float = field(
        default_factory=lambda: float(_env("GRACEFUL_SHUTDOWN_SECONDS", "30"))
    )
    # the API's bound on one command (a Temporal update) before it answers 202 with a
    # command id to look up, and on store / Temporal calls before it answers 503
    command_timeout_seconds: float = field(
        default_factory=lambda: float(_env("COMMAND_TIMEOUT_SECONDS", "5"))
    )
    # longest wait between two connection attempts of a worker or API started while
    # Temporal or the store is unreachable (1 s doubling up to this)
    connect_backoff_max_seconds: float = field(
        default_factory=lambda: float(_env("CONNECT_BACKOFF_MAX_SECONDS", "30"))
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'oms.db').resolve()}"
