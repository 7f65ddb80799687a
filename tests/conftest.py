"""Shared fixtures."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer


@pytest.fixture
async def aiohttp_server_factory() -> AsyncIterator[Callable[[web.Application], Awaitable[TestServer]]]:
    """Start aiohttp apps on free 127.0.0.1 ports; all are closed after the test."""
    servers: list[TestServer] = []

    async def start(app: web.Application) -> TestServer:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After a module's last test: one collection, then freeze what survives (imported modules, moto's backends,
    session fixtures) out of the collector's later passes. The session keeps ~1M objects alive; without this every
    full collection walked them all again, about a tenth of the unit tests' time."""
    yield
    if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", None):
        gc.collect()
        gc.freeze()
