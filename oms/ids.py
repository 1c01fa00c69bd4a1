"""Order ids: unique per sales channel.

A web shop names its orders with its own ids (`channel_order_id`); two channels may both
have an order "1001". The OMS's id of an order (`order_id` in the API, the store's key,
the workflow input) is therefore `{channel_order_id}@{sales_channel}`: "@" is never part
of an identifier, so the two parts are always recovered, and the order workflow's id
(`order-{order_id}`) names the channel.

Orders created before ids were scoped by channel keep their plain id (`1001`) as their
OMS id; a web shop still reaches them by it.
"""

from __future__ import annotations

SEPARATOR = "@"
# the longest OMS order id: a 64-character channel order id, "@", a 64-character channel
MAX_ORDER_ID = 129


def order_key(channel_order_id: str, sales_channel: str) -> str:
    """The OMS order id of a channel's order."""
    return f"{channel_order_id}{SEPARATOR}{sales_channel}"


def channel_order_id(order_id: str) -> str:
    """The id the channel gave an order, from its OMS id (a plain, older id is both)."""
    head, sep, _channel = order_id.rpartition(SEPARATOR)
    return head if sep else order_id


def is_scoped(order_id: str) -> bool:
    """Whether an order id names its channel (orders from before it did not)."""
    return SEPARATOR in order_id
