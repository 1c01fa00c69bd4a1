"""Which failures are outages (503 with a code) and which are not, and command ids."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from temporalio.service import RPCError, RPCStatusCode

from api.commands import decode_command_id, encode_command_id
from api.dependencies import (
    NO_WORKER,
    RETRY_AFTER,
    STORE_UNAVAILABLE,
    TEMPORAL_UNAVAILABLE,
    DependencyUnavailable,
    as_unavailable,
)
from api.idempotency import update_owner


def wrapped(orig: BaseException, kind: type[sa_exc.DBAPIError] = sa_exc.DBAPIError) -> Exception:
    """What SQLAlchemy raises around a driver error."""
    try:
        raise kind("SELECT 1", {}, orig)
    except sa_exc.DBAPIError as err:
        return err


@pytest.mark.parametrize(
    "err",
    [
        wrapped(
            asyncpg.ObjectNotInPrerequisiteStateError(
                'database "x" is not currently accepting connections'
            )
        ),
        wrapped(
            asyncpg.ConnectionDoesNotExistError("connection was closed"), sa_exc.InterfaceError
        ),
        wrapped(asyncpg.CannotConnectNowError("the database system is starting up")),
        wrapped(asyncpg.AdminShutdownError("terminating connection")),
        wrapped(ConnectionRefusedError(111, "Connect call failed"), sa_exc.OperationalError),
        wrapped(sqlite3.OperationalError("database is locked"), sa_exc.OperationalError),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        sa_exc.TimeoutError("QueuePool limit reached, connection timed out"),
    ],
)
def test_store_outages_are_store_unavailable(err: Exception) -> None:
    outage = as_unavailable(err)
    assert outage is not None
    assert outage.code == STORE_UNAVAILABLE


@pytest.mark.parametrize(
    "err",
    [
        wrapped(asyncpg.UniqueViolationError("duplicate key"), sa_exc.IntegrityError),
        wrapped(asyncpg.UndefinedTableError("relation does not exist"), sa_exc.ProgrammingError),
        wrapped(asyncpg.ObjectNotInPrerequisiteStateError("lock not available"), sa_exc.DBAPIError),
        wrapped(sqlite3.OperationalError("no such table: orders"), sa_exc.OperationalError),
        ValueError("bad"),
        KeyError("x"),
        RuntimeError("something else"),
        RPCError("not found", RPCStatusCode.NOT_FOUND, b""),
    ],
)
def test_other_failures_are_not_outages(err: Exception) -> None:
    assert as_unavailable(err) is None


@pytest.mark.parametrize(
    "err",
    [
        RPCError("tcp connect error", RPCStatusCode.UNAVAILABLE, b""),
        RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""),
        RuntimeError("Failed client connect: Server connection error: tcp connect error"),
    ],
)
def test_temporal_outages_are_temporal_unavailable(err: Exception) -> None:
    outage = as_unavailable(err)
    assert outage is not None
    assert outage.code == TEMPORAL_UNAVAILABLE


def test_every_outage_code_has_a_retry_after() -> None:
    for code in (STORE_UNAVAILABLE, TEMPORAL_UNAVAILABLE, NO_WORKER):
        assert DependencyUnavailable(code, "x").retry_after == RETRY_AFTER[code] > 0


def test_command_ids_carry_workflow_and_update() -> None:
    update = "cancel:0123456789abcdef:key:with:colons"
    command_id = encode_command_id("order-A/B 1", update)
    assert "/" not in command_id and "=" not in command_id
    assert decode_command_id(command_id) == ("order-A/B 1", update)
    assert update_owner(update) == "0123456789abcdef"
    for made_up in ("", "!!", "bm9uZXdsaW5l", "x" * 2000):
        assert decode_command_id(made_up) is None
