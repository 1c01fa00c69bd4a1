"""The fault scenarios of `make chaos` (tests/chaos/faults.py), short: every fault with a
small load on a stack the harness starts for itself (dev server, worker and API as
subprocesses, a PostgreSQL database of its own, a webhook server). PostgreSQL only: the
store outage blocks connections to that database. Skipped when PostgreSQL is unreachable,
unless OMS_REQUIRE_POSTGRES=1.

The faults run once, one after another (module fixture); each test reports one fault's
checks: every accepted order terminal, stock conserved, at most one current release per
line, no workflow failed, no 5xx other than a promised 503, no hang."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.chaos.faults import FAULTS, FaultResult, Params, report, run_faults
from tests.chaos.stack import PostgresUnreachable

# the whole run: about 4 minutes on 2 cores (webhook_500 waits for the workflow's next
# round of work-order attempts, 60 s; a killed worker's activities time out after 30-60 s)
pytestmark = pytest.mark.timeout(900)

SHORT = Params(orders=4, load_seconds=6.0, webhook_seconds=8.0, deadline_seconds=150.0)


@pytest.fixture(scope="module")
async def results(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, FaultResult]]:
    workdir = tmp_path_factory.mktemp("chaos")
    try:
        done = await run_faults(FAULTS, SHORT, workdir, out=print)
    except PostgresUnreachable as err:  # OMS_REQUIRE_POSTGRES=1 fails before this
        pytest.skip(f"{err} (OMS_REQUIRE_POSTGRES unset)")
    yield {r.fault: r for r in done}


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_keeps_the_promises(results: dict[str, FaultResult], fault: str) -> None:
    result = results[fault]
    assert result.accepted == result.placed, report([result])
    assert result.passed, report([result])
