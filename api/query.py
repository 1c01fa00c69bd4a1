"""Query parameters, read strictly: a malformed or out-of-range value is a 400
`invalid_query` naming the parameter, never a clamp, a guess or a database error.

Each reader also gives the parameter's OpenAPI description (api/openapi.py lists them
per route), so the document and the checks cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from api.errors import ApiError

# an offset past this is past any list this API keeps (and well inside 64 bits)
MAX_OFFSET = 1_000_000_000
# no query value or path parameter of this API is longer (aiohttp refuses a request line
# over 8190 bytes anyway); the parameters' own checks are stricter
MAX_QUERY_VALUE = 8000
IDENTIFIER = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,12}")


def invalid(name: str, message: str, kind: str = "invalid_query") -> ApiError:
    return ApiError(
        400,
        "invalid_query",
        f"query parameter {name}: {message}",
        [{"field": name, "message": message, "type": kind}],
    )


def _one(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise invalid(name, "given more than once", "repeated")
    return values[0]


def integer(request: web.Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """?name=N: ASCII digits only (no sign, spaces, underscores or other scripts' digits)
    within [minimum, maximum]."""
    raw = _one(request, name)
    if raw is None:
        return default
    if _DIGITS.fullmatch(raw) is None:
        raise invalid(name, f"an integer from {minimum} to {maximum}", "int_parsing")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise invalid(name, f"an integer from {minimum} to {maximum}", "out_of_range")
    return value


def choice(request: web.Request, name: str, choices: Sequence[str], default: str) -> str:
    raw = _one(request, name)
    if raw is None:
        return default
    if raw not in choices:
        raise invalid(name, f"one of {', '.join(choices)}", "enum")
    return raw


def optional_choice(request: web.Request, name: str, choices: Sequence[str]) -> str | None:
    raw = _one(request, name)
    if raw is None:
        return None
    if raw not in choices:
        raise invalid(name, f"one of {', '.join(choices)}", "enum")
    return raw


def identifier(request: web.Request, name: str) -> str | None:
    """?name=ID: an identifier as the API stores them (1-64 of A-Z a-z 0-9 . _ : -)."""
    raw = _one(request, name)
    if raw is None:
        return None
    if IDENTIFIER.fullmatch(raw) is None:
        raise invalid(name, "1 to 64 of the characters A-Z a-z 0-9 . _ : -", "identifier")
    return raw


def text(request: web.Request, name: str, *, max_length: int = 200) -> str | None:
    """?name=TEXT: printable text of at most max_length characters."""
    raw = _one(request, name)
    if raw is None:
        return None
    if not 0 < len(raw) <= max_length or not raw.isprintable():
        raise invalid(name, f"1 to {max_length} printable characters", "string")
    return raw


def check_values(request: web.Request) -> None:
    """Every query value and path parameter is text a database can compare: no NUL or
    other control characters, no unpaired surrogates, not absurdly long (400)."""
    for name, value in request.query.items():
        if len(value) > MAX_QUERY_VALUE or not _plain(value) or not _plain(name):
            raise invalid(
                name.encode("utf-8", "backslashreplace").decode()[:100],
                f"at most {MAX_QUERY_VALUE} printable characters",
                "string",
            )
    for name, value in request.match_info.items():
        if len(value) > MAX_QUERY_VALUE or not _plain(value):
            raise ApiError(
                400,
                "invalid_path",
                f"path parameter {name}: at most {MAX_QUERY_VALUE} printable characters",
                [{"field": name, "message": "not printable text", "type": "string"}],
            )


def _plain(value: str) -> bool:
    if value.isascii():
        return value.isprintable()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value.isprintable()


# OpenAPI descriptions of the parameters above ------------------------------------------


def int_parameter(name: str, default: int, minimum: int, maximum: int, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": what,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default},
    }


def enum_parameter(
    name: str, choices: Sequence[str], what: str, default: str | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": list(choices)}
    if default is not None:
        schema["default"] = default
    return {"name": name, "in": "query", "required": False, "description": what, "schema": schema}


def identifier_parameter(name: str, what: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": what,
        "schema": {"type": "string", "pattern": f"^{IDENTIFIER.pattern}$"},
    }


def text_parameter(name: str, what: str, max_length: int = 200) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": what,
        "schema": {"type": "string", "minLength": 1, "maxLength": max_length},
    }
