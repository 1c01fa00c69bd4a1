"""Typed keys for what the app holds."""

from __future__ import annotations

from aiohttp import web
from temporalio.client import Client

from store import Store
from store.direct import DirectReads
from workers.settings import Settings

STORE = web.AppKey("store", Store)
TEMPORAL = web.AppKey("temporal", Client)
SETTINGS = web.AppKey("settings", Settings)
# the key check and availability reads on PostgreSQL (store/direct.py); absent on SQLite
DIRECT_READS = web.AppKey("direct_reads", DirectReads)
