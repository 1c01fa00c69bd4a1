"""Recorded histories in tests/histories/ replay on the current workflow code, so a change
that would break running orders fails here (guard it with `workflow.patched`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.fulfillment import FulfillmentWorkflow
from workflows.order import OrderWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[OrderWorkflow, FulfillmentWorkflow], data_converter=pydantic_data_converter
    )
    await replayer.replay_workflow(history)


def test_histories_are_recorded() -> None:
    kinds = {p.stem.split("_")[0] for p in HISTORIES}
    assert {"order", "fulfillment"} <= kinds, "run the durability test with OMS_RECORD_HISTORIES=1"
