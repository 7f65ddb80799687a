"""An execution environment: one OS process, forked from its runtime's fork server, speaking the Runtime API.

:class:`Environment` is one environment's process, its own Runtime API listener
(:mod:`lambdalab.awslambda.runtime.runtime_api`) and its lifecycle (STARTING, INIT, IDLE, BUSY, DEAD); the function
runs with ``awslambdaric`` (the same runtime interface client AWS publishes), one request at a time. The host that
owns the fork servers and spawns environments is :mod:`lambdalab.awslambda.runtime.host`.

This machine's limits are local, never Lambda's (:mod:`lambdalab.awslambda.runtime.cpu`): INIT code runs through a
FIFO CPU gate; the INIT duration reported is the wall time of INIT minus the time it queued at the gate and the time
its process waited for a CPU (run-queue delay), and that local waiting is reported apart; the on-demand INIT cap and
the invoke timeout are extended by the same local waiting, so a busy machine never turns into a Lambda timeout.

Memory: ``memory_mb`` is enforced by a monitor that reads each initialising or busy environment's resident set
(``/proc/<pid>/statm``) every ``memory_poll_s`` and SIGKILLs a process over its size, reported as Lambda reports an
out-of-memory kill (``Runtime.OutOfMemory``, "Runtime exited with error: signal: killed"). Measured reason for not
using RLIMIT_AS alone: a Python process reserves address space it never touches (thread stacks, 64 MiB malloc arenas
per thread) — an idle environment here has 102 MiB of address space for 18 MiB resident after one invoke — so an
address-space limit near ``memory_mb`` breaks ordinary code, and a hit shows as a Python ``MemoryError`` rather than
a kill. Limits of the monitor: an allocation faster than the poll interval can overshoot briefly before the kill, and
``Max Memory Used`` counts pages shared with the fork server (as Lambda counts the runtime's own pages) except those
of the pre-imported SDK until the function imports it. RLIMIT_AS is still set, generously (``memory_mb`` + the fork
server's address space + 1 GiB), as a backstop against an allocation faster than the monitor; a function that hits
it sees ``MemoryError`` (which Lambda functions can also see). cgroups would be exact but need privileges the lab
does not assume.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import json
import logging
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from lambdalab.awslambda.core.billing import billed_duration_ms
from lambdalab.awslambda.hosting import (
    LOCAL_ERROR_TYPE,
    EnvironmentSpec,
    InitResult,
    InvokeRequest,
    InvokeResult,
    InvokeStatus,
)
from lambdalab.awslambda.runtime import forkserver
from lambdalab.awslambda.runtime.cpu import CpuGate, run_queue_delay_s
from lambdalab.awslambda.runtime.probe import RuntimeCosts
from lambdalab.awslambda.runtime.runtime_api import NextEvent, RuntimeApiServer, Verdict
from lambdalab.clock import Clocks
from lambdalab.logs import formats
from lambdalab.logs.function import EnvironmentLog, FunctionInfo, FunctionLogs

LOG = logging.getLogger(__name__)

MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Provisioned concurrency INIT may run "130 seconds or the configured function timeout (maximum 900 seconds),
# whichever is higher" (Lambda execution environment lifecycle).
PROVISIONED_INIT_FLOOR_S = 130.0
EXIT_WAIT_S = 5.0
_CREDIT_EPSILON_S = 0.002  # local waiting below this is not worth extending a deadline for
RUN_QUEUE_REREAD_S = 0.005  # `init_waited_s` reads an INIT's run-queue delay again once its last read is this old
# Go's names for signals, as Lambda's "Runtime exited with error: signal: ..." uses them.
_SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction",
    signal.SIGINT: "interrupt",
    signal.SIGPIPE: "broken pipe",
}


class LocalCapacityError(RuntimeError):
    """This machine could not give an environment what it needs (a fork, a socket, a running fork server) even after
    waiting. Not an AWS error: on AWS the call would have run."""


class EnvironmentState(enum.Enum):
    STARTING = "starting"  # the process is being created and the runtime loaded
    INIT = "init"  # the function's INIT (handler module import) is running
    READY = "ready"  # idle, the runtime waits on /next
    BUSY = "busy"  # one invocation in flight
    DEAD = "dead"


_ALLOWED = {
    EnvironmentState.STARTING: {EnvironmentState.INIT, EnvironmentState.READY, EnvironmentState.DEAD},
    EnvironmentState.INIT: {EnvironmentState.READY, EnvironmentState.DEAD},
    EnvironmentState.READY: {EnvironmentState.BUSY, EnvironmentState.DEAD},
    EnvironmentState.BUSY: {EnvironmentState.READY, EnvironmentState.DEAD},
    EnvironmentState.DEAD: set(),
}


_WATCHED = frozenset({EnvironmentState.STARTING, EnvironmentState.INIT, EnvironmentState.BUSY})  # memory is checked


class IllegalTransition(RuntimeError):
    """An environment was asked to move between states its lifecycle does not connect."""


def exit_reason(exit_code: int | None, sig: int | None) -> str:
    """Lambda's words for a runtime exit: "exit status 1", "signal: killed", ..."""
    if sig is not None:
        return f"signal: {_SIGNAL_WORDS.get(signal.Signals(sig), signal.Signals(sig).name.lower())}"
    return f"exit status {exit_code}"


def timeout_message(request_id: str, timeout_s: float) -> str:
    return f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"


def error_json(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def local_error_json(message: str) -> bytes:
    return error_json(LOCAL_ERROR_TYPE, f"lambdalab (this machine, not Lambda): {message}")


@dataclass
class _Inflight:
    request: InvokeRequest
    event: NextEvent
    future: asyncio.Future[InvokeResult]
    handed_at: float | None = None
    init_duration_s: float | None = None
    init_local_wait_s: float = 0.0
    run_queue_at_hand_off: float | None = None
    credited_s: float = 0.0  # local waiting added to the deadline so far


@dataclass
class _LaunchClock:
    """Local waiting of one launched process (the first INIT, or its re-run inside an invoke)."""

    gate_wait_s: float = 0.0  # host's measure of time queued at the gate (finished waits)
    gate_since: float | None = None  # monotonic time the pending gate request began
    holding: bool = False
    grants: int = 0  # tokens received: after the first, a request is a resumption
    child_gate_wait_s: float | None = None  # the child's own measure, sent when its INIT code ended
    child_slept_s: float = 0.0  # the child's time asleep during INIT (replayed costs, its sleeps): never local wait
    run_queue_at_mark: float | None = None  # the child's run-queue delay when INIT began (seconds)

    def gate_wait_now(self, now: float) -> float:
        """Time queued at the gate so far, `now` on the monotonic clock `gate_since` was read from."""
        pending = now - self.gate_since if self.gate_since is not None else 0.0
        return (self.child_gate_wait_s if self.child_gate_wait_s is not None else self.gate_wait_s) + pending


class Host(Protocol):
    """What an environment needs of the host that spawned it (:class:`lambdalab.awslambda.runtime.host.ProcessHost`)."""

    clocks: Clocks
    logs: FunctionLogs
    gate: CpuGate

    async def launch(self, env: Environment) -> None: ...

    def retire(self, env: Environment) -> None: ...

    def watch(self, env: Environment, watched: bool) -> None: ...


class ForkServer(Protocol):
    """What an environment needs of its fork server (:class:`~lambdalab.awslambda.runtime.host.ForkServerProcess`)."""

    @property
    def costs(self) -> RuntimeCosts: ...

    async def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None: ...

    def send_soon(self, message: dict[str, Any]) -> None: ...


class Environment:
    """One execution environment: a process, its Runtime API listener and its lifecycle."""

    def __init__(self, host: Host, forkserver_process: ForkServer, spec: EnvironmentSpec) -> None:
        self.host = host
        self.forkserver = forkserver_process
        self.spec = spec
        self.server = RuntimeApiServer(self)
        self.state = EnvironmentState.STARTING
        self.pid: int | None = None
        # The host's clocks: epoch for what the logs and records stamp (the child's INIT mark is epoch too),
        # monotonic for deadlines, timers and gate waits.
        self._epoch = host.clocks.epoch.now
        self._mono = host.clocks.monotonic.now
        self.spawned_at = self._epoch()  # the spawn request
        self._spawned_mono = self._mono()
        self._run_queue_read: tuple[float, float] = (float("-inf"), 0.0)  # (when, INIT's run-queue delay then)
        self.init_started_at: float | None = None
        self.ready_at: float | None = None
        self.invocations = 0
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.sdk_imported = False  # the function imported a pre-imported runtime module (its pages now count)
        # The environment's log stream: INIT_START, everything the process writes, START/END/REPORT, in order.
        self.log: EnvironmentLog = host.logs.environment(
            FunctionInfo(spec.function_name, spec.function_arn, spec.runtime, spec.memory_mb, spec.logging),
            version=spec.version,
            init_type=spec.init_type,
        )
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[InitResult] = self._loop.create_future()
        self.exited: asyncio.Future[None] = self._loop.create_future()
        self._next_waiter: asyncio.Future[NextEvent] | None = None
        self._queued: NextEvent | None = None
        self._inflight: _Inflight | None = None
        self._log_fd: int | None = None
        self._telemetry_fd: int | None = None
        self._log_buffer = b""
        self._mark_seen = False
        self._cold_init_s: float | None = None  # an on-demand INIT's duration, for its first invocation's REPORT
        self._gate_sock: socket.socket | None = None
        self._clock = _LaunchClock()
        self.oom = False
        self.killing = False
        self._init_timer: asyncio.TimerHandle | None = None
        self._reinit_pending = False  # on-demand INIT ran past its cap: re-run it in the first invoke
        self._reinit: asyncio.Future[InitResult] | None = None
        self._init_error: tuple[str, str, bytes] | None = None
        self._abandoned_pid: int | None = None
        self._last_hwm_mb = 0
        self._log_closed = False

    def __repr__(self) -> str:
        return f"Environment({self.spec.env_id}, pid={self.pid}, {self.state.name})"

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _transition(self, new: EnvironmentState) -> None:
        # Transitions happen on the event loop's thread only, so they are atomic without a lock.
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"environment {self.spec.env_id}: {self.state.name} → {new.name} is not allowed")
        LOG.debug("environment %s: %s -> %s", self.spec.env_id, self.state.name, new.name)
        self.state = new
        self.host.watch(self, new in _WATCHED)

    @property
    def alive(self) -> bool:
        return self.state is not EnvironmentState.DEAD

    async def wait_ready(self) -> InitResult:
        """Wait for the function's INIT to end: first /next (ok), /init/error, an exit, or the INIT time limit."""
        return await self._ready

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Hand one event to the runtime and wait for its answer, a crash, or the deadline (then kill it).

        The deadline moves by the time the process waited for a CPU meanwhile: that wait is this machine's, not the
        function's, and on AWS the function would have had its CPU."""
        if self.state is not EnvironmentState.READY:
            raise IllegalTransition(f"environment {self.spec.env_id} is {self.state.name}, cannot take an invoke")
        event = NextEvent(
            request_id=request.request_id,
            payload=request.payload,
            deadline_ms=int((self._epoch() + request.deadline - self._mono()) * 1000),  # Lambda-Runtime-Deadline-Ms
            invoked_function_arn=request.invoked_function_arn,
            trace_id=request.trace_header,
            client_context=_decode_client_context(request.client_context),
        )
        self._transition(EnvironmentState.BUSY)
        self.invocations += 1
        inflight = _Inflight(request, event, self._loop.create_future())
        self._inflight = inflight
        self._drain_output()  # what the process wrote while idle goes before START
        self.log.start(_ms(self._epoch()), request.request_id, trace=_trace(request))
        if self._reinit_pending:
            early = await self._rerun_init(inflight)
            if early is not None:
                return early
        inflight.run_queue_at_hand_off = self._run_queue_delay()
        self._hand_off(event)
        remaining = request.deadline + inflight.credited_s - self._mono()
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(inflight.future), timeout=max(remaining, 0.0))
            except TimeoutError:
                remaining = self._credit_cpu_wait(inflight)
                if remaining <= 0:
                    return await self._time_out(inflight)

    async def kill(self) -> None:
        """SIGKILL the environment's process group and wait (bounded) until the fork server reaped it."""
        if self.pid is not None and not self.exited.done():
            self.killing = True
            try:
                await self.forkserver.send({"op": "kill", "env_id": self.spec.env_id})
            except LocalCapacityError as exc:  # the fork server is gone, and its children with it (PDEATHSIG)
                LOG.warning("environment %s: cannot ask for a kill: %s", self.spec.env_id, exc)
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), timeout=EXIT_WAIT_S)
            except TimeoutError:
                LOG.warning(
                    "environment %s (pid %s) not reaped %.1f s after SIGKILL", self.spec.env_id, self.pid, EXIT_WAIT_S
                )
        self.die("killed")

    def memory_rss_bytes(self) -> int:
        """Resident set size now (0 when the process is gone)."""
        if self.pid is None or self.exited.done():
            return 0
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return 0

    def memory_uss_bytes(self) -> int:
        """Unique set size: memory only this process holds (what one more environment costs)."""
        if self.pid is None or self.exited.done():
            return 0
        try:
            return int(psutil.Process(self.pid).memory_full_info().uss)
        except (psutil.Error, OSError):
            return 0

    def _unused_sdk_bytes(self) -> int:
        """Pages of the pre-imported SDK this process maps but the function never imported: not the function's."""
        return 0 if self.sdk_imported else self.forkserver.costs.preload_rss

    def max_memory_used_mb(self) -> int:
        """RSS high-water mark (VmHWM), in MB as Lambda's REPORT line shows it; read once per invocation."""
        if self.pid is None:
            return self._last_hwm_mb
        try:
            fd = os.open(f"/proc/{self.pid}/status", os.O_RDONLY)
            try:
                status = os.read(fd, 8192)
            finally:
                os.close(fd)
            start = status.index(b"VmHWM:") + 6
            kib = int(status[start : status.index(b"kB", start)])
        except (OSError, ValueError):
            return self._last_hwm_mb
        return max(1, (kib * 1024 - self._unused_sdk_bytes()) // MIB)

    # --- Runtime API delegate ----------------------------------------------------------------------------------------

    async def next_event(self) -> NextEvent:
        self._drain_output()  # the INIT mark is in the pipe before the runtime can ask
        initialising = self.state in (EnvironmentState.STARTING, EnvironmentState.INIT)
        if initialising or (self._reinit is not None and not self._reinit.done()):
            self._init_done()
        if self._queued is not None:
            event, self._queued = self._queued, None
            self._mark_handed()
            return event
        if self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.cancel()
        waiter: asyncio.Future[NextEvent] = self._loop.create_future()
        self._next_waiter = waiter
        try:
            return await waiter
        finally:
            if self._next_waiter is waiter:
                self._next_waiter = None

    def post_response(self, request_id: str, body: bytes, content_type: str | None) -> Verdict:
        inflight = self._current(request_id)
        if inflight is None:
            return _forbidden(request_id)
        self._finish(inflight, InvokeStatus.SUCCESS, body, None, content_type=content_type)
        return Verdict.accepted()

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> Verdict:
        inflight = self._current(request_id)
        if inflight is None:
            return _forbidden(request_id)
        self._finish(inflight, InvokeStatus.FUNCTION_ERROR, body, error_type or _body_error_type(body) or "Unhandled")
        return Verdict.accepted()

    def post_init_error(self, body: bytes, error_type: str | None) -> Verdict:
        reinit = self._reinit is not None and not self._reinit.done()
        if self.state not in (EnvironmentState.STARTING, EnvironmentState.INIT) and not reinit:
            return Verdict(403, "InvalidStateTransition", "init/error is only accepted during INIT")
        self._drain_output()
        err_type = error_type or _body_error_type(body) or "Runtime.Unknown"
        self._init_error = (err_type, _body_error_message(body), body)
        self._resolve_init(
            ok=False, status="error", error_type=err_type, error_message=_body_error_message(body), error_body=body
        )
        return Verdict.accepted()

    def post_too_large(self, request_id: str, limit: int) -> Verdict:
        inflight = self._current(request_id)
        if inflight is None:
            return _forbidden(request_id)
        message = f"Response payload size exceeded maximum allowed payload size ({limit} bytes)."
        error_type = "Function.ResponseSizeTooLarge"
        self._finish(inflight, InvokeStatus.FUNCTION_ERROR, error_json(error_type, message), error_type)
        return Verdict(413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({limit} bytes).")

    # --- internals --------------------------------------------------------------------------------------------------

    def _current(self, request_id: str) -> _Inflight | None:
        inflight = self._inflight
        if inflight is None or inflight.request.request_id != request_id or inflight.future.done():
            return None
        return inflight

    def _hand_off(self, event: NextEvent) -> None:
        self._drain_output()
        if self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.set_result(event)
            self._mark_handed()
        else:
            self._queued = event

    def _mark_handed(self) -> None:
        if self._inflight is not None and self._inflight.handed_at is None:
            self._inflight.handed_at = self._epoch()

    def _take_transcript(self) -> str:
        self._drain_output()
        return self.log.take_transcript()

    def _run_queue_delay(self) -> float | None:
        return run_queue_delay_s(self.pid) if self.pid is not None else None

    def _credit_cpu_wait(self, inflight: _Inflight) -> float:
        """At the deadline: extend it by the CPU wait of the process since the hand-off not yet credited. Returns the
        seconds left (0 when the function really ran out of time)."""
        start = inflight.run_queue_at_hand_off
        now = self._run_queue_delay()
        if start is None or now is None:
            return 0.0
        extra = (now - start) - inflight.credited_s
        if extra < _CREDIT_EPSILON_S:
            return 0.0
        inflight.credited_s += extra
        return extra

    def _finish(
        self,
        inflight: _Inflight,
        status: InvokeStatus,
        body: bytes,
        error_type: str | None,
        *,
        content_type: str | None = None,
        exit_reason: str | None = None,
    ) -> None:
        if inflight.future.done():
            return
        ended = self._epoch()
        started = inflight.handed_at or ended
        self._drain_output()
        self._last_hwm_mb = max(self._last_hwm_mb, self.max_memory_used_mb())
        waited = 0.0
        if inflight.run_queue_at_hand_off is not None and status is not InvokeStatus.CRASH:
            now = self._run_queue_delay()
            if now is not None:
                waited = max(now - inflight.run_queue_at_hand_off, 0.0)
        logs = self._write_report(
            inflight,
            status=status,
            error_type=error_type,
            duration_s=max(ended - started, 0.0),
            ended=ended,
            exit_reason=exit_reason,
        )
        result = InvokeResult(
            request_id=inflight.request.request_id,
            status=status,
            body=body,
            error_type=error_type,
            started_at=started,
            ended_at=ended,
            duration_s=max(ended - started, 0.0),
            logs=logs,
            max_memory_used_mb=self._last_hwm_mb,
            content_type=content_type,
            init_duration_s=inflight.init_duration_s,
            local_wait_s=max(waited, inflight.credited_s),
            init_local_wait_s=inflight.init_local_wait_s,
        )
        self._inflight = None
        if status in (InvokeStatus.SUCCESS, InvokeStatus.FUNCTION_ERROR) and self.state is EnvironmentState.BUSY:
            self._transition(EnvironmentState.READY)
        inflight.future.set_result(result)

    def _write_report(
        self,
        inflight: _Inflight,
        *,
        status: InvokeStatus,
        error_type: str | None,
        duration_s: float,
        ended: float,
        exit_reason: str | None,
    ) -> str:
        """END and REPORT (and the timeout or exit line) into the stream; returns the invocation's transcript."""
        init_s = inflight.init_duration_s if inflight.init_duration_s is not None else self._cold_init_s
        self._cold_init_s = None  # only the first invocation after an on-demand INIT reports it
        if status is InvokeStatus.TIMEOUT:
            report_status, report_error = "timeout", None
        elif status in (InvokeStatus.CRASH, InvokeStatus.LOCAL_ERROR):
            report_status, report_error = "error", error_type
        else:  # a handler's error is the function's answer, not a runtime failure: no Status on the REPORT line
            report_status, report_error = "success", None
        report = formats.Report(
            request_id=inflight.request.request_id,
            duration_ms=duration_s * 1000.0,
            billed_duration_ms=billed_duration_ms(duration_s, init_s),
            memory_size_mb=self.spec.memory_mb,
            max_memory_used_mb=self._last_hwm_mb,
            init_duration_ms=None if init_s is None else init_s * 1000.0,
            status=report_status,
            error_type=report_error,
            trace=_trace(inflight.request),
        )
        self.log.end(
            _ms(ended),
            report,
            timeout_s=self.spec.timeout_s if status is InvokeStatus.TIMEOUT else None,
            exit_reason=exit_reason if status is InvokeStatus.CRASH else None,
        )
        return self.log.take_transcript()

    async def _time_out(self, inflight: _Inflight) -> InvokeResult:
        if inflight.future.done():  # answered in the same loop turn as the deadline
            return inflight.future.result()
        request_id = inflight.request.request_id
        LOG.info("environment %s: %s timed out after %.2f s", self.spec.env_id, request_id, self.spec.timeout_s)
        body = error_json("Sandbox.Timedout", timeout_message(request_id, self.spec.timeout_s))
        self._finish(inflight, InvokeStatus.TIMEOUT, body, "Sandbox.Timedout")
        result = inflight.future.result()
        await self.kill()
        return result

    def init_local_wait_s(self) -> float:
        """INIT's waiting for this machine so far (0 once INIT is over: the result carries the final figure)."""
        if self.state not in (EnvironmentState.STARTING, EnvironmentState.INIT):
            return 0.0
        return self._init_local_wait()

    def _init_local_wait(self) -> float:
        """INIT's waiting for this machine so far: queued at the CPU gate plus the process's run-queue delay."""
        return self._clock.gate_wait_now(self._mono()) + self._init_run_queue_s()

    def _init_run_queue_s(self) -> float:
        """The process's run-queue delay since its INIT mark (0 while unknown): a /proc read."""
        now = self._run_queue_delay()
        return max(now - (self._clock.run_queue_at_mark or 0.0), 0.0) if now is not None else 0.0

    def _init_done(self) -> None:
        self._drain_gate()  # the child's own measure of its gate wait arrives just before its first /next
        now = self._epoch()
        if self.init_started_at is None:
            self.init_started_at = self.spawned_at  # no INIT mark seen; count from the spawn request
        if self.state is EnvironmentState.STARTING:
            self._transition(EnvironmentState.INIT)
        wall = now - self.init_started_at
        # Time the child spent asleep (a replayed cost, INIT's own sleep) was never spent waiting for this machine:
        # a local wait that would overlap it is bounded, so INIT never reads shorter than what it slept.
        waited = min(self._init_local_wait(), max(wall - self._clock.child_slept_s, 0.0))
        self._end_gate()
        self._resolve_init(ok=True, status="success", duration=max(wall - waited, 0.0), local_wait=waited)

    def _resolve_init(
        self,
        *,
        ok: bool,
        status: str,
        duration: float | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        error_body: bytes | None = None,
        retry_in_invoke: bool = False,
        local_wait: float | None = None,
        local: bool = False,
    ) -> None:
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        if local_wait is None:
            local_wait = self._init_local_wait()
            self._end_gate()
        started = self.init_started_at
        now = self._epoch()
        if duration is None and started is not None:
            duration = max(now - started - local_wait, 0.0)
        target = self._reinit if self._reinit is not None and not self._reinit.done() else self._ready
        if target.done():
            return
        self._drain_output()
        if not local:
            self.log.init_report(
                _ms(now),
                (duration or 0.0) * 1000.0,
                status=status,
                error_type=None if ok else error_type,
                phase="init" if target is self._ready else "invoke",
            )
        if ok and target is self._ready and self.spec.init_type == "on-demand":
            self._cold_init_s = duration
        result = InitResult(
            ok=ok,
            status=status,
            init_started_at=started,
            init_duration_s=duration,
            error_type=error_type,
            error_message=error_message,
            error_body=error_body,
            # INIT re-run inside an invoke belongs to that invocation's transcript (after its START)
            logs=self.log.take_transcript() if target is self._ready else "",
            retry_in_invoke=retry_in_invoke,
            local_wait_s=local_wait,
            local=local,
        )
        target.set_result(result)
        if target is self._ready:
            if ok:
                self.ready_at = self._epoch()
                self._transition(EnvironmentState.READY)
            elif retry_in_invoke:
                self._transition(EnvironmentState.READY)  # it takes the first invoke, which re-runs INIT
            else:
                self.die("init failed")

    def arm_init_cap(self) -> None:
        cap = self.spec.init_cap_s if self.spec.init_cap_s is not None else self._provisioned_limit()
        self._init_timer = self._loop.call_later(max(cap - (self._mono() - self._spawned_mono), 0.0), self._on_init_cap)

    def _on_init_cap(self) -> None:
        self._init_timer = None
        if self._ready.done() or not self.alive:
            return
        # The cap counts INIT's own time: time spent waiting for this machine moves it.
        cap = self.spec.init_cap_s if self.spec.init_cap_s is not None else self._provisioned_limit()
        begin = self.init_started_at if self.init_started_at is not None else self.spawned_at
        left = cap - (self._epoch() - begin - self._init_local_wait())
        if left > _CREDIT_EPSILON_S:
            self._init_timer = self._loop.call_later(left, self._on_init_cap)
            return
        if self.spec.init_cap_s is not None:
            LOG.info(
                "environment %s: INIT ran past %.1f s; it will be re-run in the first invoke", self.spec.env_id, cap
            )
            self._reinit_pending = True
            self._abandoned_pid = self.pid
            self.killing = True
            self.forkserver.send_soon({"op": "kill", "env_id": self.spec.env_id})
            self._resolve_init(
                ok=False,
                status="timeout",
                error_type="Sandbox.Timedout",
                error_message=f"INIT phase timed out after {cap:.2f} seconds",
                retry_in_invoke=True,
            )
        else:
            self._resolve_init(
                ok=False,
                status="timeout",
                error_type="Sandbox.Timedout",
                error_message=f"INIT phase timed out after {cap:.2f} seconds",
            )

    def _provisioned_limit(self) -> float:
        return max(PROVISIONED_INIT_FLOOR_S, float(self.spec.timeout_s))

    async def _rerun_init(self, inflight: _Inflight) -> InvokeResult | None:
        """Re-run INIT inside this invoke, under the function timeout (after an on-demand INIT timeout)."""
        self._reinit_pending = False
        if not self.exited.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), timeout=EXIT_WAIT_S)
        inflight.handed_at = self._epoch()  # the invoke phase (and its duration) starts now
        self._reinit = self._loop.create_future()
        self.exited = self._loop.create_future()
        self.killing = False
        self.init_started_at = None
        self._mark_seen = False
        try:
            await self.host.launch(self)
        except LocalCapacityError as exc:  # this machine cannot start the process again: a local error, not Lambda's
            LOG.warning("environment %s: cannot re-run INIT: %s", self.spec.env_id, exc)
            self.exited.set_result(None)
            self._finish(inflight, InvokeStatus.LOCAL_ERROR, local_error_json(str(exc)), LOCAL_ERROR_TYPE)
            self.die(f"cannot re-run INIT: {exc}")
            return inflight.future.result()
        while True:
            remaining = inflight.request.deadline + inflight.credited_s - self._mono()
            try:
                init = await asyncio.wait_for(asyncio.shield(self._reinit), timeout=max(remaining, 0.0))
                break
            except TimeoutError:
                extra = self._init_local_wait() - inflight.credited_s
                if extra < _CREDIT_EPSILON_S:
                    return await self._time_out(inflight)
                inflight.credited_s += extra
        inflight.init_duration_s = init.init_duration_s
        inflight.init_local_wait_s = init.local_wait_s
        if init.ok:
            return None
        error_type = init.error_type or "Runtime.Unknown"
        body = init.error_body or error_json(error_type, init.error_message or "")
        self._finish(inflight, InvokeStatus.FUNCTION_ERROR, body, error_type)
        await self.kill()
        return inflight.future.result()

    # CPU gate ------------------------------------------------------------------------------------------------------

    def attach_gate(self, sock: socket.socket) -> None:
        self.close_gate()
        self._clock = _LaunchClock()
        sock.setblocking(False)
        self._gate_sock = sock
        self._loop.add_reader(sock.fileno(), self._drain_gate)

    def _drain_gate(self) -> None:
        sock = self._gate_sock
        while sock is not None and sock is self._gate_sock:
            try:
                data = sock.recv(256)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close_gate()
                return
            self._on_gate_message(data)

    def _on_gate_message(self, data: bytes) -> None:
        word, _, argument = data.partition(b" ")
        clock = self._clock
        if word == forkserver.GATE_ACQUIRE:
            if clock.gate_since is None and not clock.holding:
                clock.gate_since = self._mono()
                self.host.gate.request(self.spec.env_id, self._on_gate_granted, resume=clock.grants > 0)
        elif word == forkserver.GATE_RELEASE:
            clock.holding = False
            self.host.gate.release(self.spec.env_id)
        elif word == forkserver.GATE_END:
            with contextlib.suppress(ValueError, IndexError):
                fields = argument.split()
                clock.child_gate_wait_s = float(fields[0])
                clock.child_slept_s = float(fields[1]) if len(fields) > 1 else 0.0
            clock.holding = False
            self.host.gate.release(self.spec.env_id)
        elif word == forkserver.GATE_RESTORED:
            self.sdk_imported = True
        else:
            LOG.debug("environment %s: unknown gate message %r", self.spec.env_id, data[:40])

    def _on_gate_granted(self) -> None:
        clock = self._clock
        clock.grants += 1
        if clock.gate_since is not None:
            clock.gate_wait_s += self._mono() - clock.gate_since
            clock.gate_since = None
        clock.holding = True
        sock = self._gate_sock
        if sock is None:
            self.host.gate.release(self.spec.env_id)
            return
        try:
            sock.send(forkserver.GATE_GO)
        except OSError:  # the child is gone: the token comes straight back
            clock.holding = False
            self.host.gate.release(self.spec.env_id)

    def _end_gate(self) -> None:
        """INIT is over (ready, failed, timed out or dead): no token held, no request pending. The socket stays open
        for the `restored` notice of later imports."""
        clock = self._clock
        if clock.gate_since is not None:
            clock.gate_wait_s += self._mono() - clock.gate_since
            clock.gate_since = None
        clock.holding = False
        self.host.gate.release(self.spec.env_id)

    def close_gate(self) -> None:
        sock, self._gate_sock = self._gate_sock, None
        if sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self.host.gate.release(self.spec.env_id)

    # logs ----------------------------------------------------------------------------------------------------------

    def attach_log(self, fd: int) -> None:
        self._close_log()
        self._mark_seen = False
        self._log_buffer = b""
        self._log_fd = fd
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._drain_log)

    def _drain_log(self) -> None:
        while (fd := self._log_fd) is not None:
            data = self._read_pipe(fd, "log")
            if data is None:
                return
            if not data:
                self._close_log()
                return
            self._on_log_bytes(data)

    def _read_pipe(self, fd: int, name: str) -> bytes | None:
        """What a non-blocking pipe holds now: bytes; b"" at its end (or when reading failed); None when empty."""
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return None
        except OSError as exc:
            LOG.debug("environment %s: %s pipe read failed: %s", self.spec.env_id, name, exc)
            return b""

    def _on_log_bytes(self, data: bytes) -> None:
        if not self._mark_seen:
            self._log_buffer += data
            if not self._log_buffer.startswith(forkserver.INIT_MARK[: len(self._log_buffer)]):
                self._mark_seen = True  # not our mark (cannot happen unless the child failed early): all is log
                data, self._log_buffer = self._log_buffer, b""
            else:
                newline = self._log_buffer.find(b"\n")
                if newline < 0:
                    return
                line, data = self._log_buffer[:newline], self._log_buffer[newline + 1 :]
                self._log_buffer = b""
                self._mark_seen = True
                fields = line[len(forkserver.INIT_MARK) :].split()
                with contextlib.suppress(ValueError, IndexError):
                    self.init_started_at = float(fields[0])
                    self._clock.run_queue_at_mark = float(fields[1])
                if self._reinit is None:  # INIT re-run inside an invoke has no INIT_START of its own
                    self.log.init_start(_ms(self.init_started_at or self._epoch()))
                if self.state is EnvironmentState.STARTING:
                    self._transition(EnvironmentState.INIT)
        if data:
            self.log.stdout(data, _ms(self._epoch()))

    def attach_telemetry(self, fd: int) -> None:
        self._close_telemetry()
        self._telemetry_fd = fd
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._drain_telemetry)

    def _drain_telemetry(self) -> None:
        while (fd := self._telemetry_fd) is not None:
            data = self._read_pipe(fd, "telemetry")
            if data is None:
                return
            if not data:
                self._close_telemetry()
                return
            self.log.telemetry(data)

    def _close_telemetry(self) -> None:
        fd, self._telemetry_fd = self._telemetry_fd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)

    def init_waited_s(self, now: float) -> float | None:
        """None once the first INIT is over; before, the seconds it has waited for this machine so far: for the fork
        server to start its process (the spawn request to the INIT mark), at the CPU gate, and in the run queue (a
        CPU shared with the other INITs of a storm). The run-queue delay is a /proc read, so it is read again only
        once it is older than RUN_QUEUE_REREAD_S: a storm's admissions ask this of every INIT in progress."""
        if self.state not in (EnvironmentState.STARTING, EnvironmentState.INIT):
            return None
        forked = self.init_started_at if self.init_started_at is not None else now
        mono = self._mono()
        read_at, run_queue = self._run_queue_read
        if mono - read_at > RUN_QUEUE_REREAD_S:
            run_queue = self._init_run_queue_s()
            self._run_queue_read = (mono, run_queue)
        return max(forked - self.spawned_at, 0.0) + self._clock.gate_wait_now(mono) + run_queue

    def init_elapsed_s(self, now: float) -> float:
        """Wall seconds since this environment's spawn request (its start on AWS: a sandbox, then INIT)."""
        return now - self.spawned_at

    def _drain_output(self) -> None:
        """Everything the process has written so far, from both pipes, into its log stream."""
        self._drain_log()
        self._drain_telemetry()

    def close_output(self) -> None:
        self._close_log()
        self._close_telemetry()

    def close_stream(self) -> None:
        """The environment is gone: what it wrote without a final newline is written too, once."""
        self._drain_output()
        self.close_output()
        if not self._log_closed:
            self._log_closed = True
            self.log.close(_ms(self._epoch()))

    def _close_log(self) -> None:
        fd, self._log_fd = self._log_fd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)

    # process exit ----------------------------------------------------------------------------------------------------

    def on_exit(self, pid: int, exit_code: int | None, sig: int | None, maxrss_kb: int | None = None) -> None:
        if pid == self._abandoned_pid:  # the INIT we killed at its cap: the env lives on, INIT re-runs in the invoke
            self._abandoned_pid = None
            self._drain_output()  # its last output stays in the stream
            self.close_output()
            self.close_gate()
            if not self.exited.done():
                self.exited.set_result(None)
            return
        if pid != self.pid:
            return
        if maxrss_kb:
            self._last_hwm_mb = max(self._last_hwm_mb, 1, (maxrss_kb * 1024 - self._unused_sdk_bytes()) // MIB)
        self.exit_code, self.exit_signal = exit_code, sig
        self._drain_output()  # every byte it wrote before exiting (the pipes are at EOF once drained)
        reason = exit_reason(exit_code, sig)
        inflight = self._inflight
        if inflight is not None and not inflight.future.done():
            request_id = inflight.request.request_id
            if self.oom:
                error_type = "Runtime.OutOfMemory"
                message = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
            elif exit_code == 0 and sig is None:
                error_type = "Runtime.ExitError"
                message = f"RequestId: {request_id} Error: Runtime exited without providing a reason"
            else:
                error_type = "Runtime.ExitError"
                message = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
            self._finish(inflight, InvokeStatus.CRASH, error_json(error_type, message), error_type, exit_reason=reason)
        init_waiting = not self._ready.done() or (self._reinit is not None and not self._reinit.done())
        if init_waiting:
            if self._init_error is not None:
                err_type, err_message, err_body = self._init_error
                self._resolve_init(
                    ok=False, status="error", error_type=err_type, error_message=err_message, error_body=err_body
                )
            else:
                err_type = "Runtime.OutOfMemory" if self.oom else "Runtime.ExitError"
                self._resolve_init(
                    ok=False, status="error", error_type=err_type, error_message=f"Runtime exited with error: {reason}"
                )
        if not self.exited.done():
            self.exited.set_result(None)
        self.close_stream()
        self.die(reason)

    def die(self, why: str, *, local: bool = False) -> None:
        """The environment is dead. `local`: this machine ended it (the host stopped, the fork server is gone), so
        an invoke or INIT still waiting ends with a local error, not a Lambda one."""
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        if self.state is not EnvironmentState.DEAD:
            LOG.debug("environment %s (pid %s) dead: %s", self.spec.env_id, self.pid, why)
            self._transition(EnvironmentState.DEAD)
            if self.exited.done():
                self.close_output()
            elif not self.killing and self.pid is not None:
                self.killing = True
                self.forkserver.send_soon({"op": "kill", "env_id": self.spec.env_id})
            if self._next_waiter is not None and not self._next_waiter.done():
                self._next_waiter.cancel()
            self.close_gate()
            self.host.retire(self)
        inflight = self._inflight
        if inflight is not None and not inflight.future.done():
            if local:
                self._finish(inflight, InvokeStatus.LOCAL_ERROR, local_error_json(why), LOCAL_ERROR_TYPE)
            else:
                reason = f"RequestId: {inflight.request.request_id} Error: Runtime exited with error: signal: killed"
                self._finish(
                    inflight,
                    InvokeStatus.CRASH,
                    error_json("Runtime.ExitError", reason),
                    "Runtime.ExitError",
                    exit_reason="signal: killed",
                )
        if not self._ready.done():
            self._ready.set_result(
                InitResult(
                    ok=False,
                    status="error",
                    init_started_at=self.init_started_at,
                    init_duration_s=None,
                    error_type=LOCAL_ERROR_TYPE if local else "Runtime.ExitError",
                    error_message=f"lambdalab (this machine, not Lambda): {why}"
                    if local
                    else f"Runtime exited with error: {why}",
                    logs=self._take_transcript(),
                    local=local,
                )
            )

    def memory_exceeded(self) -> bool:
        return self.memory_rss_bytes() - self._unused_sdk_bytes() > self.spec.memory_mb * MIB


def _ms(epoch_s: float) -> int:
    return int(epoch_s * 1000)


def _trace(request: InvokeRequest) -> formats.Trace | None:
    """The REPORT line's X-Ray ids, when the function traces actively: its segment is the header's Parent."""
    if not request.tracing_active or not request.trace_header:
        return None
    fields = dict(part.split("=", 1) for part in request.trace_header.split(";") if "=" in part)
    root, parent = fields.get("Root"), fields.get("Parent")
    if not root or not parent:
        return None
    return formats.Trace(root, parent, fields.get("Sampled") == "1")


def _forbidden(request_id: str) -> Verdict:
    return Verdict(403, "InvalidRequestID", f"Invalid request ID: {request_id} is not the current invocation")


def _body_error_type(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("errorType")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _body_error_message(body: bytes) -> str:
    try:
        value = json.loads(body).get("errorMessage")
    except (ValueError, AttributeError):
        return body.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


def _decode_client_context(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"client context is not base64-encoded UTF-8 JSON: {exc}") from None
