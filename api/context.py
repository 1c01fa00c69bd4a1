"""Typed keys for what the app holds."""

from __future__ import annotations

from aiohttp import web
from temporalio.client import Client

from store import Store
from workers.settings import Settings

STORE = web.AppKey("store", Store)
TEMPORAL = web.AppKey("temporal", Client)
SETTINGS = web.AppKey("settings", Settings)
