"""The Oms* search attributes the order workflow writes (workflows/search.py).

A workflow that upserts a search attribute its namespace does not know fails its
workflow task, so the worker makes sure they exist before it polls: it registers the
missing ones where it may (the dev server, a cluster that lets it), and otherwise waits,
logging the command an operator runs to register them (README, "Production")."""

from __future__ import annotations

import asyncio
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from workers.client import with_backoff
from workers.settings import Settings
from workflows import search

log = logging.getLogger("oms.worker")

CLI_TYPES = {
    "KEYWORD": "Keyword",
    "DOUBLE": "Double",
    "KEYWORD_LIST": "KeywordList",
    "BOOL": "Bool",
}


class MissingSearchAttributes(RuntimeError):
    pass


def wanted() -> dict[str, int]:
    return {key.name: int(key.indexed_value_type) for key in search.ALL}


def create_commands(names: list[str], namespace: str) -> str:
    types = {key.name: CLI_TYPES[key.indexed_value_type.name] for key in search.ALL}
    return "; ".join(
        f"temporal operator search-attribute create --namespace {namespace} "
        f"--name {name} --type {types[name]}"
        for name in names
    )


async def missing(client: Client, namespace: str) -> list[str]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    known = set(listed.custom_attributes) | set(listed.system_attributes)
    return sorted(name for name in wanted() if name not in known)


async def ensure_search_attributes(
    client: Client, settings: Settings, stop: asyncio.Event | None = None
) -> None:
    namespace = settings.temporal_namespace

    async def attempt() -> None:
        absent = await missing(client, namespace)
        if not absent:
            return
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={
                        name: IndexedValueType.ValueType(wanted()[name]) for name in absent
                    },
                )
            )
            log.info("registered search attributes %s in %s", ", ".join(absent), namespace)
        except Exception as err:
            raise MissingSearchAttributes(
                f"search attributes {', '.join(absent)} are not registered in namespace "
                f"{namespace} and this worker may not register them ({err}); run: "
                + create_commands(absent, namespace)
            ) from err
        if await missing(client, namespace):
            raise MissingSearchAttributes("search attributes registered but not listed yet")

    await with_backoff(
        "the Oms* search attributes",
        attempt,
        max_delay=settings.connect_backoff_max_seconds,
        stop=stop,
    )
