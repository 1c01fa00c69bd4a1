"""Recorded histories in tests/histories/ replay on the current workflow code, so a change
that would break running orders fails here (guard it with `workflow.patched`).

`order_*.json` / `fulfillment_*.json` were recorded by the code before the issue-7 changes
(no patch markers): they prove that orders started on that code still replay. The others
were recorded by tests/integration/test_histories.py and test_continue_as_new.py, one per
path of the lifecycle (README, "Changing workflow code", says how to record them again).
`cancel_in_flight_unpatched_*.json` is that path recorded by the code before patch
oms-7001-cancel-in-flight (the order completed before its cancel recorded its return)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workers.main import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
# every path of the lifecycle has a recorded order history
PATHS = {
    "approval_ranks",
    "approval_decline",
    "approval_timeout",
    "backorder_rerelease",
    "backorder_exhausted",
    "not_announced_assignment",
    "cancel_validating",
    "cancel_routing",
    "cancel_on_hold",
    "cancel_not_announced",
    "cancel_check_announced",
    "cancel_awaiting_approval",
    "cancel_released",
    "cancel_picked",
    "cancel_partial",
    "cancel_through_temporal",
    "continue_as_new",
    "stage_refused",
    "stage_failing",
    "returned",
    "return_expired",
    "tracked",
    "returned_to_sender",
    "return_to_vendor",
    "transferred",
    "delivered_in_fewer_round_trips",
    "local_steps",
    "cancel_in_flight",
}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


def test_every_path_is_recorded() -> None:
    stems = {p.stem for p in HISTORIES}
    missing = sorted(p for p in PATHS if not any(s.startswith(f"{p}_order") for s in stems))
    assert not missing, f"record them with OMS_RECORD_HISTORIES=1 (README): {missing}"
    assert {"order_sqlite", "fulfillment_sqlite"} <= stems, "histories of the code before patches"
