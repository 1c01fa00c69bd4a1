"""How workflows call activities: by name (workflow code never imports activity modules,
which hold I/O), with one timeout and retry policy for technical failures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

T = TypeVar("T")

START_TO_CLOSE = timedelta(seconds=60)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)


async def call(name: str, arg: Any, result_type: type[T]) -> T:
    result: T = await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=START_TO_CLOSE,
        retry_policy=RETRY,
    )
    return result


async def run(name: str, arg: Any) -> None:
    await workflow.execute_activity(
        name, arg, start_to_close_timeout=START_TO_CLOSE, retry_policy=RETRY
    )
