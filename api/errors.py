"""Error mapping in one place: every failure becomes `{"error": {code, message, details}}`."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from temporalio.client import (
    RPCError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCStatusCode

from api.dependencies import (
    RETRY_AFTER,
    TEMPORAL_UNAVAILABLE,
    DependencyUnavailable,
    as_unavailable,
)

log = logging.getLogger("oms.api")
M = TypeVar("M", bound=BaseModel)

# ApplicationError types raised by workflow validators -> HTTP status and error code
WORKFLOW_ERRORS: dict[str, tuple[int, str]] = {
    "NotApprover": (403, "not_an_approver"),
    "UnknownReason": (404, "approval_reason_not_found"),
    "UnknownLine": (422, "unknown_line"),
    "InvalidQuantity": (422, "invalid_quantity"),
    "NotPending": (409, "not_pending"),
    "NotCancellable": (409, "not_cancellable"),
    "NotResumable": (409, "not_resumable"),
    "NotAssignable": (409, "not_assignable"),
    "InsufficientStock": (409, "insufficient_stock"),
    # returns (workflows/order_returns.py, workflows/returns.py)
    "ReturnWindowClosed": (409, "return_window_closed"),
    "NotReturnable": (409, "not_returnable"),
    "TooMany": (409, "too_many_returns"),
    "ExceedsDelivered": (422, "exceeds_delivered"),
    "InvalidReturn": (422, "invalid_return"),
    "ReturnClosed": (409, "return_closed"),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class CommandPending(Exception):
    """A command was sent but its outcome is not known yet: answered 202 with the command
    id the client looks up at /v1/commands/{id} (api/commands.py)."""

    def __init__(self, command_id: str) -> None:
        super().__init__(command_id)
        self.command_id = command_id

    def body(self) -> dict[str, str]:
        return {
            "command_id": self.command_id,
            "status": "pending",
            "poll": f"/v1/commands/{self.command_id}",
        }


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    response = web.json_response(body, status=status)
    if status == 503:  # every outage answer says when to try again
        response.headers["Retry-After"] = str(RETRY_AFTER.get(code, 5))
    return response


def field_errors(err: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in err.errors(include_url=False, include_input=False)
    ]


# Bounds on a JSON body, checked while it is read and before any schema sees it (400
# json_too_deep / number_too_long; the body size is the app's client_max_size, 413): no
# request of this API nests deeper than a handful of levels (a sales channel's approval
# rule is the deepest, at 7), and no number it takes has more than 20 characters. Only a
# body with a run of 20 digits is parsed with a length check on every number.
MAX_JSON_DEPTH = 32
MAX_NUMBER_LENGTH = 40
_LONG_DIGITS = re.compile(f"[0-9]{{{MAX_NUMBER_LENGTH // 2}}}")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonTooLarge(ValueError):
    """A body beyond one of the bounds above (a 400 with `code`, not a parse error)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _not_json(constant: str) -> Any:
    # Python's json reads these, JSON does not; a NaN or Infinity must never be stored
    raise ValueError(f"{constant} is not a JSON number")


def _number_too_long(text: str) -> JsonTooLarge:
    return JsonTooLarge(
        "number_too_long",
        f"a number in the request body has {len(text)} characters; "
        f"at most {MAX_NUMBER_LENGTH} are accepted",
    )


def _int(text: str) -> int:
    # checked before int() converts it: a conversion is quadratic in the digits
    if len(text) > MAX_NUMBER_LENGTH:
        raise _number_too_long(text)
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_LENGTH:
        raise _number_too_long(text)
    return float(text)


def _too_deep_text(text: str) -> bool:
    """Whether arrays and objects in this JSON text nest more than MAX_JSON_DEPTH levels,
    found in C before the parser recurses: strings out, then only the brackets kept (as
    bytes; `{}` as `[]`), then the innermost pairs removed, one level per pass."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    unquoted = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    brackets = unquoted.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def _too_deep() -> JsonTooLarge:
    return JsonTooLarge(
        "json_too_deep",
        f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep",
    )


def loads(text: str) -> Any:
    """Strict JSON: no NaN/Infinity, numbers of at most MAX_NUMBER_LENGTH characters,
    at most MAX_JSON_DEPTH levels of nesting (JsonTooLarge otherwise). Numbers too large
    for a float still read as inf; the schemas refuse those with a field error."""
    if _too_deep_text(text):
        raise _too_deep()
    try:
        if _LONG_DIGITS.search(text) is None:  # the common case: no hook per number
            data = json.loads(text, parse_constant=_not_json)
        else:  # a long run of digits, in a number or in a string
            data = json.loads(text, parse_constant=_not_json, parse_int=_int, parse_float=_float)
    except RecursionError as err:  # far deeper than the bound: the parser gave up
        raise _too_deep() from err
    return data


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate ("\ud800" in the JSON)
        return False
    return True


def unstorable_text(data: Any, limit: int = 20) -> list[dict[str, Any]]:
    """Field errors for strings no database stores: NUL characters (PostgreSQL refuses
    them, so an activity writing one would fail for ever) and unpaired surrogates."""
    problems: list[dict[str, Any]] = []
    pending: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while pending and len(problems) < limit:
        path, value = pending.pop()
        if isinstance(value, str):
            if not _storable(value):
                problems.append({"field": ".".join(path), "type": "invalid_text"})
        elif isinstance(value, dict):
            for key, item in value.items():
                # keys are text too (e.g. safety_buffers)
                shown = key.encode("utf-8", "backslashreplace").decode()
                if not _storable(key):
                    problems.append({"field": ".".join((*path, shown)), "type": "invalid_text"})
                pending.append(((*path, shown), item))
        elif isinstance(value, list):
            pending.extend(((*path, str(i)), item) for i, item in enumerate(value))
    for problem in problems:
        problem["message"] = "text may not contain NUL characters or unpaired surrogates"
    return sorted(problems, key=lambda p: str(p["field"]))


async def read_json(request: web.Request) -> Any:
    """The body as JSON; a body over the app's client_max_size is a 413 (HTTPException)."""
    try:
        data = await request.json(loads=loads)
    except JsonTooLarge as err:
        raise ApiError(
            400,
            err.code,
            err.message,
            {"max_depth": MAX_JSON_DEPTH, "max_number_length": MAX_NUMBER_LENGTH},
        ) from err
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {err}") from err
    problems = unstorable_text(data)
    if problems:
        raise ApiError(
            422, "validation_error", "the request body has text that cannot be stored", problems
        )
    return data


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ApiError(
            422, "validation_error", "the request body has invalid fields", field_errors(err)
        ) from err


def workflow_error(err: Exception, closed_code: str = "order_closed") -> ApiError:
    """Turn a failed update or RPC into an API error. `closed_code` is what a closed
    workflow means for this request (e.g. not_cancellable), so the answer does not
    depend on whether the workflow had already finished."""
    if isinstance(err, WorkflowUpdateFailedError):
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type in WORKFLOW_ERRORS:
            status, code = WORKFLOW_ERRORS[cause.type]
            return ApiError(status, code, cause.message)
        return ApiError(409, "rejected", str(cause or err))
    if isinstance(err, DependencyUnavailable):
        return ApiError(503, err.code, err.message)
    if isinstance(err, WorkflowUpdateRPCTimeoutOrCancelledError):
        return ApiError(
            503,
            TEMPORAL_UNAVAILABLE,
            "no worker answered in time; the request may or may not have been applied, "
            "read the order before retrying",
        )
    if isinstance(err, RPCError):
        if err.status == RPCStatusCode.NOT_FOUND:
            return ApiError(409, closed_code, "the workflow has completed: " + err.message)
        if err.status in (RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.ALREADY_EXISTS):
            return ApiError(409, closed_code, err.message)
        return ApiError(503, TEMPORAL_UNAVAILABLE, err.message)
    outage = as_unavailable(err)
    if outage is not None:
        return ApiError(503, outage.code, outage.message)
    raise err


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message, err.details)
    except CommandPending as pending:
        return web.json_response(pending.body(), status=202)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            err.status, "http_error"
        )
        # a 413 says the limit ("Maximum request body size N exceeded, ...")
        message = (err.text or err.reason) if err.status == 413 else err.reason
        details = None
        response = error_response(err.status, code, message)
        if err.status == 405:  # the methods the path has, in the header and the body
            allowed = sorted(getattr(err, "allowed_methods", ()))
            details = {"allowed_methods": allowed}
            response = error_response(err.status, code, message, details)
            response.headers["Allow"] = err.headers.get("Allow", ",".join(allowed))
        return response
    except Exception as err:
        # store unreachable, Temporal unreachable, no worker: 503 with Retry-After
        outage = as_unavailable(err)
        if outage is not None:
            log.warning("%s on %s %s: %s", outage.code, request.method, request.path, err)
            return error_response(503, outage.code, outage.message)
        if isinstance(err, RPCError):
            log.exception("temporal error on %s %s", request.method, request.path)
        else:
            log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error")
