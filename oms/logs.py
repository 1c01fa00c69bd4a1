"""One logging set-up for the worker and the API: JSON lines (one object per line) or
readable text, chosen by OMS_LOG_FORMAT, at OMS_LOG_LEVEL.

Lines logged from a workflow (`workflow.logger`) or an activity (`activity.logger`, or any
logger while an activity runs) carry the Temporal context flattened into `workflow_id`,
`run_id`, `workflow_type`, `task_queue`, `attempt`, `activity_type`, `activity_id`, and the
`order_id` derived from the workflow id (`order-<id>`, `order-<id>-release-<n>`), so
`jq 'select(.order_id == "WEB-1001")'` finds every line of one order.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from aiohttp.abc import AbstractAccessLogger
from temporalio import activity, workflow

from workers.settings import LOG_FORMATS, LOG_LEVELS

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest
    from aiohttp.web_response import StreamResponse

    from workers.settings import Settings

# attributes every LogRecord has: everything else on a record is an extra
_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, __file__, 1, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# the Temporal SDK's contextual loggers put their details under these keys
_TEMPORAL_KEYS = ("temporal_workflow", "temporal_activity", "workflow_info", "activity_info")
# Temporal detail names -> our field names (the activity's workflow_run_id is its run_id)
_RENAMED = {"workflow_run_id": "run_id"}
_CONTEXT_FIELDS = (
    "workflow_id",
    "run_id",
    "workflow_type",
    "activity_type",
    "activity_id",
    "attempt",
    "task_queue",
    "namespace",
    "update_id",
    "update_name",
)
_RELEASE = re.compile(r"^(?P<order>.+)-release-\d+$")
ORDER_PREFIX = "order-"
# requests not worth a line each: probes and scrapes
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})


def order_id_from_workflow_id(workflow_id: str, workflow_type: str | None = None) -> str | None:
    """The order an order workflow (`order-<id>`) or one of its releases
    (`order-<id>-release-<n>`) belongs to; None for other workflows. An OrderWorkflow's id
    is never cut (an order id may itself end in `-release-<n>`)."""
    if not workflow_id.startswith(ORDER_PREFIX) or len(workflow_id) == len(ORDER_PREFIX):
        return None
    rest = workflow_id[len(ORDER_PREFIX) :]
    if workflow_type != "OrderWorkflow":
        release = _RELEASE.match(rest)
        if release:
            return release["order"]
    return rest


def _details(value: Any) -> Mapping[str, Any]:
    """A Temporal detail dict as is, a full info object (workflow.Info, activity.Info)
    as its fields."""
    if isinstance(value, Mapping):
        return value
    names = (*_CONTEXT_FIELDS, "workflow_run_id")
    return {name: getattr(value, name) for name in names if hasattr(value, name)}


def temporal_context(record: logging.LogRecord) -> dict[str, Any]:
    """The workflow / activity context of `record` flattened, with the order id: from the
    SDK's contextual loggers' extras, or from the running activity for other loggers."""
    found: dict[str, Any] = {}
    carried = False
    for key in _TEMPORAL_KEYS:
        value = record.__dict__.get(key)
        if value is None:
            continue
        carried = True
        for name, item in _details(value).items():
            found.setdefault(_RENAMED.get(name, name), item)
    if not carried and activity.in_activity():
        # a plain logger (logging.getLogger) used inside an activity
        for name, item in _details(activity.info()).items():
            found.setdefault(_RENAMED.get(name, name), item)
    context = {name: found[name] for name in _CONTEXT_FIELDS if found.get(name) is not None}
    workflow_id = context.get("workflow_id")
    if isinstance(workflow_id, str):
        order_id = order_id_from_workflow_id(workflow_id, context.get("workflow_type"))
        if order_id is not None:
            context["order_id"] = order_id
    return context


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Every extra `record` carries (the Temporal ones flattened); an extra given in the
    call wins over a derived one of the same name."""
    fields = temporal_context(record)
    for name, value in record.__dict__.items():
        if name in _STANDARD or name in _TEMPORAL_KEYS or name.startswith("_"):
            continue
        fields[name] = value
    return fields


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, then every
    extra; `exc_info` / `stack_info` as text. Values JSON cannot hold are written as str()."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record_fields(record).items():
            line.setdefault(name, value)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if not text or any(c.isspace() or c in "\"'=" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <message> key=value ...`, the exception below it."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.name, record.getMessage()]
        parts += [f"{k}={_text_value(v)}" for k, v in record_fields(record).items()]
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def log_format(settings: Settings) -> str:
    """OMS_LOG_FORMAT, or its default: `json` in production, `text` otherwise (an unknown
    value falls back to the default; Settings.refusals() names it)."""
    chosen = settings.log_format.strip().lower()
    if chosen in LOG_FORMATS:
        return chosen
    return "json" if settings.production else "text"


def log_level(settings: Settings) -> int:
    """OMS_LOG_LEVEL as a logging level (INFO when unknown; Settings.refusals() names it)."""
    name = settings.log_level.strip().upper()
    return getattr(logging, name) if name in LOG_LEVELS else logging.INFO


def formatter_for(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if log_format(settings) == "json" else TextFormatter()


def configure(settings: Settings, *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line of this process to stderr (or `stream`) in the configured
    format and level; replaces the handler an earlier call installed and leaves others
    alone. The SDK's contextual loggers stop appending their context dict to the message:
    the formatters write it as fields."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_oms_logs", False):
            root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter_for(settings))
    handler._oms_logs = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(log_level(settings))
    workflow.logger.workflow_info_on_message = False
    workflow.logger.workflow_info_on_extra = True
    activity.logger.activity_info_on_message = False
    activity.logger.activity_info_on_extra = True
    return handler


class AccessLogger(AbstractAccessLogger):
    """The API's request lines (aiohttp's access log): method, path (without the query),
    status and duration in milliseconds as fields; nothing for /health, /ready and
    /metrics."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if request.path in QUIET_PATHS:
            return
        duration_ms = round(time * 1000, 1)
        self.logger.info(
            "%s %s %s %.1f ms",
            request.method,
            request.path,
            response.status,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": duration_ms,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
