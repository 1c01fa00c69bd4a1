"""Settings from `OMS_` environment variables, shared by the worker, the API and the launcher."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from oms.targets import LOOPBACK, AllowList


def _env(name: str, default: str) -> str:
    return os.environ.get(f"OMS_{name}", default)


# values seen in demos, compose files and docs: never secrets in production
DEMO_VALUES = frozenset(
    {
        "dev-secret",
        "change-me",
        "changeme",
        "change-me-admin",
        "secret",
        "password",
        "admin",
        "dev-admin",
        "dev-ops",
        "dev-web",
        "dev-b2b",
        "dev-alice",
        "dev-berlin",
        "dev-munich",
        "dev-hamburg",
        "dev-london",
    }
)
MIN_SECRET_LENGTH = 32
ENVIRONMENTS = ("development", "production")
GENERATE = "generate one with `openssl rand -hex 32`"
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FLAG_ON = ("1", "true", "yes", "on")
FLAG_OFF = ("0", "false", "no", "off")


DEV_WEBHOOK_SECRET = "dev-secret"

# Settings field -> (its variable, its least value); every one at most TUNING_MAX
TUNING = {
    "worker_max_concurrent_activities": ("OMS_WORKER_MAX_CONCURRENT_ACTIVITIES", 1),
    "worker_max_concurrent_local_activities": ("OMS_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES", 1),
    "worker_max_concurrent_workflow_tasks": ("OMS_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", 1),
    "worker_max_cached_workflows": ("OMS_WORKER_MAX_CACHED_WORKFLOWS", 0),
    "worker_workflow_task_pollers": ("OMS_WORKER_WORKFLOW_TASK_POLLERS", 1),
    "worker_activity_task_pollers": ("OMS_WORKER_ACTIVITY_TASK_POLLERS", 1),
}
TUNING_MAX = 100_000


@dataclass(frozen=True)
class WorkerTuning:
    """How much one worker process takes on at once (Temporal's Worker options)."""

    max_concurrent_activities: int
    max_concurrent_local_activities: int
    max_concurrent_workflow_tasks: int
    max_cached_workflows: int
    workflow_task_pollers: int
    activity_task_pollers: int


@dataclass(frozen=True)
class Settings:
    # `production`: the worker and the API refuse to start with a missing, demo or short
    # secret (see refusals()); `development` (make dev, tests) allows the demo values
    env: str = field(default_factory=lambda: _env("ENV", "development"))
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
    # the Temporal UI as people's browsers reach it (the back office and `oms orders show`
    # link each order's workflow there); empty: http://localhost:<temporal_ui_port>
    temporal_ui_url: str = field(default_factory=lambda: _env("TEMPORAL_UI_URL", ""))
    # when set, the API makes sure an admin key with this value exists (first start of a
    # production stack, where no demo keys are seeded)
    bootstrap_admin_key: str = field(default_factory=lambda: _env("BOOTSTRAP_ADMIN_KEY", ""))
    webhook_secret: str = field(default_factory=lambda: _env("WEBHOOK_SECRET", DEV_WEBHOOK_SECRET))
    # hosts outgoing messages may go to although they are not public (oms/targets.py):
    # CIDRs and host names, comma-separated. Unset: loopback in development (make dev and
    # the tests run their partners on this machine), nothing in production
    outgoing_allow: str | None = field(default_factory=lambda: os.environ.get("OMS_OUTGOING_ALLOW"))
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
    # how long the API keeps the locations and channels it parsed for availability reads
    # (a change through the same API process clears them at once); 0: read every time
    config_cache_seconds: float = field(
        default_factory=lambda: float(_env("CONFIG_CACHE_SECONDS", "2"))
    )
    # the largest stock feed PUT /v1/inventory streams as CSV or NDJSON (413 beyond it);
    # 10 million rows of CSV are about 300 MB
    inventory_max_bytes: int = field(
        default_factory=lambda: int(_env("INVENTORY_MAX_BYTES", str(4 * 1024**3)))
    )
    # longest wait between two connection attempts of a worker or API started while
    # Temporal or the store is unreachable (1 s doubling up to this)
    connect_backoff_max_seconds: float = field(
        default_factory=lambda: float(_env("CONNECT_BACKOFF_MAX_SECONDS", "30"))
    )
    # the worker and the API bring the store's schema to their release's Alembic revision
    # at start ("1", the default); "0" leaves that to a deploy step (`oms db upgrade`)
    migrate_on_start: str = field(default_factory=lambda: _env("MIGRATE_ON_START", "1"))

    # the worker's Prometheus endpoints ("host:port"; empty turns one off): the Temporal
    # SDK's own metrics (workflow task and activity latencies, failures, sticky cache)
    # and the OMS's (webhook and stage failures, activities/metrics.py)
    worker_metrics_address: str = field(
        default_factory=lambda: _env("WORKER_METRICS_ADDRESS", "127.0.0.1:9464")
    )
    worker_app_metrics_address: str = field(
        default_factory=lambda: _env("WORKER_APP_METRICS_ADDRESS", "127.0.0.1:9465")
    )
    # the worker's capacity (workers/main.py build_worker): activity, local-activity and
    # workflow-task slots, the sticky cache of workflows kept in memory between their tasks
    # (0 turns the cache and sticky task queues off), and the pollers of each kind; read
    # through worker_tuning(), which names a malformed one
    worker_max_concurrent_activities: str = field(
        default_factory=lambda: _env("WORKER_MAX_CONCURRENT_ACTIVITIES", "50")
    )
    worker_max_concurrent_local_activities: str = field(
        default_factory=lambda: _env("WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES", "100")
    )
    worker_max_concurrent_workflow_tasks: str = field(
        default_factory=lambda: _env("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "100")
    )
    worker_max_cached_workflows: str = field(
        default_factory=lambda: _env("WORKER_MAX_CACHED_WORKFLOWS", "1000")
    )
    # 2, not the SDK's 5: on the dev server, five workflow-task long polls per worker made
    # every start_workflow (and so POST /v1/orders) wait twice as long, for no more orders
    # per second (README, Performance)
    worker_workflow_task_pollers: str = field(
        default_factory=lambda: _env("WORKER_WORKFLOW_TASK_POLLERS", "2")
    )
    worker_activity_task_pollers: str = field(
        default_factory=lambda: _env("WORKER_ACTIVITY_TASK_POLLERS", "5")
    )
    # "1": the worker imports the workflow modules afresh for every workflow (Temporal's
    # sandbox as it comes), so the sandbox's checks (no clock, I/O or randomness outside
    # `workflow.*`) cover every module; "0" (the default): the `workflows` package is
    # imported once per process and shared (workers/main.py). The tests run with "1".
    worker_strict_sandbox: str = field(default_factory=lambda: _env("WORKER_STRICT_SANDBOX", "0"))
    # log lines (oms/logs.py): `json` (one object per line) or `text`; empty: `json` in
    # production, `text` otherwise; and the lowest level written
    log_format: str = field(default_factory=lambda: _env("LOG_FORMAT", ""))
    log_level: str = field(default_factory=lambda: _env("LOG_LEVEL", "INFO"))
    # traces (oms/tracing.py): the OTLP/HTTP collector's base URL (http://host:4318); empty:
    # the standard OTEL_EXPORTER_OTLP_ENDPOINT if set, else no tracing at all
    otel_endpoint: str = field(default_factory=lambda: _env("OTEL_EXPORTER_OTLP_ENDPOINT", ""))

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'oms.db').resolve()}"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def strict_sandbox(self) -> bool:
        return self.worker_strict_sandbox.strip().lower() in FLAG_ON

    @property
    def migrates_on_start(self) -> bool:
        return self.migrate_on_start.strip().lower() not in FLAG_OFF

    def worker_tuning(self) -> WorkerTuning:
        """The worker's OMS_WORKER_* capacity settings as numbers; ValueError names the
        first one that is not a whole number in its range."""
        values: dict[str, int] = {}
        for name, (env, least) in TUNING.items():
            raw = str(getattr(self, name)).strip()
            if not raw.isdigit() or not least <= int(raw) <= TUNING_MAX:
                raise ValueError(
                    f"{env} must be a whole number from {least} to {TUNING_MAX}, not {raw[:40]!r}"
                )
            values[name.removeprefix("worker_")] = int(raw)
        tuning = WorkerTuning(**values)
        if tuning.max_cached_workflows > 0 and tuning.max_concurrent_workflow_tasks < 2:
            raise ValueError(
                "OMS_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS must be at least 2 while the sticky "
                "cache is on (OMS_WORKER_MAX_CACHED_WORKFLOWS > 0)"
            )
        if tuning.max_cached_workflows > 0 and tuning.workflow_task_pollers < 2:
            raise ValueError(
                "OMS_WORKER_WORKFLOW_TASK_POLLERS must be at least 2 while the sticky cache is "
                "on (OMS_WORKER_MAX_CACHED_WORKFLOWS > 0)"
            )
        return tuning

    def outgoing_allow_list(self) -> AllowList:
        """OMS_OUTGOING_ALLOW parsed (ValueError names a malformed entry)."""
        if self.outgoing_allow is None:
            return AllowList.parse("" if self.production else LOOPBACK)
        return AllowList.parse(self.outgoing_allow)

    def refusals(self, *, api: bool) -> list[str]:
        """Why this process must not start: an unknown OMS_ENV and, in production, a
        missing, demo or short OMS_WEBHOOK_SECRET (and for the API, a demo or short
        OMS_BOOTSTRAP_ADMIN_KEY). Each names its setting. Whether the API has an admin
        key at all needs the store: api/app.py checks it at start."""
        if self.env not in ENVIRONMENTS:
            return [f"OMS_ENV must be one of {', '.join(ENVIRONMENTS)}, not {self.env[:40]!r}"]
        try:
            self.outgoing_allow_list()
        except ValueError as err:
            return [str(err)]
        if self.log_format.strip().lower() not in ("", *LOG_FORMATS):
            return [f"OMS_LOG_FORMAT must be json or text, not {self.log_format[:40]!r}"]
        if self.log_level.strip().upper() not in LOG_LEVELS:
            levels = ", ".join(LOG_LEVELS)
            return [f"OMS_LOG_LEVEL must be one of {levels}, not {self.log_level[:40]!r}"]
        otel = endpoint_problem(self.otel_endpoint)
        if otel:
            return [f"OMS_OTEL_EXPORTER_OTLP_ENDPOINT {otel}"]
        if self.migrate_on_start.strip().lower() not in (*FLAG_ON, *FLAG_OFF):
            return [f"OMS_MIGRATE_ON_START must be 1 or 0, not {self.migrate_on_start[:40]!r}"]
        if not api:
            try:
                self.worker_tuning()
            except ValueError as err:
                return [str(err)]
            for name, value in (
                ("OMS_WORKER_METRICS_ADDRESS", self.worker_metrics_address),
                ("OMS_WORKER_APP_METRICS_ADDRESS", self.worker_app_metrics_address),
            ):
                try:
                    host_port(value)
                except ValueError as err:
                    return [f"{name} {err}"]
        if not self.production:
            return []
        problems = []
        secret = _weakness(self.webhook_secret)
        if secret:
            problems.append(f"OMS_WEBHOOK_SECRET {secret}")
        if api and self.bootstrap_admin_key:
            key = _weakness(self.bootstrap_admin_key)
            if key:
                problems.append(f"OMS_BOOTSTRAP_ADMIN_KEY {key}")
        return problems


def endpoint_problem(value: str) -> str | None:
    """Why `value` cannot be an OTLP/HTTP endpoint, or None (empty is fine: no traces)."""
    if not value.strip():
        return None
    try:
        parts = urlsplit(value.strip())
        scheme, host = parts.scheme, parts.hostname
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        return f"must be an http(s) URL such as http://collector:4318, not {value[:80]!r}"
    return None


def host_port(address: str) -> tuple[str, int] | None:
    """A metrics address "host:port" ("[::1]:9464" for IPv6) split, or None when empty
    (turned off); ValueError says what is wrong with it."""
    if not address.strip():
        return None
    host, sep, port = address.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be host:port (or empty to turn it off), not {address[:60]!r}")
    return host, int(port)


def _weakness(value: str) -> str | None:
    """What makes `value` unfit for a production secret, or None."""
    if not value.strip():
        return f"is blank; {GENERATE}"
    if value == DEV_WEBHOOK_SECRET:
        return f"is not set or is the development default {DEV_WEBHOOK_SECRET!r}; {GENERATE}"
    if value.strip().lower() in DEMO_VALUES:
        return f"is the well-known demo value {value.strip()!r}; {GENERATE}"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is too short ({len(value)} characters, at least {MIN_SECRET_LENGTH}); {GENERATE}"
    if len(set(value)) < 10:
        return f"is not random (fewer than 10 different characters); {GENERATE}"
    return None


def check_or_exit(settings: Settings, *, api: bool, log: logging.Logger) -> None:
    """Exit with status 2 and say why when `settings` must not start this process."""
    problems = settings.refusals(api=api)
    if problems:
        for problem in problems:
            log.error("refusing to start (OMS_ENV=%s): %s", settings.env[:40], problem)
        sys.exit(2)
    if not settings.production and settings.webhook_secret == DEV_WEBHOOK_SECRET:
        log.warning(
            "OMS_ENV=development: demo secrets allowed (OMS_WEBHOOK_SECRET is the development "
            "default); set OMS_ENV=production on anything reachable from a network"
        )
