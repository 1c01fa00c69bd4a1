"""Log lines (oms/logs.py): JSON objects one per line with the extras and the order id
derived from Temporal's workflow ids, readable text with the same fields, the API's
request lines, and the two settings."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from temporalio.testing import ActivityEnvironment

from oms import logs
from workers.settings import Settings

WORKFLOW_DETAILS = {
    "attempt": 1,
    "namespace": "default",
    "run_id": "run-1",
    "task_queue": "oms-orders",
    "workflow_id": "order-WEB-1001",
    "workflow_type": "OrderWorkflow",
}
ACTIVITY_DETAILS = {
    "activity_id": "3",
    "activity_type": "send_work_order",
    "attempt": 2,
    "namespace": "default",
    "task_queue": "oms-orders",
    "workflow_id": "order-WEB-1001-release-2",
    "workflow_run_id": "run-7",
    "workflow_type": "FulfillmentWorkflow",
}


class Lines:
    """A logger whose lines land in a string, one formatter at a time."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.out = io.StringIO()
        handler = logging.StreamHandler(self.out)
        handler.setFormatter(formatter)
        self.logger = logging.getLogger(f"test.logs.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(handler)

    def text(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text()]


@pytest.fixture
def json_lines() -> Lines:
    return Lines(logs.JsonFormatter())


@pytest.fixture
def text_lines() -> Lines:
    return Lines(logs.TextFormatter())


def test_a_json_line_is_one_object_with_time_level_logger_message_and_extras(
    json_lines: Lines,
) -> None:
    json_lines.logger.info("stock %s loaded", "SKU-1", extra={"rows": 3, "where": {"a": 1}})
    json_lines.logger.warning("second\nline")
    first, second = json_lines.objects()
    assert first["message"] == "stock SKU-1 loaded"
    assert first["level"] == "INFO" and first["logger"] == json_lines.logger.name
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert first["rows"] == 3 and first["where"] == {"a": 1}
    # a message with a newline stays one line
    assert second["message"] == "second\nline" and len(json_lines.text()) == 2


def test_values_json_cannot_hold_are_written_as_text(json_lines: Lines) -> None:
    json_lines.logger.info("odd", extra={"thing": object(), "kind": set})
    (line,) = json_lines.objects()
    assert line["thing"].startswith("<object object") and line["kind"] == "<class 'set'>"


def test_an_exception_is_its_text_under_exc_info(json_lines: Lines) -> None:
    try:
        raise ValueError("bad stock row")
    except ValueError:
        json_lines.logger.exception("load failed")
    (line,) = json_lines.objects()
    assert line["message"] == "load failed" and line["level"] == "ERROR"
    assert "Traceback" in line["exc_info"] and "ValueError: bad stock row" in line["exc_info"]


def test_a_workflow_line_carries_the_order_workflow_and_run(json_lines: Lines) -> None:
    json_lines.logger.warning(
        "order stage response: 404", extra={"temporal_workflow": WORKFLOW_DETAILS}
    )
    (line,) = json_lines.objects()
    assert line["order_id"] == "WEB-1001"
    assert line["workflow_id"] == "order-WEB-1001" and line["run_id"] == "run-1"
    assert line["workflow_type"] == "OrderWorkflow" and line["task_queue"] == "oms-orders"
    assert line["attempt"] == 1
    assert "temporal_workflow" not in line


def test_an_activity_line_carries_the_activity_and_its_workflow(json_lines: Lines) -> None:
    json_lines.logger.info("sent", extra={"temporal_activity": ACTIVITY_DETAILS})
    (line,) = json_lines.objects()
    assert line["order_id"] == "WEB-1001"
    assert line["workflow_id"] == "order-WEB-1001-release-2" and line["run_id"] == "run-7"
    assert line["activity_type"] == "send_work_order" and line["activity_id"] == "3"
    assert line["attempt"] == 2
    assert "temporal_activity" not in line and "workflow_run_id" not in line


def test_an_order_id_given_in_the_call_wins(json_lines: Lines) -> None:
    json_lines.logger.info(
        "x", extra={"temporal_workflow": WORKFLOW_DETAILS, "order_id": "explicit"}
    )
    assert json_lines.objects()[0]["order_id"] == "explicit"


def test_a_line_outside_workflows_has_no_temporal_fields(json_lines: Lines) -> None:
    json_lines.logger.info("plain")
    (line,) = json_lines.objects()
    assert set(line) == {"time", "level", "logger", "message"}


@pytest.mark.parametrize(
    ("workflow_id", "workflow_type", "order_id"),
    [
        ("order-WEB-1001", "OrderWorkflow", "WEB-1001"),
        ("order-WEB-1001", None, "WEB-1001"),
        ("order-WEB-1001-release-3", "FulfillmentWorkflow", "WEB-1001"),
        ("order-WEB-1001-release-3", None, "WEB-1001"),
        # an order whose own id ends like a release
        ("order-A-release-1", "OrderWorkflow", "A-release-1"),
        ("order-A-release-1-release-2", "FulfillmentWorkflow", "A-release-1"),
        ("oms-reconcile-reservations", "ReconcileReservationsWorkflow", None),
        ("order-", "OrderWorkflow", None),
        ("ORDER-X", None, None),
    ],
)
def test_the_order_id_comes_from_the_workflow_id(
    workflow_id: str, workflow_type: str | None, order_id: str | None
) -> None:
    assert logs.order_id_from_workflow_id(workflow_id, workflow_type) == order_id


def test_a_text_line_is_readable_with_the_same_fields(text_lines: Lines) -> None:
    text_lines.logger.warning(
        "order stage %s: refused",
        "response",
        extra={"temporal_workflow": WORKFLOW_DETAILS, "detail": "answered 404 Not Found"},
    )
    (line,) = text_lines.text()
    assert " WARNING " in line
    assert "order stage response: refused" in line
    assert "order_id=WEB-1001" in line and "workflow_id=order-WEB-1001" in line
    assert "run_id=run-1" in line
    assert 'detail="answered 404 Not Found"' in line


def test_a_text_line_shows_the_exception_below(text_lines: Lines) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        text_lines.logger.exception("failed")
    text = text_lines.text()
    assert "failed" in text[0] and text[-1] == "RuntimeError: boom"


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(
    ("env", "log_format", "wanted"),
    [
        ("production", "", "json"),
        ("development", "", "text"),
        ("development", "json", "json"),
        ("production", "TEXT", "text"),
    ],
)
def test_the_format_defaults_to_json_in_production(
    env: str, log_format: str, wanted: str, root_restored: None
) -> None:
    out = io.StringIO()
    logs.configure(Settings(env=env, log_format=log_format), stream=out)
    logging.getLogger("oms.test").info("hello", extra={"k": "v"})
    line = out.getvalue().strip()
    if wanted == "json":
        assert json.loads(line)["k"] == "v"
    else:
        assert line.endswith("hello k=v")


def test_configure_sets_the_level_and_replaces_its_own_handler(root_restored: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure(Settings(log_level="warning"), stream=first)
    logs.configure(Settings(log_level="WARNING"), stream=second)
    logging.getLogger("oms.test").info("quiet")
    logging.getLogger("oms.test").warning("loud")
    assert first.getvalue() == ""
    assert "loud" in second.getvalue() and "quiet" not in second.getvalue()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (Settings(log_format="xml"), "OMS_LOG_FORMAT"),
        (Settings(log_level="LOUD"), "OMS_LOG_LEVEL"),
    ],
)
def test_an_unknown_format_or_level_refuses_to_start(settings: Settings, named: str) -> None:
    for api in (True, False):
        (problem,) = settings.refusals(api=api)
        assert problem.startswith(named)


def test_the_api_logs_method_path_status_and_duration_but_not_probes() -> None:
    lines = Lines(logs.JsonFormatter())
    access = logs.AccessLogger(lines.logger, "")
    assert access.enabled
    access.log(make_mocked_request("POST", "/v1/orders?x=1"), web.Response(status=201), 0.0123)
    for path in ("/health", "/ready", "/metrics"):
        access.log(make_mocked_request("GET", path), web.Response(), 0.001)
    (line,) = lines.objects()
    assert line["method"] == "POST" and line["path"] == "/v1/orders"
    assert line["status"] == 201 and line["duration_ms"] == 12.3
    assert line["message"] == "POST /v1/orders 201 12.3 ms"


async def test_a_plain_logger_inside_an_activity_carries_the_activity(json_lines: Lines) -> None:
    """Loggers other than activity.logger (logging.getLogger in activities/reconcile.py)
    get the running activity's context too."""

    async def reconcile() -> None:
        json_lines.logger.info("order reconciled")

    env = ActivityEnvironment()
    env.info = replace(
        env.info,
        activity_type="reconcile_order",
        workflow_id="order-WEB-7-release-1",
        workflow_type="FulfillmentWorkflow",
        workflow_run_id="run-9",
    )
    await env.run(reconcile)
    (line,) = json_lines.objects()
    assert line["activity_type"] == "reconcile_order" and line["order_id"] == "WEB-7"
    assert line["workflow_id"] == "order-WEB-7-release-1" and line["run_id"] == "run-9"
