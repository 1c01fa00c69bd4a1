"""Calls to partners' HTTP endpoints (locations' webhooks, web shops' callbacks) and
what their answers mean for the order.

2xx is done. A 4xx other than 408/425/429 means the partner refuses this message, and no
retry changes that: a non-retryable `PartnerRejected` (the order's stage stops, shows
it and waits for an operator). Anything else (5xx, 408/425/429, timeouts, refused
connections, DNS failures) is technical: `PartnerUnavailable`, retried with backoff."""

from __future__ import annotations

import aiohttp
from temporalio.exceptions import ApplicationError

RETRYABLE_4XX = (408, 425, 429)
TIMEOUT = aiohttp.ClientTimeout(total=10)
EXCERPT = 200


async def post(who: str, url: str, body: bytes, headers: dict[str, str]) -> None:
    """POST `body` to `url`; raises the classified failure, naming `who`."""
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.post(url, data=body, headers=headers) as resp:
                if resp.status < 300:
                    return
                excerpt = (await resp.text(errors="replace"))[:EXCERPT]
                problem = f"{who} answered {resp.status} {resp.reason}: {excerpt}".rstrip(": ")
                if 400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX:
                    raise ApplicationError(problem, type="PartnerRejected", non_retryable=True)
                raise ApplicationError(problem, type="PartnerUnavailable")
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ApplicationError(
            f"{who} unreachable at {url}: {type(err).__name__} {err}".rstrip(),
            type="PartnerUnavailable",
        ) from err
