"""How workflows call activities: by name (workflow code never imports activity modules,
which hold I/O), each with its own timeouts and retry policy for technical failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

T = TypeVar("T")


def _retry(
    *, maximum_interval: float = 30, non_retryable: tuple[str, ...] = (), attempts: int = 0
) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=maximum_interval),
        maximum_attempts=attempts,  # 0: until it succeeds
        non_retryable_error_types=list(non_retryable),
    )


@dataclass(frozen=True)
class CallOptions:
    start_to_close: timedelta
    heartbeat: timedelta | None = None
    retry: RetryPolicy = field(default_factory=_retry)


# store writes are short; routing plans and reserves line by line and heartbeats, so a
# hung attempt is noticed in seconds and its retry fences it out ("StaleAttempt")
STORE_WRITE = CallOptions(start_to_close=timedelta(seconds=15))
OPTIONS: dict[str, CallOptions] = {
    "route_order": CallOptions(
        start_to_close=timedelta(seconds=120),
        heartbeat=timedelta(seconds=15),
        retry=_retry(non_retryable=("StaleAttempt",)),
    ),
    "assign_locations": CallOptions(
        start_to_close=timedelta(seconds=60),
        heartbeat=timedelta(seconds=15),
        retry=_retry(non_retryable=("StaleAttempt",)),
    ),
    "validate_order": STORE_WRITE,
    "release_reservations": STORE_WRITE,
    "cancel_order_lines": STORE_WRITE,
    # a release's bookkeeping (fulfillment.py): one transaction each
    "release_work_order": STORE_WRITE,
    "record_pick": STORE_WRITE,
    "record_ship": STORE_WRITE,
    "record_delivery": STORE_WRITE,
    "record_transfer_receipt": STORE_WRITE,
    "record_returned_to_sender": STORE_WRITE,
    "cancel_release": STORE_WRITE,
    "send_order_response": CallOptions(start_to_close=timedelta(seconds=60)),
    # they run under the order's lock: they heartbeat, so an attempt lost with its worker
    # is retried within seconds and a cancel waiting for the lock is not held for minutes
    "create_documents": CallOptions(
        start_to_close=timedelta(seconds=120), heartbeat=timedelta(seconds=10)
    ),
    # (20 s: orders from before partners left the lock still post a webhook in here,
    # 10 s at most each)
    "submit_work_orders": CallOptions(
        start_to_close=timedelta(seconds=60), heartbeat=timedelta(seconds=20)
    ),
    # one partner call per attempt (10 s HTTP timeout); after 3 attempts the order shows the
    # last error and tries another round later; a refusal (4xx) is not retried
    "send_work_order": CallOptions(
        start_to_close=timedelta(seconds=30),
        retry=_retry(maximum_interval=10, non_retryable=("PartnerRejected",), attempts=3),
    ),
    "notify_work_order_cancelled": CallOptions(
        start_to_close=timedelta(seconds=30),
        retry=_retry(maximum_interval=60, non_retryable=("PartnerRejected",), attempts=10),
    ),
    # returns (workflows/returns.py): the record with its documents, then store writes
    "open_return": CallOptions(start_to_close=timedelta(seconds=60)),
    "dispose_return": STORE_WRITE,
    # the work order's row, then the location's webhook: retried a while, a refusal not
    "open_vendor_work_order": CallOptions(
        start_to_close=timedelta(seconds=30),
        retry=_retry(
            maximum_interval=300, non_retryable=("PartnerRejected", "TargetForbidden"), attempts=20
        ),
    ),
    "settle_return": STORE_WRITE,
    # the channel's callback: retried until it answers (10 min apart at most); a refusal
    # (4xx) or a forbidden target is not retried
    "send_refund_notice": CallOptions(
        start_to_close=timedelta(seconds=30),
        retry=_retry(maximum_interval=600, non_retryable=("PartnerRejected", "TargetForbidden")),
    ),
    # a status update to the channel: retried for about an hour, then given up (logged in
    # the order's events); a refusal is not retried
    "send_tracking_update": CallOptions(
        start_to_close=timedelta(seconds=30),
        retry=_retry(
            maximum_interval=300, non_retryable=("PartnerRejected", "TargetForbidden"), attempts=20
        ),
    ),
}
DEFAULT = CallOptions(start_to_close=timedelta(seconds=60))


def _policy(options: CallOptions, attempts: int | None) -> RetryPolicy:
    """`attempts` bounds an activity that would otherwise retry until it succeeds (the
    order's stage then shows the last error and starts another round)."""
    policy = options.retry
    if attempts is None or policy.maximum_attempts:
        return policy
    return RetryPolicy(
        initial_interval=policy.initial_interval,
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=policy.maximum_interval,
        maximum_attempts=attempts,
        non_retryable_error_types=policy.non_retryable_error_types,
    )


async def call(name: str, arg: Any, result_type: type[T], *, attempts: int | None = None) -> T:
    options = OPTIONS.get(name, DEFAULT)
    result: T = await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=options.start_to_close,
        heartbeat_timeout=options.heartbeat,
        retry_policy=_policy(options, attempts),
    )
    return result


# a local activity retries within its workflow task while its next attempt is due within
# this; later attempts wait on a timer, and the task completes meanwhile (so a store
# outage does not hold the task, and an update that started the step is recorded)
LOCAL_RETRY_THRESHOLD = timedelta(seconds=3)


async def run(name: str, arg: Any, *, local: bool = False) -> Any:
    """`local`: as a local activity, run by the worker that runs the workflow task, in that
    task (its marker in the history instead of an activity task and the workflow task that
    takes its result); for short store writes that do not heartbeat. Returns the
    activity's result as decoded JSON."""
    options = OPTIONS.get(name, DEFAULT)
    if local:
        assert options.heartbeat is None, f"{name} heartbeats: not a local activity"
        return await workflow.execute_local_activity(
            name,
            arg,
            start_to_close_timeout=options.start_to_close,
            retry_policy=options.retry,
            local_retry_threshold=LOCAL_RETRY_THRESHOLD,
        )
    return await workflow.execute_activity(
        name,
        arg,
        start_to_close_timeout=options.start_to_close,
        heartbeat_timeout=options.heartbeat,
        retry_policy=options.retry,
    )
