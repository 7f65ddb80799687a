"""CloudWatch Logs for the local cloud: the store, the writer, the API route and EMF, started and stopped together."""

from __future__ import annotations

import logging
from typing import Any

from lambdalab.clock import Clock
from lambdalab.logs.api import LogsApi, Proxy
from lambdalab.logs.emf import EmfPublisher
from lambdalab.logs.function import FunctionLogs
from lambdalab.logs.store import LogStore
from lambdalab.logs.writer import LogWriter

LOG = logging.getLogger(__name__)


class LocalLogs:
    """`writer.put(...)` for API Gateway, `functions.environment(...)` for Lambda, `api.handle` for the gateway."""

    def __init__(
        self, region: str, account_id: str, *, epoch: Clock, fallback: Proxy | None = None, cloudwatch: Any = None
    ) -> None:
        self.store = LogStore(region, account_id, epoch=epoch)
        self.emf = EmfPublisher(cloudwatch) if cloudwatch is not None else None
        self.writer = LogWriter(self.store, emf_listener=self.emf)
        self.api = LogsApi(self.store, fallback, epoch=epoch)
        self.functions = FunctionLogs(self.writer, region=region, account_id=account_id, epoch=epoch)

    def start(self) -> None:
        self.writer.start()
        if self.emf is not None:
            self.emf.start()

    def stop(self) -> None:
        self.writer.close()
        if self.emf is not None:
            self.emf.stop()
        self.api.close()
