"""Order projection: status, lines, audit events and approvals into the store.

Runs as a local activity beside the workflow task, so bookkeeping costs no extra
round trip through the Temporal server.
"""

from __future__ import annotations

from temporalio import activity

from store import Store
from store.orders import LineProjection
from workflows.model import OrderProjection


class ProjectionActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="project_order")
    async def project_order(self, input: OrderProjection) -> None:
        view = input.view
        # the last workflow event the projection knows of orders the writes (never backwards)
        seq = max((e.seq for e in [*(view.events if view else []), *input.new_events]), default=0)
        await self.store.orders.project(
            # the events are kept (all of them) in order_events; the view is stored without
            view=None if view is None else view.model_dump_json(exclude={"events"}),
            view_seq=seq,
            order_id=input.order_id,
            status=input.status.value,
            updated_at=input.updated_at,
            lines=[
                LineProjection(
                    line.line_id, line.status.value, line.location_id, line.planned_ship_date
                )
                for line in input.lines
            ],
            events=[(e.seq, e.at, e.type, e.detail) for e in input.new_events],
            approvals=None
            if input.approvals is None
            else [
                {**a.model_dump(mode="python"), "status": a.status.value} for a in input.approvals
            ],
        )
