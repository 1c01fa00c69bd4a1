"""Activities: side effects, one module per stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.client import Client

from activities.approval import ApprovalActivities
from activities.documents import DocumentActivities
from activities.fulfillment import FulfillmentActivities
from activities.inventory import InventoryActivities
from activities.partners import Sender
from activities.projection import ProjectionActivities
from activities.reconcile import ReconcileActivities
from activities.response import ResponseActivities
from activities.returns import ReturnActivities
from activities.routing import RoutingActivities
from activities.submission import SubmissionActivities
from activities.tracking import TrackingActivities
from activities.validation import ValidationActivities
from oms.targets import AllowList
from store import Store


def all_activities(
    store: Store,
    *,
    webhook_secret: str,
    client: Client | None = None,
    outgoing_allow: AllowList | None = None,
) -> list[Callable[..., Any]]:
    """Every activity of the worker. `client` is the Temporal client the reconciliation
    asks about workflows; without it, it uses the client of the worker running it.
    `webhook_secret` signs messages to receivers without a secret of their own;
    `outgoing_allow` is where messages may go although it is not public (default: what
    OMS_OUTGOING_ALLOW and OMS_ENV say, see workers/settings.py)."""
    if outgoing_allow is None:
        from workers.settings import Settings

        outgoing_allow = Settings().outgoing_allow_list()
    sender = Sender(store, webhook_secret, outgoing_allow)
    validation = ValidationActivities(store)
    routing = RoutingActivities(store)
    response = ResponseActivities(store, sender)
    documents = DocumentActivities(store)
    submission = SubmissionActivities(store, sender)
    fulfillment = FulfillmentActivities(store)
    inventory = InventoryActivities(store)
    projection = ProjectionActivities(store)
    approval = ApprovalActivities(store, sender)
    reconcile = ReconcileActivities(store, client)
    returns = ReturnActivities(store, sender)
    tracking = TrackingActivities(store, sender)
    return [
        validation.validate_order,
        routing.route_order,
        routing.assign_locations,
        response.send_order_response,
        documents.create_documents,
        submission.submit_work_orders,
        submission.send_work_order,
        submission.notify_work_order_cancelled,
        fulfillment.release_work_order,
        fulfillment.record_pick,
        fulfillment.record_ship,
        fulfillment.record_delivery,
        fulfillment.record_transfer_receipt,
        fulfillment.record_returned_to_sender,
        fulfillment.cancel_release,
        inventory.cancel_order_lines,
        inventory.release_reservations,
        approval.notify_approvers,
        projection.project_order,
        reconcile.reconcile_reservations,
        returns.open_return,
        returns.dispose_return,
        returns.open_vendor_work_order,
        returns.send_refund_notice,
        returns.settle_return,
        tracking.send_tracking_update,
    ]
