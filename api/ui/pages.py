"""The back office's pages and form handlers.

Each page names the roles that may open it (admin opens all); a role outside them gets a
403 page. Reads come from the store's repositories, commands go through the JSON API's own
functions (api/orders.py, api/fulfillment.py), so a form does exactly what the matching
API call does, with the same checks and the same error codes. A refused command comes back
to the page it was sent from with the API's message; one not confirmed within the command
bound says so (the page refreshes and shows the outcome)."""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ValidationError

from activities.availability import channel_atp, safety_buffer, serves
from api import orders as order_api
from api import query
from api import reports as report_api
from api import work_orders as work_order_api
from api.auth import PRINCIPAL
from api.configuration import check_locations
from api.context import SETTINGS, STORE
from api.errors import ApiError, CommandPending, parse, unstorable_text
from api.fulfillment import (
    CANCELLED_DAYS,
    OPEN_WORK_ORDERS,
    WORK_ORDER_KINDS,
    allowed_steps,
    send_report,
)
from api.messages import AssignmentsRequest, CancelRequest, PickRequest
from api.order_views import render as render_view
from api.returns import ReceiveRequest, receive, visible_return
from api.ui import session
from store import Principal
from store.backoffice import BackOfficeQueries
from store.configuration import hash_key
from store.database import utcnow
from store.fulfillment import ShipmentRecord
from workflows.model import (
    HANDOVER_SUFFIX,
    RETURN_CONDITIONS,
    DeliverReport,
    LocationConfig,
    ReceiveTransferReport,
    ResumeInput,
    SalesChannelConfig,
    ShipReport,
)
from workflows.order import order_workflow_id

routes = web.RouteTableDef()

SESSION_RAW = web.RequestKey("ui_session", str)
FORM = web.RequestKey("ui_form", MultiDictProxy[Any])
PageHandler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]

# what each role may open, in the order the navigation shows it
PAGES = (
    ("approvals", "/ui/approvals", "Approvals", ("approver",)),
    ("ops", "/ui/ops", "Operations", ("ops",)),
    ("orders", "/ui/orders", "Orders", ("ops", "webshop")),
    ("work_orders", "/ui/work-orders", "Work orders", ("location", "ops")),
    ("inventory", "/ui/inventory", "Inventory", ("ops",)),
    ("reports", "/ui/reports", "Reports", ("ops",)),
)
ROLE_HOME = {
    "admin": "/ui/ops",
    "ops": "/ui/ops",
    "approver": "/ui/approvals",
    "location": "/ui/work-orders",
    "webshop": "/ui/orders",
}
PAGE_SIZE = 25
QUEUE_SIZE = 25

log = logging.getLogger("oms.ui")


# -- helpers ------------------------------------------------------------------------------


def _quote(value: object) -> str:
    """A path segment: order ids and keys are opaque, every reserved character escaped."""
    return quote(str(value), safe="")


def _money(value: object) -> str:
    try:
        return f"{Decimal(str(value)):,.2f}"
    except ArithmeticError:
        return str(value)


def _when(value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


FILTERS: dict[str, Callable[..., str]] = {"q": _quote, "money": _money, "when": _when}


def _allowed(principal: Principal, roles: tuple[str, ...]) -> bool:
    return principal.role == "admin" or principal.role in roles


def _nav(principal: Principal) -> list[dict[str, str]]:
    return [
        {"name": name, "href": href, "title": title}
        for name, href, title, roles in PAGES
        if _allowed(principal, roles)
    ]


def _flash_value(kind: str, text: str) -> str:
    raw = json.dumps({"kind": kind, "text": text[:500]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_flash(request: web.Request) -> dict[str, str] | None:
    raw = request.cookies.get(session.FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return {"kind": str(data["kind"]), "text": str(data["text"])}
    except (ValueError, KeyError, TypeError):
        return None


def _safe_back(value: object, default: str) -> str:
    """Where a form returns to: a back-office path of this site only."""
    if (
        isinstance(value, str)
        and value.startswith("/ui")
        and "//" not in value
        and "\\" not in value
        and len(value) < 1000
    ):
        return value
    return default


def _back(request: web.Request, principal: Principal) -> str:
    form = request.get(FORM)
    return _safe_back(form.get("back") if form else None, ROLE_HOME.get(principal.role, "/ui"))


def redirect(request: web.Request, to: str, kind: str = "", text: str = "") -> web.HTTPSeeOther:
    response = web.HTTPSeeOther(to)
    if text:
        session.set_cookie(request, response, session.FLASH_COOKIE, _flash_value(kind, text))
    return response


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    principal = request.get(PRINCIPAL)
    raw = request.get(SESSION_RAW)
    settings = request.app[SETTINGS]
    base: dict[str, Any] = {
        "principal": principal,
        "nav": _nav(principal) if principal else [],
        "csrf": session.csrf_token(settings, raw) if raw else "",
        "flash": _read_flash(request),
        "here": request.path_qs,
        "static": lambda name: str(request.app.router["ui_static"].url_for(filename=name)),
        "page": context.pop("page", ""),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    if base["flash"] is not None:
        session.clear_cookie(response, session.FLASH_COOKIE)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    return response


def error_page(request: web.Request, status: int, code: str, message: str) -> web.Response:
    return render(
        request,
        "error.html",
        {"status": status, "code": code, "message": message, "page": "error"},
        status=status,
    )


async def _signed_in(request: web.Request) -> Principal | None:
    cookie = session.parse(request.cookies.get(session.SESSION_COOKIE))
    if cookie is None:
        return None
    found = await BackOfficeQueries(request.app[STORE].db).session_key(cookie.key_id)
    if found is None or not session.valid(request.app[SETTINGS], cookie, found.key_hash):
        return None
    request[SESSION_RAW] = cookie.raw
    return found.principal


def page(*roles: str) -> Callable[[PageHandler], Callable[[web.Request], Awaitable[Any]]]:
    """A back-office handler: signed in (else to the sign-in page), of one of `roles`
    (admin always; else 403), a form with this session's CSRF token (else 403)."""

    def wrap(handler: PageHandler) -> Callable[[web.Request], Awaitable[Any]]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            principal = await _signed_in(request)
            if principal is None:
                if request.method == "GET":
                    target = "/ui/login?" + urlencode({"next": request.path_qs})
                    response = web.HTTPSeeOther(target)
                    session.clear_cookie(response, session.SESSION_COOKIE)
                    raise response
                return error_page(
                    request, 401, "unauthorized", "sign in again: the session has ended"
                )
            request[PRINCIPAL] = principal
            if roles and not _allowed(principal, roles):
                return error_page(
                    request,
                    403,
                    "forbidden",
                    f"the {principal.role} role may not open this page",
                )
            if request.method == "POST":
                form = await request.post()
                given = form.get(session.CSRF_FIELD) or request.headers.get(session.CSRF_HEADER)
                if not session.csrf_ok(
                    request.app[SETTINGS], request[SESSION_RAW], str(given or "")
                ):
                    return error_page(
                        request,
                        403,
                        "csrf_failed",
                        "the form was not sent from a page of this session "
                        "(reload the page and try again)",
                    )
                request[FORM] = form
            try:
                if FORM in request:
                    # what the JSON API refuses in a body (NUL, lone surrogates) is refused
                    # here too: no database could store it
                    fields = {k: v for k, v in request[FORM].items() if isinstance(v, str)}
                    problems = unstorable_text(fields)
                    if problems:
                        raise ApiError(
                            422,
                            "validation_error",
                            "the form has text that cannot be stored",
                            problems,
                        )
                return await handler(request, principal)
            except ApiError as err:
                if request.method == "POST" and err.status in (404, 409, 422):
                    raise redirect(
                        request, _back(request, principal), "error", _api_message(err)
                    ) from err
                return error_page(request, err.status, err.code, err.message)
            except CommandPending as pending:
                raise redirect(
                    request,
                    _back(request, principal),
                    "info",
                    "sent; the order has not confirmed it yet, this page shows the outcome "
                    f"when it has (command {pending.command_id[:16]}...)",
                ) from pending

        return run

    return wrap


def _api_message(err: ApiError) -> str:
    text = f"{err.message} ({err.code})"
    if isinstance(err.details, list):
        parts = [
            f"{d.get('field')}: {d.get('message')}" for d in err.details if isinstance(d, dict)
        ]
        if parts:
            text += ": " + "; ".join(parts[:5])
    return text


def _form(request: web.Request) -> MultiDictProxy[Any]:
    return request[FORM]


def _text(request: web.Request, name: str, limit: int = 1000) -> str:
    value = _form(request).get(name, "")
    return str(value).strip()[:limit] if isinstance(value, str) else ""


def _quantity(value: str, field: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = -1
    if number < 0:
        raise ApiError(
            422,
            "validation_error",
            "quantities are whole numbers of 0 or more",
            [{"field": field, "message": f"not a quantity: {value[:20]!r}", "type": "int"}],
        )
    return number


async def _view(request: web.Request, order_id: str) -> dict[str, Any] | None:
    stored = await request.app[STORE].orders.read_view(order_id)
    if stored is None:
        return None
    view: dict[str, Any] = json.loads(render_view(stored))
    return view


async def _views(request: web.Request, order_ids: list[str]) -> list[dict[str, Any]]:
    found = []
    for order_id in order_ids:
        view = await _view(request, order_id)
        if view is not None:
            found.append(view)
    return found


def _temporal_link(request: web.Request, workflow_id: str) -> str:
    settings = request.app[SETTINGS]
    base = (settings.temporal_ui_url or f"http://localhost:{settings.temporal_ui_port}").rstrip("/")
    return (
        f"{base}/namespaces/{_quote(settings.temporal_namespace)}/workflows/{_quote(workflow_id)}"
    )


# -- sign-in ------------------------------------------------------------------------------


@routes.get("/ui")
async def home(request: web.Request) -> web.StreamResponse:
    principal = await _signed_in(request)
    if principal is None:
        raise web.HTTPSeeOther("/ui/login")
    raise web.HTTPSeeOther(ROLE_HOME.get(principal.role, "/ui/login"))


@routes.get("/ui/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    token = session.login_token(request)
    next_page = _safe_back(request.query.get("next"), "")
    response = render(
        request,
        "login.html",
        {"login_token": token, "next": next_page, "error": "", "page": "login"},
    )
    session.set_cookie(request, response, session.LOGIN_COOKIE, token, max_age=3600)
    return response


@routes.post("/ui/login")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = request.cookies.get(session.LOGIN_COOKIE, "")
    given = form.get(session.CSRF_FIELD)
    if not token or not isinstance(given, str) or not session.csrf_ok_plain(token, given):
        return error_page(
            request, 403, "csrf_failed", "the sign-in form has expired: open it again"
        )
    key = form.get("api_key")
    key = key.strip() if isinstance(key, str) else ""
    next_page = _safe_back(form.get("next"), "")
    principal = await request.app[STORE].config.principal(key) if 0 < len(key) <= 500 else None
    if principal is None or principal.key_id is None:
        response = render(
            request,
            "login.html",
            {
                "login_token": token,
                "next": next_page,
                "error": "unknown, revoked or expired API key",
                "page": "login",
            },
            status=401,
        )
        return response
    response = web.HTTPSeeOther(next_page or ROLE_HOME.get(principal.role, "/ui"))
    session.set_cookie(
        request,
        response,
        session.SESSION_COOKIE,
        session.issue(request.app[SETTINGS], principal.key_id, hash_key(key)),
        max_age=session.SESSION_SECONDS,
    )
    session.clear_cookie(response, session.LOGIN_COOKIE)
    raise response


@routes.post("/ui/logout")
@page()
async def logout(request: web.Request, principal: Principal) -> web.StreamResponse:
    response = web.HTTPSeeOther("/ui/login")
    session.clear_cookie(response, session.SESSION_COOKIE)
    raise response


# -- approvals ----------------------------------------------------------------------------


@routes.get("/ui/approvals")
@page("approver")
async def approvals(request: web.Request, principal: Principal) -> web.StreamResponse:
    approver = None if principal.role == "admin" else principal.identity
    store = request.app[STORE]
    pending = await store.orders.pending_approvals(approver)
    order_ids = list(dict.fromkeys(item["order_id"] for item in pending))[:QUEUE_SIZE]
    views = await _views(request, order_ids)
    for view in views:
        view["pending"] = [
            a
            for a in view.get("approvals", [])
            if a["status"] == "pending" and (approver is None or approver in a["approvers"])
        ]
    decided = await BackOfficeQueries(store.db).decisions(approver)
    return render(
        request,
        "approvals.html",
        {
            "orders": views,
            "more": len(pending) > len(order_ids),
            "decided": decided,
            "page": "approvals",
        },
    )


@routes.post("/ui/orders/{order_id}/decision")
@page("approver")
async def decision(request: web.Request, principal: Principal) -> web.StreamResponse:
    row = await order_api.visible_order(request, principal)
    choice = _text(request, "decision", 16)
    body: dict[str, Any] = {
        "reason": _text(request, "reason", 64),
        "decision": choice,
        "comment": _text(request, "comment") or None,
    }
    if principal.role == "admin" and _text(request, "approver", 100):
        body["approver"] = _text(request, "approver", 100)
    await order_api.decide(request, principal, row, body)
    done = "approved" if choice == "approve" else "declined"
    raise redirect(
        request, _back(request, principal), "ok", f"{body['reason']} {done} for {row.order_id}"
    )


# -- operations ---------------------------------------------------------------------------

QUEUES = (
    ("ON_HOLD", "On hold", "Stopped by a rule or an error: fix the cause, then resume."),
    ("CHECK_ANNOUNCED", "Check announced", "Candidates exist, none within the tolerances."),
    ("NOT_ANNOUNCED", "Not announced", "No location can take it: assign by hand or cancel."),
)


@routes.get("/ui/ops")
@page("ops")
async def operations(request: web.Request, principal: Principal) -> web.StreamResponse:
    store = request.app[STORE]
    queues = []
    for status, title, hint in QUEUES:
        rows, total = await store.orders.search(status=status, limit=QUEUE_SIZE)
        queues.append(
            {
                "status": status,
                "title": title,
                "hint": hint,
                "total": total,
                "orders": await _views(request, [r.order_id for r in rows]),
                "more": f"/ui/orders?status={status}" if total > len(rows) else "",
            }
        )
    queries = BackOfficeQueries(store.db)
    for key, title, hint, found in (
        (
            "BACKORDERED",
            "Backordered",
            "Lines waiting for stock: assign a location that has it, or cancel.",
            await queries.backordered_orders(QUEUE_SIZE),
        ),
        (
            "FAILING",
            "Stage failing",
            "A stage keeps failing and retrying by itself (see the reason); fix its cause.",
            await queries.failing_orders(QUEUE_SIZE),
        ),
    ):
        ids, total = found
        queues.append(
            {
                "status": key,
                "title": title,
                "hint": hint,
                "total": total,
                "orders": await _views(request, ids),
                "more": "",
            }
        )
    locations = await store.config.locations()
    return render(
        request,
        "ops.html",
        {
            "queues": queues,
            "locations": [loc["location_id"] for loc in locations],
            "page": "ops",
        },
    )


@routes.post("/ui/orders/{order_id}/resume")
@page("ops")
async def resume(request: web.Request, principal: Principal) -> web.StreamResponse:
    row = await order_api.visible_order(request, principal)
    body: dict[str, Any] = {"comment": _text(request, "comment") or None}
    if _text(request, "correct_payment"):
        body["payment"] = {
            "method": _text(request, "payment_method", 32),
            "amount": _text(request, "payment_amount", 40),
            "currency": _text(request, "payment_currency", 3).upper(),
            "authorized": bool(_text(request, "payment_authorized")),
        }
    payload = parse(ResumeInput, body)
    await order_api.order_command(request, row, "resume_order", payload, "not_resumable")
    raise redirect(request, _back(request, principal), "ok", f"{row.order_id} resumed")


@routes.post("/ui/orders/{order_id}/assign")
@page("ops")
async def assign(request: web.Request, principal: Principal) -> web.StreamResponse:
    row = await order_api.visible_order(request, principal)
    form = _form(request)
    assignments = []
    for line in await request.app[STORE].orders.lines(row.order_id):
        location = form.get(f"location_{line.line_id}")
        if not isinstance(location, str) or not location.strip():
            continue
        entry: dict[str, Any] = {"line_id": line.line_id, "location_id": location.strip()}
        quantity = form.get(f"quantity_{line.line_id}")
        if isinstance(quantity, str) and quantity.strip():
            entry["quantity"] = _quantity(quantity, f"quantity_{line.line_id}")
        assignments.append(entry)
    if not assignments:
        raise ApiError(422, "validation_error", "choose a location for at least one line")
    payload = parse(
        AssignmentsRequest,
        {"assignments": assignments, "comment": _text(request, "comment") or None},
    )
    await check_locations(request, {a.location_id for a in payload.assignments})
    await order_api.order_command(request, row, "assign_locations", payload, "not_assignable")
    placed = ", ".join(f"line {a.line_id} at {a.location_id}" for a in payload.assignments)
    raise redirect(request, _back(request, principal), "ok", f"{row.order_id}: {placed}")


@routes.post("/ui/orders/{order_id}/cancel")
@page("ops", "webshop")
async def cancel(request: web.Request, principal: Principal) -> web.StreamResponse:
    row = await order_api.visible_order(request, principal)
    payload = parse(
        CancelRequest, {"reason": _text(request, "reason") or "cancelled by operations"}
    )
    try:
        await order_api.order_command(request, row, "cancel", payload, "not_cancellable")
    except ApiError as err:
        if err.code not in ("not_cancellable", "order_closed") or not (
            await order_api.cancelled_already(request, row.order_id, payload)
        ):
            raise
    raise redirect(request, _back(request, principal), "ok", f"{row.order_id} cancelled")


# -- orders -------------------------------------------------------------------------------


@routes.get("/ui/orders")
@page("ops", "webshop")
async def order_list(request: web.Request, principal: Principal) -> web.StreamResponse:
    status = query.optional_choice(request, "status", order_api.ORDER_STATUSES)
    channel = query.identifier(request, "sales_channel")
    customer = query.identifier(request, "customer_id")
    offset = query.integer(request, "offset", default=0, minimum=0, maximum=query.MAX_OFFSET)
    if principal.role == "webshop":
        channel = principal.identity
    rows, total = await request.app[STORE].orders.search(
        status=status, sales_channel=channel, customer_id=customer, limit=PAGE_SIZE, offset=offset
    )
    filters = {
        k: v
        for k, v in (("status", status), ("sales_channel", channel), ("customer_id", customer))
        if v
    }

    def page_link(at: int) -> str:
        return "/ui/orders?" + urlencode({**filters, "offset": at})

    return render(
        request,
        "orders.html",
        {
            "rows": rows,
            "total": total,
            "offset": offset,
            "filters": filters,
            "statuses": order_api.ORDER_STATUSES,
            "previous": page_link(max(offset - PAGE_SIZE, 0)) if offset else "",
            "next_page": page_link(offset + PAGE_SIZE) if offset + PAGE_SIZE < total else "",
            "page": "orders",
        },
    )


# a work order's status on the order page: the least advanced of its shipment's lines
SHIPMENT_PROGRESS = (
    "AWAITING_TRANSFER",
    "OPEN",
    "PICKED",
    "SHIPPED",
    "READY_FOR_PICKUP",
    "DELIVERED",
    "RETURNED_TO_SENDER",
    "BACKORDERED",
    "CANCELLED",
)


def _order_work_orders(view: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per work order of the order view: what it is (packaging, a transfer to the pickup
    store, the store's hand-over) and its status from its shipment's lines (WO{n} is
    reported on shipment S{n}, WO{n}-H on S{n}-H)."""
    order_id = view["order_id"]
    per_shipment: dict[str, list[str]] = {}
    for shipment in view.get("shipments", []):
        per_shipment.setdefault(shipment["shipment_key"], []).append(shipment["status"])
    found = {}
    for work_order in view.get("work_orders", []):
        work_order_id = work_order["work_order_id"]
        suffix = work_order_id[len(order_id) + 3 :]
        statuses = per_shipment.get(f"{order_id}-S{suffix}", [])
        if work_order.get("kind") == "TRANSFER":
            label = f"transfer to {work_order.get('destination_id')}"
        elif work_order_id.endswith(HANDOVER_SUFFIX):
            label = "pickup hand-over"
        else:
            label = "packaging"
        found[work_order_id] = {
            "label": label,
            "status": min(
                (s for s in statuses if s in SHIPMENT_PROGRESS),
                key=SHIPMENT_PROGRESS.index,
                default="",
            ),
        }
    return found


@routes.get("/ui/orders/{order_id}")
@page("ops", "webshop", "approver")
async def order_page(request: web.Request, principal: Principal) -> web.StreamResponse:
    row = await order_api.visible_order(request, principal)
    view = await _view(request, row.order_id)
    if view is None:
        raise ApiError(404, "order_not_found", f"no order {row.order_id}")
    locations = await request.app[STORE].config.locations()
    return render(
        request,
        "order.html",
        {
            "order": view,
            "row": row,
            "work_orders": _order_work_orders(view),
            "temporal_link": (
                _temporal_link(request, row.workflow_id or order_workflow_id(row.order_id))
                if principal.role in ("ops", "admin")
                else ""
            ),
            "can_operate": principal.role in ("ops", "admin"),
            "can_cancel": principal.role in ("ops", "admin", "webshop"),
            "can_open_documents": principal.role in ("ops", "admin"),
            "locations": [loc["location_id"] for loc in locations],
            "page": "order",
        },
    )


@routes.get("/ui/documents/{document_id}")
@page("ops", "location")
async def document(request: web.Request, principal: Principal) -> web.StreamResponse:
    document_id = request.match_info["document_id"]
    found = await request.app[STORE].orders.document(document_id)
    if found is None or (principal.role == "location" and principal.identity != found[1]):
        raise ApiError(404, "document_not_found", f"no document {document_id}")
    return web.Response(
        body=found[2],
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{document_id}.pdf"'},
    )


# -- work orders --------------------------------------------------------------------------


# the step a work order takes next, by its status: a work order shows a button for a step
# only when it takes that step (api/fulfillment.py allowed_steps) and is in this status
STEP_FROM = {
    "pick": ("OPEN",),
    "ship": ("PICKED",),
    "receive": ("AWAITING_TRANSFER",),
    "deliver": ("SHIPPED", "READY_FOR_PICKUP"),
}
# the kind filter of the work-order page: a pickup store's hand-overs are PACKAGING
KIND_TITLES = {
    "PACKAGING": "Packaging and pickup hand-overs",
    "TRANSFER": "Transfers to pickup stores",
    "RETURN_TO_VENDOR": "Returns to the vendor",
}


def _handover(record: ShipmentRecord) -> bool:
    return record.kind != "TRANSFER" and record.shipment_key.endswith(HANDOVER_SUFFIX)


def _work_order_card(record: ShipmentRecord) -> dict[str, Any]:
    """What the page shows of one PACKAGING or TRANSFER work order beyond its record: its
    label, the steps it takes and the one it can take now."""
    steps = allowed_steps(record)
    handover = _handover(record)
    if record.kind == "TRANSFER":
        label = "Transfer"
    elif handover:
        label = "Pickup hand-over"
    else:
        label = "Packaging"
    step_titles = {
        "pick": "pick",
        "ship": "ship to the store" if record.kind == "TRANSFER" else "ship",
        "receive": "receive the transfer",
        "deliver": "hand over" if handover else "deliver",
    }
    return {
        "label": label,
        "handover": handover,
        "steps": [step_titles[s] for s in steps],
        "next": [s for s in steps if record.status in STEP_FROM[s]],
    }


@routes.get("/ui/work-orders")
@page("location", "ops")
async def work_orders(request: web.Request, principal: Principal) -> web.StreamResponse:
    store = request.app[STORE]
    locations = [loc["location_id"] for loc in await store.config.locations()]
    if principal.role == "location":
        location = principal.identity
    else:
        location = query.identifier(request, "location") or (locations[0] if locations else "")
    kind = query.optional_choice(request, "kind", WORK_ORDER_KINDS)
    offset = query.integer(request, "offset", default=0, minimum=0, maximum=query.MAX_OFFSET)
    records: list[ShipmentRecord] = []
    total = 0
    if kind != "RETURN_TO_VENDOR":
        records, total = await store.fulfillment.work_orders(
            location,
            statuses=list(OPEN_WORK_ORDERS),
            cancelled_since=utcnow() - timedelta(days=CANCELLED_DAYS),
            limit=PAGE_SIZE,
            offset=offset,
            kind=kind,
        )
    returns: list[Any] = []
    returns_total = 0
    if kind is None:
        returns, returns_total = await store.returns.search(
            location_id=location, status="OPEN", limit=PAGE_SIZE
        )
        returns = [r for r in returns if r.type != "CANCEL"]
    # returned units this location sends back to the vendor (kind RETURN_TO_VENDOR)
    vendor: list[Any] = []
    vendor_total = 0
    if kind in (None, "RETURN_TO_VENDOR"):
        vendor, vendor_total = await store.returns.vendor_work_orders.of_location(
            location, ["OPEN"], PAGE_SIZE, 0
        )
    cards = {record.shipment_key: _work_order_card(record) for record in records}
    # a hand-over's transfer: where the units come from, and how far they have got
    transfers: dict[str, ShipmentRecord] = {}
    for record in records:
        if cards[record.shipment_key]["handover"]:
            found = await store.fulfillment.shipment(record.shipment_key[: -len(HANDOVER_SUFFIX)])
            if found is not None:
                transfers[record.shipment_key] = found
                if found.status != "SHIPPED":
                    # received once shipped: until then the store waits for it
                    next_steps = cards[record.shipment_key]["next"]
                    cards[record.shipment_key]["next"] = [s for s in next_steps if s != "receive"]
    documents: dict[str, list[dict[str, Any]]] = {}
    skus: dict[tuple[str, str], str] = {}
    planned: dict[tuple[str, str], str] = {}
    order_ids = dict.fromkeys([*(r.order_id for r in records), *(r.order_id for r in returns)])
    for order_id in order_ids:
        view = await _view(request, order_id)
        if view is None:
            continue
        documents[order_id] = [d for d in view["documents"] if d["location_id"] == location]
        for line in view["lines"]:
            skus[(order_id, line["line_id"])] = line["sku"]
            if line.get("planned_ship_date"):
                planned[(order_id, line["line_id"])] = line["planned_ship_date"]
    # due: the earliest planned ship date of the work order's lines
    due = {
        record.shipment_key: min(
            (
                planned[(record.order_id, ln.line_id)]
                for ln in record.lines
                if (record.order_id, ln.line_id) in planned
            ),
            default="",
        )
        for record in records
    }
    filters = {"location": location} if principal.role != "location" else {}
    if kind:
        filters["kind"] = kind

    def page_link(at: int) -> str:
        return "?" + urlencode({**filters, "offset": at})

    return render(
        request,
        "work_orders.html",
        {
            "location": location,
            "locations": locations if principal.role != "location" else [],
            "kind": kind or "",
            "kinds": KIND_TITLES,
            "records": records,
            "cards": cards,
            "transfers": transfers,
            "total": total,
            "offset": offset,
            "documents": documents,
            "skus": skus,
            "due": due,
            "returns": returns,
            "returns_total": returns_total,
            "vendor": vendor,
            "vendor_total": vendor_total,
            "conditions": RETURN_CONDITIONS,
            "previous": page_link(max(offset - PAGE_SIZE, 0)) if offset else "",
            "next_page": page_link(offset + PAGE_SIZE) if offset + PAGE_SIZE < total else "",
            "page": "work_orders",
        },
    )


@routes.post("/ui/shipments/{shipment_key}/pick")
@page("location", "ops")
async def pick(request: web.Request, principal: Principal) -> web.StreamResponse:
    key = request.match_info["shipment_key"]
    record = await request.app[STORE].fulfillment.shipment(key)
    if record is None:
        raise ApiError(404, "shipment_not_found", f"no shipment {key}")
    form = _form(request)
    lines: list[dict[str, Any]] = [
        {
            "line_id": line.line_id,
            "picked_quantity": _quantity(
                str(form.get(f"picked_{line.line_id}", "")), f"picked_{line.line_id}"
            ),
        }
        for line in record.lines
        if line.status == "OPEN" and f"picked_{line.line_id}" in form
    ]
    await send_report(request, key, "report_pick", parse(PickRequest, {"lines": lines}))
    short = [
        ln["line_id"]
        for ln in lines
        for rec in record.lines
        if rec.line_id == ln["line_id"] and ln["picked_quantity"] < rec.released_quantity
    ]
    text = f"{record.work_order_id} picked" + (
        f"; short on line {', '.join(short)} (re-routed)" if short else ""
    )
    raise redirect(request, _back(request, principal), "ok", text)


@routes.post("/ui/shipments/{shipment_key}/ship")
@page("location", "ops")
async def ship(request: web.Request, principal: Principal) -> web.StreamResponse:
    key = request.match_info["shipment_key"]
    report = parse(
        ShipReport,
        {
            "carrier": _text(request, "carrier", 64),
            "tracking_number": _text(request, "tracking_number", 128),
        },
    )
    await send_report(request, key, "report_ship", report)
    raise redirect(request, _back(request, principal), "ok", f"{key} shipped")


@routes.post("/ui/shipments/{shipment_key}/deliver")
@page("location", "ops")
async def deliver(request: web.Request, principal: Principal) -> web.StreamResponse:
    key = request.match_info["shipment_key"]
    await send_report(request, key, "report_delivery", DeliverReport())
    done = "handed over to the customer" if key.endswith(HANDOVER_SUFFIX) else "delivered"
    raise redirect(request, _back(request, principal), "ok", f"{key} {done}")


@routes.post("/ui/shipments/{shipment_key}/receive")
@page("location", "ops")
async def receive_transfer(request: web.Request, principal: Principal) -> web.StreamResponse:
    """A pickup store has the units of a transfer (its hand-over work order): they wait for
    the customer (READY_FOR_PICKUP). A work order that takes no receipt is 409 wrong_step."""
    key = request.match_info["shipment_key"]
    await send_report(request, key, "report_receipt", ReceiveTransferReport())
    raise redirect(request, _back(request, principal), "ok", f"{key} received: ready for pickup")


@routes.post("/ui/work-orders/{work_order_id}/ship")
@page("location", "ops")
async def ship_to_vendor(request: web.Request, principal: Principal) -> web.StreamResponse:
    row = await work_order_api.visible_work_order(request)
    if row.kind != "RETURN_TO_VENDOR":
        raise ApiError(404, "unknown_step", f"{row.work_order_id} ships from its shipment's form")
    report = parse(
        ShipReport,
        {
            "carrier": _text(request, "carrier", 64),
            "tracking_number": _text(request, "tracking_number", 128),
        },
    )
    shipped = await work_order_api.ship_to_vendor(request, row, report)
    raise redirect(
        request,
        _back(request, principal),
        "ok",
        f"{shipped.work_order_id} shipped to the vendor ({shipped.carrier} "
        f"{shipped.tracking_number})",
    )


@routes.post("/ui/returns/{return_id}/receive")
@page("location", "ops")
async def receive_parcel(request: web.Request, principal: Principal) -> web.StreamResponse:
    row = await visible_return(request, principal)
    form = _form(request)
    lines = [
        {
            "line_id": str(line["line_id"]),
            "quantity": _quantity(
                str(form.get(f"received_{line['line_id']}", "")), f"received_{line['line_id']}"
            ),
            "condition": str(form.get(f"condition_{line['line_id']}", "new")),
        }
        for line in row.lines
        if f"received_{line['line_id']}" in form
    ]
    outcome = await receive(request, row, parse(ReceiveRequest, {"lines": lines}))
    units = sum(line.quantity for line in outcome.received)
    raise redirect(
        request,
        _back(request, principal),
        "ok",
        f"{row.return_id} received ({units} unit{'' if units == 1 else 's'}, "
        f"{outcome.status.lower()})",
    )


# -- inventory ----------------------------------------------------------------------------


@routes.get("/ui/inventory")
@page("ops")
async def inventory(request: web.Request, principal: Principal) -> web.StreamResponse:
    store = request.app[STORE]
    sku = query.identifier(request, "sku")
    location = query.identifier(request, "location")
    offset = query.integer(request, "offset", default=0, minimum=0, maximum=query.MAX_OFFSET)
    rows = await BackOfficeQueries(store.db).stock_page(
        sku_prefix=sku, location_id=location, limit=PAGE_SIZE + 1, offset=offset
    )
    locations = {
        loc["location_id"]: found
        for loc in await store.config.locations()
        if (found := _valid(LocationConfig, loc)) is not None
    }
    # a stored configuration that no longer validates is left out, not a 500 (the
    # order that meets it is held and says why)
    channels = [
        channel
        for c in await store.config.channels()
        if (channel := _valid(SalesChannelConfig, c)) is not None
    ]
    stock = []
    for sku_id, loc_id, on_hand, reserved in rows[:PAGE_SIZE]:
        found = locations.get(loc_id)
        per_channel: dict[str, tuple[int | None, int]] = {}
        for channel in channels:
            if found is None or not serves(found, channel):
                per_channel[channel.channel_id] = (None, 0)
            else:
                per_channel[channel.channel_id] = (
                    channel_atp(found, channel, on_hand, reserved),
                    safety_buffer(found, channel),
                )
        stock.append(
            {
                "sku": sku_id,
                "location_id": loc_id,
                "on_hand": on_hand,
                "reserved": reserved,
                "atp": max(on_hand - reserved, 0),
                "channels": per_channel,
            }
        )
    filters = {k: v for k, v in (("sku", sku), ("location", location)) if v}
    return render(
        request,
        "inventory.html",
        {
            "stock": stock,
            "channels": [c.channel_id for c in channels],
            "locations": list(locations),
            "filters": filters,
            "previous": "?" + urlencode({**filters, "offset": max(offset - PAGE_SIZE, 0)})
            if offset
            else "",
            "next_page": "?" + urlencode({**filters, "offset": offset + PAGE_SIZE})
            if len(rows) > PAGE_SIZE
            else "",
            "page": "inventory",
        },
    )


# -- reports ------------------------------------------------------------------------------

CHART_WIDTH = 640
BAR_HEIGHT = 22


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _hbars(items: list[tuple[str, int]]) -> dict[str, Any]:
    """A horizontal bar chart's geometry: label column, bars scaled to the largest."""
    top = max((v for _, v in items), default=0) or 1
    label_w, plot_w = 170, CHART_WIDTH - 230
    bars = [
        {
            "label": label,
            "value": value,
            "y": i * (BAR_HEIGHT + 6),
            "w": max(round(plot_w * value / top), 1 if value else 0),
            "x": label_w,
        }
        for i, (label, value) in enumerate(items)
    ]
    return {
        "bars": bars,
        "height": max(len(items) * (BAR_HEIGHT + 6), BAR_HEIGHT),
        "bar": BAR_HEIGHT,
    }


def _columns(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Orders per day as columns (cancelled ones darker at the foot of each)."""
    height, foot = 180, 20
    top = max((d["orders"] for d in days), default=0) or 1
    step = CHART_WIDTH / max(len(days), 1)
    cols = []
    for i, d in enumerate(days):
        h = round((height - foot) * d["orders"] / top)
        c = round((height - foot) * d["cancelled"] / top)
        cols.append(
            {
                "x": round(i * step + 1, 1),
                "w": max(round(step - 2, 1), 1),
                "y": height - foot - h,
                "h": h,
                "cy": height - foot - c,
                "ch": c,
                "date": d["date"],
                "orders": d["orders"],
                "cancelled": d["cancelled"],
                "label": d["date"][5:] if i % max(len(days) // 8, 1) == 0 else "",
            }
        )
    return {"cols": cols, "height": height, "base": height - foot, "top": top}


@routes.get("/ui/reports")
@page("ops")
async def reports_page(request: web.Request, principal: Principal) -> web.StreamResponse:
    summary = await report_api.summary_of(request)
    data = report_api.summary_json(summary)
    channels = [c["channel_id"] for c in await request.app[STORE].config.channels()]
    figures = [
        ("Orders", str(data["orders"])),
        ("Cancel rate", _rate(data["cancel_rate"])),
        ("Backorder rate", _rate(data["backorder_rate"])),
        (
            "Approval lead time p50 / p90",
            f"{_duration(data['approval_lead_time']['p50'])} / "
            f"{_duration(data['approval_lead_time']['p90'])}",
        ),
        (
            "Order to ship p50 / p90",
            f"{_duration(data['order_to_ship']['p50'])} / "
            f"{_duration(data['order_to_ship']['p90'])}",
        ),
        (
            "Order to delivery p50 / p90",
            f"{_duration(data['order_to_delivery']['p50'])} / "
            f"{_duration(data['order_to_delivery']['p90'])}",
        ),
    ]
    params = {"from": data["from"], "to": data["to"]}
    if data["sales_channel"]:
        params["sales_channel"] = data["sales_channel"]
    return render(
        request,
        "reports.html",
        {
            "data": data,
            "figures": figures,
            "channels": channels,
            "per_day": _columns(data["per_day"]),
            "by_status": _hbars(sorted(data["by_status"].items(), key=lambda kv: -kv[1])),
            "backlog": _hbars(sorted(data["backlog_by_location"].items())),
            "csv_link": "/ui/reports.csv?" + urlencode(params),
            "page": "reports",
        },
    )


@routes.get("/ui/reports.csv")
@page("ops")
async def reports_csv(request: web.Request, principal: Principal) -> web.StreamResponse:
    data = report_api.summary_json(await report_api.summary_of(request))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "name", "value"])
    writer.writerow(["period", "from", data["from"]])
    writer.writerow(["period", "to", data["to"]])
    writer.writerow(["period", "sales_channel", data["sales_channel"] or ""])
    writer.writerow(["orders", "total", data["orders"]])
    for channel, statuses in sorted(data["by_channel"].items()):
        for status, count in sorted(statuses.items()):
            writer.writerow(["orders_by_channel_status", f"{channel}/{status}", count])
    for day in data["per_day"]:
        writer.writerow(["orders_per_day", day["date"], day["orders"]])
        writer.writerow(["cancelled_per_day", day["date"], day["cancelled"]])
    writer.writerow(
        ["rates", "cancel_rate", data["cancel_rate"] if data["cancel_rate"] is not None else ""]
    )
    writer.writerow(
        [
            "rates",
            "backorder_rate",
            data["backorder_rate"] if data["backorder_rate"] is not None else "",
        ]
    )
    for name in ("approval_lead_time", "order_to_ship", "order_to_delivery"):
        for part in ("count", "p50", "p90"):
            value = data[name][part]
            writer.writerow([f"{name}_seconds", part, "" if value is None else value])
    for location, units in sorted(data["backlog_by_location"].items()):
        writer.writerow(["backlog_units", location, units])
    filename = f"oms-report-{data['from']}-{data['to']}.csv"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


_Config = TypeVar("_Config", bound=BaseModel)


def _valid(model: type[_Config], stored: Any) -> _Config | None:
    try:
        return model.model_validate(stored)
    except ValidationError:
        log.warning("stored %s does not validate: left out of the page", model.__name__)
        return None
