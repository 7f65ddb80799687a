"""A LogsApi behind a real HTTP server, reached with boto3 as users reach the local cloud."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from lambdalab.awsclients import local_client
from lambdalab.clock import Clocks
from lambdalab.logs.local import LocalLogs


class Served:
    def __init__(self) -> None:
        # A virtual epoch from the wall time of the start: the tests' timestamps (now_ms) are inside the API's window.
        self.clock, clocks = Clocks.virtual(start_epoch=time.time())
        self.logs = LocalLogs("us-east-1", "123456789012", epoch=clocks.epoch)
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.logs.api.handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server: Any = site._server
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            self._ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def start(self) -> None:
        self.logs.start()
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        async def cleanup() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.logs.stop()

    def client(self) -> Any:
        return local_client("logs", self.url)


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def logs_client(served: Served) -> Any:
    return served.client()
