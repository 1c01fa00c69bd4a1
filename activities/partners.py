"""Calls to partners' HTTP endpoints (locations' webhooks, web shops' callbacks, approval
systems) and what their answers mean for the order.

Every message is signed for its receiver (oms/webhooks.py: `X-OMS-Signature:
t=<unix seconds>,v1=<hmac of "<t>.<body>">`, with the receiver's own secret, and during a
rotation's overlap its previous one too; receivers set up before secrets per receiver
get the shared OMS_WEBHOOK_SECRET) and goes only to a public host, or one the
allow-list permits (oms/targets.py; checked on every address a name resolves to, right
before connecting, and redirects are not followed).

2xx is done. A 4xx other than 408/425/429 means the partner refuses this message, and no
retry changes that: a non-retryable `PartnerRejected` (the order's stage stops, shows
it and waits for an operator). A target that is not permitted is a non-retryable
`TargetForbidden`. Anything else (5xx, 3xx, 408/425/429, timeouts, refused connections,
DNS failures) is technical: `PartnerUnavailable`, retried with backoff."""

from __future__ import annotations

import json
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from temporalio.exceptions import ApplicationError

from activities import metrics
from oms import tracing, webhooks
from oms.targets import AllowList, refused_addresses, refused_url
from store import Store
from store.receivers import callback_receiver

RETRYABLE_4XX = (408, 425, 429)
TIMEOUT = aiohttp.ClientTimeout(total=10)
EXCERPT = 200


class TargetRefused(OSError):
    """A name resolved to an address messages may not go to (raised while connecting)."""


class _GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses the lot if any address is not permitted: the
    connection uses exactly the addresses checked (no second lookup to rebind)."""

    def __init__(self, allow: AllowList) -> None:
        self.allow = allow
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        why = refused_addresses(host, [r["host"] for r in results], self.allow)
        if why is not None:
            raise TargetRefused(why)
        return results

    async def close(self) -> None:
        await self.inner.close()


def forbidden(who: str, why: str) -> ApplicationError:
    return ApplicationError(f"{who}: {why}", type="TargetForbidden", non_retryable=True)


def _refusal(err: BaseException) -> TargetRefused | None:
    seen: BaseException | None = err
    for _ in range(10):  # the refusal is wrapped by aiohttp once or twice
        if seen is None:
            return None
        if isinstance(seen, TargetRefused):
            return seen
        inner = getattr(seen, "os_error", None)
        if isinstance(inner, TargetRefused):
            return inner
        seen = seen.__cause__ or seen.__context__
    return None


async def post(
    who: str, url: str, body: bytes, headers: dict[str, str], *, allow: AllowList
) -> None:
    """POST `body` to `url` if `allow` lets it go there; raises the classified failure,
    naming `who`."""
    why = refused_url(url, allow)
    if why is not None:
        raise forbidden(who, why)
    connector = aiohttp.TCPConnector(resolver=_GuardedResolver(allow), use_dns_cache=False)
    try:
        async with aiohttp.ClientSession(
            timeout=TIMEOUT, connector=connector, trace_configs=tracing.client_trace_configs(who)
        ) as http:
            async with http.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                if resp.status < 300:
                    return
                excerpt = (await resp.text(errors="replace"))[:EXCERPT]
                problem = f"{who} answered {resp.status} {resp.reason}: {excerpt}".rstrip(": ")
                if 400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX:
                    raise ApplicationError(problem, type="PartnerRejected", non_retryable=True)
                raise ApplicationError(problem, type="PartnerUnavailable")
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        refused = _refusal(err)
        if refused is not None:
            raise forbidden(who, str(refused)) from err
        raise ApplicationError(
            f"{who} unreachable at {url}: {type(err).__name__} {err}".rstrip(),
            type="PartnerUnavailable",
        ) from err


class Sender:
    """Signs a message for its receiver and posts it (see the module's docstring)."""

    def __init__(self, store: Store, fallback_secret: str, allow: AllowList) -> None:
        self.store = store
        self.fallback_secret = fallback_secret
        self.allow = allow

    async def send(
        self, who: str, receiver: str, url: str, body: bytes, idempotency_key: str
    ) -> None:
        keys = await self.store.config.secrets.signing_secrets(receiver, self.fallback_secret)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            webhooks.SIGNATURE_HEADER: webhooks.sign(keys, body),
        }
        try:
            await post(who, url, body, headers, allow=self.allow)
        except ApplicationError as err:
            metrics.count_webhook_failure(receiver, err)
            raise

    async def to_channel(self, channel_id: str, message: dict[str, Any], key: str) -> bool:
        """A message to a sales channel's callback (order responses, refund notices,
        tracking updates); False when the channel has no callback."""
        channel = await self.store.config.channel(channel_id) or {}
        callback = channel.get("callback_url")
        if not callback:
            return False
        await self.send(
            f"sales channel {channel_id} callback",
            callback_receiver(channel_id),
            str(callback),
            json.dumps(message).encode(),
            key,
        )
        return True
