"""How the event sources reach functions and targets: three small protocols, and their adapter to the Lambda service.

The sources never call the Lambda service directly. Asynchronous sources (SNS, EventBridge, Scheduler, S3) use
`AsyncInvoker.invoke_async`, which must put the event in the Lambda service's async queue (AWS's retries, maximum
event age, destinations, DLQ); stream mappings use `SyncInvoker.invoke_sync` (RequestResponse), which returns the
function's answer or raises `InvokeRefused` (throttled or rejected before the function ran). `Sender.send` delivers a
message to an SQS queue, SNS topic, event bus or (asynchronously) a Lambda function: destinations and DLQs.
`LambdaServiceInvoker` adapts `LambdaService`; lambdalab.server wires it in, so the service can change behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from lambdalab.awslambda.core.outcome import InvocationResult, Outcome, Rejected

LOG = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SyncResult:
    """What a synchronous invoke returned: the payload, and `function_error` ("Unhandled") when the function failed."""

    payload: bytes
    function_error: str | None = None
    executed_version: str | None = None
    request_id: str = ""


class InvokeRefused(Exception):
    """Lambda refused the invoke before the function ran: throttled (429) or rejected (missing function, 5xx, ...)."""

    def __init__(self, code: str, message: str, *, status: int = 500, throttled: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.throttled = throttled


class AsyncInvoker(Protocol):
    async def invoke_async(self, function_arn: str, payload: bytes, *, trace_header: str | None = None) -> None:
        """Queue an asynchronous invocation (202); raise InvokeRefused when Lambda rejects the request itself."""
        ...


class SyncInvoker(Protocol):
    async def invoke_sync(self, function_arn: str, payload: bytes) -> SyncResult:
        """A RequestResponse invocation; raise InvokeRefused when it never reached the function."""
        ...


class Sender(Protocol):
    async def send(self, target_arn: str, body: bytes, attributes: dict[str, str]) -> None:
        """Deliver `body` to an SQS queue, SNS topic, event bus or function (asynchronously); raise on failure."""
        ...


class LambdaFunctions(Protocol):
    """What the adapter needs of lambdalab.awslambda.service.service.LambdaService: its two typed internal invokes."""

    def enqueue_internal(
        self, function_arn: str, payload: bytes, *, trace_header: str | None = None
    ) -> str | Rejected: ...

    async def invoke_internal(self, function_arn: str, payload: bytes) -> InvocationResult | Rejected: ...


class LambdaServiceInvoker:
    """Both invoker protocols over the Lambda service's typed internal invokes: asynchronous ones put the event in its
    async queue (`enqueue_internal`), synchronous ones run it (`invoke_internal`); a refusal is a value there, an
    InvokeRefused here."""

    def __init__(self, service: LambdaFunctions) -> None:
        self._service = service

    async def invoke_async(self, function_arn: str, payload: bytes, *, trace_header: str | None = None) -> None:
        queued = self._service.enqueue_internal(function_arn, payload, trace_header=trace_header)
        if isinstance(queued, Rejected):
            raise InvokeRefused(queued.code, queued.message, status=queued.status)

    async def invoke_sync(self, function_arn: str, payload: bytes) -> SyncResult:
        """Through the service's typed `invoke_internal`: a refusal is a value there, an InvokeRefused here."""
        run = await self._service.invoke_internal(function_arn, payload)
        if isinstance(run, Rejected):
            raise InvokeRefused(run.code, run.message, status=run.status)
        if run.throttle is not None:
            raise InvokeRefused("TooManyRequestsException", "Rate Exceeded.", status=429, throttled=True)
        if run.outcome is Outcome.LOCAL_ERROR:
            message = run.record.error_message or "lambdalab: this machine could not run the call"
            raise InvokeRefused("LambdalabLocalCapacityException", message, status=503)
        function_error = None if run.outcome is Outcome.SUCCESS else "Unhandled"
        return SyncResult(run.body(), function_error, run.record.version, run.record.request_id)


class LoopBridge:
    """Run coroutines on the local cloud's event loop from other threads (moto's request threads)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float = 30.0) -> None:
        self.loop = loop
        self.timeout_s = timeout_s

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Wait for the result (errors re-raised here)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("LoopBridge.run called on the loop itself; await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout_s)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Fire and forget; failures are logged."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)

        def done(f: Any) -> None:
            if not f.cancelled() and f.exception() is not None:
                LOG.warning("background delivery failed: %s", f.exception())

        future.add_done_callback(done)
