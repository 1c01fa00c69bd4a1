"""The worker's own Prometheus metrics (the Temporal SDK exports its own on another
endpoint, workers/main.py): failed calls to partners by receiver and kind, and failed
activity attempts by order stage. Served by the worker on OMS_WORKER_APP_METRICS_ADDRESS.

Counted in this process's REGISTRY; label values are bounded: receivers are configured
locations and channels, stages and activities are the worker's own."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOK_FAILURES = Counter(
    "oms_webhook_failures",
    "Failed calls to a partner (location webhook, channel callback, approval system), "
    "by receiver and kind: rejected (4xx: waits for an operator), unavailable (5xx, "
    "timeouts, unreachable: retried), forbidden (target not permitted)",
    ["receiver", "kind"],
    registry=REGISTRY,
)
STAGE_FAILURES = Counter(
    "oms_stage_failures",
    "Failed activity attempts by order stage and activity; kind business (no retry "
    "changes it: the order waits for an operator) or technical (retried)",
    ["stage", "activity", "kind"],
    registry=REGISTRY,
)

# the order stage each activity belongs to (others count under their own name)
STAGES = {
    "validate_order": "validation",
    "route_order": "routing",
    "assign_locations": "routing",
    "send_order_response": "response",
    "create_documents": "documents",
    "submit_work_orders": "submission",
    "send_work_order": "submission",
    "release_work_order": "submission",
    "notify_work_order_cancelled": "submission",
    "notify_approvers": "approval",
    "record_pick": "fulfillment",
    "record_ship": "fulfillment",
    "record_delivery": "fulfillment",
    "cancel_order_lines": "cancellation",
    "cancel_release": "cancellation",
    "release_reservations": "inventory",
    "project_order": "projection",
    "reconcile_reservations": "reconciliation",
}

WEBHOOK_KINDS = {
    "PartnerRejected": "rejected",
    "PartnerUnavailable": "unavailable",
    "TargetForbidden": "forbidden",
}


def count_webhook_failure(receiver: str, err: ApplicationError) -> None:
    WEBHOOK_FAILURES.labels(receiver, WEBHOOK_KINDS.get(err.type or "", "other")).inc()


def _is_business(err: BaseException) -> bool:
    return isinstance(err, ApplicationError) and err.non_retryable


class _CountFailures(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except CancelledError:
            raise
        except Exception as err:
            name = activity.info().activity_type
            stage = STAGES.get(name, "other")
            if stage == "other":
                name = "other"  # an activity this table does not know: bounded labels
            kind = "business" if _is_business(err) else "technical"
            STAGE_FAILURES.labels(stage, name, kind).inc()
            raise


class StageFailureInterceptor(Interceptor):
    """Counts every failed activity attempt in `oms_stage_failures_total` (a cancelled
    one is not a failure)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountFailures(next)
