"""The worker's capacity settings (OMS_WORKER_*) and the ports of several dev workers."""

from __future__ import annotations

import pytest

from workers.dev import nth_worker_address, worker_env
from workers.settings import Settings


def test_tuning_defaults_and_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    tuning = Settings().worker_tuning()
    assert (tuning.max_concurrent_activities, tuning.max_cached_workflows) == (50, 1000)
    assert (tuning.workflow_task_pollers, tuning.activity_task_pollers) == (2, 5)
    monkeypatch.setenv("OMS_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "8")
    monkeypatch.setenv("OMS_WORKER_MAX_CACHED_WORKFLOWS", "0")
    monkeypatch.setenv("OMS_WORKER_ACTIVITY_TASK_POLLERS", " 3 ")
    tuning = Settings().worker_tuning()
    assert tuning.max_concurrent_workflow_tasks == 8
    assert tuning.max_cached_workflows == 0  # no sticky cache
    assert tuning.activity_task_pollers == 3


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("worker_max_concurrent_activities", "many", "OMS_WORKER_MAX_CONCURRENT_ACTIVITIES"),
        ("worker_max_concurrent_activities", "0", "OMS_WORKER_MAX_CONCURRENT_ACTIVITIES"),
        ("worker_max_cached_workflows", "-1", "OMS_WORKER_MAX_CACHED_WORKFLOWS"),
        ("worker_workflow_task_pollers", "1", "OMS_WORKER_WORKFLOW_TASK_POLLERS"),
        ("worker_max_concurrent_workflow_tasks", "1", "OMS_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS"),
        ("worker_max_concurrent_local_activities", "1e9", "LOCAL_ACTIVITIES"),
    ],
)
def test_a_worker_refuses_to_start_with_a_bad_capacity(field: str, value: str, named: str) -> None:
    settings = Settings(**{field: value})  # type: ignore[arg-type]
    (problem,) = settings.refusals(api=False)
    assert named in problem
    assert settings.refusals(api=True) == []  # the API does not use them


def test_one_slot_and_one_poller_are_fine_without_the_sticky_cache() -> None:
    settings = Settings(
        worker_max_cached_workflows="0",
        worker_max_concurrent_workflow_tasks="1",
        worker_workflow_task_pollers="1",
    )
    assert settings.refusals(api=False) == []


def test_each_dev_worker_serves_its_metrics_on_ports_of_its_own() -> None:
    assert nth_worker_address("127.0.0.1:9464", 0) == "127.0.0.1:9464"
    assert nth_worker_address("127.0.0.1:9464", 1) == "127.0.0.1:9466"
    assert nth_worker_address("[::1]:9465", 2) == "[::1]:9469"
    assert nth_worker_address("", 3) == ""  # off stays off
    env = worker_env({"A": "1"}, Settings(), 1)
    assert env["A"] == "1"
    assert env["OMS_WORKER_METRICS_ADDRESS"].endswith(":9466")
    assert env["OMS_WORKER_APP_METRICS_ADDRESS"].endswith(":9467")
