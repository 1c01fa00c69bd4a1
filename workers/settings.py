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

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'oms.db').resolve()}"
