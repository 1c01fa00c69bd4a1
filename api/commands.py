"""Commands (Temporal updates) with a bounded answer time, and their look-up.

Every command checks first that some worker polls the task queue (503 `no_worker`
otherwise, nothing sent). A command sent whose outcome is not known within
OMS_COMMAND_TIMEOUT_SECONDS answers 202 with a command id instead of hanging; the
client asks `GET /v1/commands/{command_id}` for the outcome. The command id carries the
workflow id and the Temporal update id (which carries the caller's tag), so the look-up
knows which workflow to ask and answers only the caller who sent the command.

A command answered 202 is kept in the store (its update name and argument) until its
outcome is known: Temporal holds an update it admitted but no worker accepted in memory
only and drops it when the workflow task it waits for times out (a worker that died with
the task) or the server restarts; the look-up then finds no such update and sends the
command again under the same update id, which Temporal applies once."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from temporalio.client import (
    RPCError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCStatusCode

from api.auth import PRINCIPAL
from api.context import SETTINGS, STORE, TEMPORAL
from api.dependencies import WORKER_CHECK
from api.errors import ApiError, CommandPending, workflow_error
from api.idempotency import caller_tag, command_update_id, update_owner
from store.commands import Pending
from store.database import utcnow

routes = web.RouteTableDef()
log = logging.getLogger(__name__)

# a look-up waits this long for an outcome before answering "pending"
LOOKUP_SECONDS = 2.0
# keeping a pending command (its run, then the store) may add this much to the 202; the
# look-up's own store reads and writes are bounded the same
STORE_SECONDS = 1.0
# a kept command is sent again only this long after its 202 (a client that looks it up
# later learns it was not applied, instead of applying it hours on)
RESEND_WITHIN = timedelta(hours=1)


def encode_command_id(workflow_id: str, update: str) -> str:
    raw = f"{workflow_id}\n{update}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_command_id(command_id: str) -> tuple[str, str] | None:
    if not command_id or len(command_id) > 1024:
        return None
    try:
        raw = base64.urlsafe_b64decode(command_id + "=" * (-len(command_id) % 4))
        workflow_id, update = raw.decode().split("\n", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not workflow_id or not update:
        return None
    return workflow_id, update


async def require_worker(request: web.Request) -> None:
    """503 no_worker (or temporal_unavailable) unless a worker polls the task queue."""
    await request.app[WORKER_CHECK].require(request.app[TEMPORAL], request.app[SETTINGS].task_queue)


async def execute_update(
    request: web.Request,
    handle: WorkflowHandle[Any, Any],
    update: str,
    arg: Any,
    *,
    result_type: type,
) -> Any:
    """Send the update and wait for its outcome within the command bound. Raises
    DependencyUnavailable before sending when no worker polls, CommandPending when the
    outcome is not known in time, and the SDK's errors otherwise (see workflow_error)."""
    await require_worker(request)
    update_id = command_update_id(request, update)
    seconds = request.app[SETTINGS].command_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            return await handle.execute_update(
                update,
                arg,
                id=update_id,
                result_type=result_type,
                rpc_timeout=timedelta(seconds=seconds),
            )
    except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError) as err:
        await _remember(request, handle, update_id, update, arg)
        raise CommandPending(encode_command_id(handle.id, update_id)) from err


async def _remember(
    request: web.Request, handle: WorkflowHandle[Any, Any], update_id: str, name: str, arg: Any
) -> None:
    """Keep the command, with the run it went to, for its look-up to send again to that
    run; the 202 goes either way (a store that fails here, or a run not known, leaves the
    look-up to Temporal alone)."""
    argument = arg.model_dump(mode="json") if isinstance(arg, BaseModel) else arg
    try:
        async with asyncio.timeout(STORE_SECONDS):
            # the run the update went to: pinned to it, a look-up never sends the command
            # to a later run (continue-as-new), where Temporal would not know it was applied
            run_id = (await handle.describe(rpc_timeout=timedelta(seconds=STORE_SECONDS))).run_id
            await request.app[STORE].commands.remember(handle.id, update_id, name, argument, run_id)
    except Exception:
        log.warning("pending command %s of %s not kept", update_id, handle.id, exc_info=True)


@routes.get("/v1/commands/{command_id}")
async def get_command(request: web.Request) -> web.Response:
    """The outcome of a command answered 202: 200 done/failed, 202 pending, 404 unknown."""
    command_id = request.match_info["command_id"]
    decoded = decode_command_id(command_id)
    principal = request[PRINCIPAL]
    if decoded is None or update_owner(decoded[1]) != caller_tag(principal):
        raise ApiError(404, "command_not_found", f"no command {command_id}")
    workflow_id, update = decoded
    pending = await _kept(request, workflow_id, update)
    run_id = pending.run_id if pending is not None else None
    handle = (
        request.app[TEMPORAL]
        .get_workflow_handle(workflow_id, run_id=run_id)
        .get_update_handle(update)
    )
    try:
        async with asyncio.timeout(LOOKUP_SECONDS + 1):
            result = await handle.result(rpc_timeout=timedelta(seconds=LOOKUP_SECONDS))
    except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
        return web.json_response(CommandPending(command_id).body(), status=202)
    except WorkflowUpdateFailedError as err:
        if pending is not None:
            await _forget(request, workflow_id, update)
        return _failed(command_id, err)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise workflow_error(err) from err
        if pending is None or pending.run_id is None:
            raise ApiError(
                404, "command_not_found", f"no command {command_id} (or it was never applied)"
            ) from err
        if utcnow() - pending.created_at > RESEND_WITHIN:
            await _forget(request, workflow_id, update)
            raise ApiError(
                404, "command_not_found", f"command {command_id} was never applied"
            ) from err
        # the run knows no such update: dropped before a worker took it
        return await _send_again(request, command_id, workflow_id, update, pending)
    if pending is not None:
        await _forget(request, workflow_id, update)
    return _done(command_id, result)


async def _send_again(
    request: web.Request, command_id: str, workflow_id: str, update: str, pending: Pending
) -> web.Response:
    """The kept command to the run it went to, under its update id (applied once)."""
    handle = request.app[TEMPORAL].get_workflow_handle(workflow_id, run_id=pending.run_id)
    try:
        async with asyncio.timeout(LOOKUP_SECONDS + 1):
            result = await handle.execute_update(
                pending.name,
                pending.argument,
                id=update,
                rpc_timeout=timedelta(seconds=LOOKUP_SECONDS),
            )
    except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
        return web.json_response(CommandPending(command_id).body(), status=202)
    except WorkflowUpdateFailedError as err:
        await _forget(request, workflow_id, update)
        return _failed(command_id, err)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            # the run has closed (continued as new, finished) without the command
            await _forget(request, workflow_id, update)
            raise ApiError(
                404, "command_not_found", f"command {command_id} was never applied"
            ) from err
        raise workflow_error(err) from err
    await _forget(request, workflow_id, update)
    return _done(command_id, result)


async def _kept(request: web.Request, workflow_id: str, update: str) -> Pending | None:
    """The kept command, or None (also while the store fails: Temporal alone answers)."""
    try:
        async with asyncio.timeout(STORE_SECONDS):
            return await request.app[STORE].commands.find(workflow_id, update)
    except Exception:
        log.warning("pending command %s of %s not read", update, workflow_id, exc_info=True)
        return None


async def _forget(request: web.Request, workflow_id: str, update: str) -> None:
    try:
        async with asyncio.timeout(STORE_SECONDS):
            await request.app[STORE].commands.forget(workflow_id, update)
    except Exception:  # kept a while longer: a later look-up finds the outcome first
        log.warning("pending command %s of %s not cleared", update, workflow_id, exc_info=True)


def _failed(command_id: str, err: WorkflowUpdateFailedError) -> web.Response:
    failure = workflow_error(err)
    return web.json_response(
        {
            "command_id": command_id,
            "status": "failed",
            "error": {"code": failure.code, "message": failure.message},
        }
    )


def _done(command_id: str, result: Any) -> web.Response:
    return web.json_response({"command_id": command_id, "status": "done", "result": result})
