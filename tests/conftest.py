"""Shared fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

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
