"""Execution environments: one OS process per environment, forked from a fork server, speaking the Runtime API.

The Lambda service decides *which* environment serves a request; this module is the machinery it drives:
:class:`EnvironmentHost` (one per local cloud) starts the fork server and spawns :class:`Environment` s; each
environment runs the function with ``awslambdaric`` (the same runtime interface client AWS publishes) against its own
Runtime API listener (:mod:`lambdalab.awslambda.runtime_api`), one request at a time.

Runtimes: every ``python3.x`` runtime runs with the host's interpreter (the lab's virtualenv, Python 3.11 today);
``AWS_EXECUTION_ENV`` still says ``AWS_Lambda_<runtime>`` as the template asks.

Memory: ``memory_mb`` is enforced by a monitor that reads each initialising or busy environment's resident set
(``/proc/<pid>/statm``) every ``memory_poll_s`` and SIGKILLs a process over its size, reported as Lambda reports an
out-of-memory kill (``Runtime.OutOfMemory``, "Runtime exited with error: signal: killed"). Measured reason for not
using RLIMIT_AS alone: a Python process reserves address space it never touches (thread stacks, 64 MiB malloc arenas
per thread) — an idle environment here has 102 MiB of address space for 18 MiB resident after one invoke — so an
address-space limit near ``memory_mb`` breaks ordinary code, and a hit shows as a Python ``MemoryError`` rather than
a kill. Limits of the monitor: an allocation faster than the poll interval can overshoot briefly before the kill, and
``Max Memory Used`` counts pages shared with the fork server (as Lambda counts the runtime's own pages). RLIMIT_AS is
still set, generously (``memory_mb`` + the fork server's address space + 1 GiB), as a backstop against an allocation
faster than the monitor; a function that hits it sees ``MemoryError`` (which Lambda functions can also see).
cgroups would be exact but need privileges the lab does not assume.
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
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from lambdalab import constants
from lambdalab.awslambda import envvars, forkserver
from lambdalab.awslambda.runtime_api import NextEvent, RuntimeApiServer, Verdict

LOG = logging.getLogger(__name__)

MIB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")
# Provisioned concurrency INIT may run "130 seconds or the configured function timeout (maximum 900 seconds),
# whichever is higher" (Lambda execution environment lifecycle).
PROVISIONED_INIT_FLOOR_S = 130.0
_LOG_SEGMENT_CAP = 8 * MIB  # keep at most this much of one INIT's or invocation's output (the tail)
_EXIT_WAIT_S = 5.0
_START_TIMEOUT_S = 30.0
_SPAWN_TIMEOUT_S = 10.0
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


class IllegalTransition(RuntimeError):
    """An environment was asked to move between states its lifecycle does not connect."""


class InvokeStatus(enum.Enum):
    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"
    TIMEOUT = "timeout"
    CRASH = "crash"


@dataclass(frozen=True)
class EnvironmentSpec:
    """Everything one execution environment is built from."""

    env_id: str
    function_name: str
    function_arn: str
    version: str
    handler: str  # "app.lambda_handler"
    code_dir: Path
    runtime: str  # "python3.13"; run with the host interpreter
    memory_mb: int
    timeout_s: float
    user_environment: dict[str, str]
    init_type: str  # "on-demand" | "provisioned-concurrency"
    region: str
    account_id: str
    log_group: str
    endpoint_url: str  # the local cloud, given to the function as AWS_ENDPOINT_URL
    xray_daemon_address: str | None = None  # "127.0.0.1:2000"
    init_cap_s: float | None = constants.ON_DEMAND_INIT_CAP_SECONDS  # None for provisioned concurrency


@dataclass(frozen=True)
class InvokeRequest:
    request_id: str
    payload: bytes
    deadline: float  # epoch seconds
    invoked_function_arn: str
    trace_header: str | None = None  # "Root=1-...;Parent=...;Sampled=1"
    client_context: str | None = None  # base64 of the client context JSON, as the Invoke API receives it


@dataclass(frozen=True)
class InitResult:
    ok: bool
    status: str  # "success" | "error" | "timeout" (INIT_REPORT's Status)
    init_started_at: float | None  # epoch seconds, function INIT began
    init_duration_s: float | None  # function INIT only: bootstrap.run start → first /next (or failure)
    error_type: str | None = None
    error_message: str | None = None
    error_body: bytes | None = None  # what the runtime posted to /init/error, if it did
    logs: str = ""
    retry_in_invoke: bool = False  # on-demand INIT past its cap: the first invoke re-runs INIT (AWS behaviour)


@dataclass(frozen=True)
class InvokeResult:
    request_id: str
    status: InvokeStatus
    body: bytes  # the response, or the error JSON as Lambda returns it
    error_type: str | None
    started_at: float  # epoch seconds, the event was handed to the runtime
    ended_at: float
    duration_s: float
    logs: str  # the function's stdout/stderr between the hand-off and its answer
    max_memory_used_mb: int  # RSS high-water mark of the process (VmHWM)
    content_type: str | None = None
    init_duration_s: float | None = None  # INIT re-run inside this invoke (after an INIT timeout), if any
    init_logs: str = ""


def exit_reason(exit_code: int | None, sig: int | None) -> str:
    """Lambda's words for a runtime exit: "exit status 1", "signal: killed", ..."""
    if sig is not None:
        return f"signal: {_SIGNAL_WORDS.get(signal.Signals(sig), signal.Signals(sig).name.lower())}"
    return f"exit status {exit_code}"


def timeout_message(request_id: str, timeout_s: float) -> str:
    return f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"


def error_json(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


@dataclass
class _Inflight:
    request: InvokeRequest
    event: NextEvent
    future: asyncio.Future[InvokeResult]
    handed_at: float | None = None
    init_duration_s: float | None = None
    init_logs: str = ""


@dataclass
class _LogSegment:
    chunks: deque[bytes] = field(default_factory=deque)
    size: int = 0
    dropped: int = 0

    def add(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        while self.size > _LOG_SEGMENT_CAP and len(self.chunks) > 1:
            old = self.chunks.popleft()
            self.size -= len(old)
            self.dropped += len(old)

    def text(self) -> str:
        body = b"".join(self.chunks).decode("utf-8", errors="replace")
        if self.dropped:
            return f"[lambdalab: {self.dropped} bytes of earlier output dropped]\n{body}"
        return body


class Environment:
    """One execution environment: a process, its Runtime API listener and its lifecycle."""

    def __init__(self, host: EnvironmentHost, spec: EnvironmentSpec, server: RuntimeApiServer) -> None:
        self.host = host
        self.spec = spec
        self.server = server
        self.state = EnvironmentState.STARTING
        self.pid: int | None = None
        self.spawned_at = time.time()  # the spawn request
        self.init_started_at: float | None = None
        self.ready_at: float | None = None
        self.invocations = 0
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.idle_logs: deque[str] = deque(maxlen=64)  # output written outside INIT and invocations
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[InitResult] = self._loop.create_future()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._next_waiter: asyncio.Future[NextEvent] | None = None
        self._queued: NextEvent | None = None
        self._inflight: _Inflight | None = None
        self._log_fd: int | None = None
        self._log_buffer = b""
        self._mark_seen = False
        self._segment = _LogSegment()
        self._oom = False
        self._killing = False
        self._init_timer: asyncio.TimerHandle | None = None
        self._reinit_pending = False  # on-demand INIT ran past its cap: re-run it in the first invoke
        self._reinit: asyncio.Future[InitResult] | None = None
        self._init_error: tuple[str, str, bytes] | None = None
        self._abandoned_pid: int | None = None
        self._last_hwm_mb = 0

    def __repr__(self) -> str:
        return f"Environment({self.spec.env_id}, pid={self.pid}, {self.state.name})"

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _transition(self, new: EnvironmentState) -> None:
        # Transitions happen on the event loop's thread only, so they are atomic without a lock.
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"environment {self.spec.env_id}: {self.state.name} → {new.name} is not allowed")
        LOG.debug("environment %s: %s -> %s", self.spec.env_id, self.state.name, new.name)
        self.state = new

    @property
    def alive(self) -> bool:
        return self.state is not EnvironmentState.DEAD

    async def wait_ready(self) -> InitResult:
        """Wait for the function's INIT to end: first /next (ok), /init/error, an exit, or the INIT time limit."""
        return await self._ready

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Hand one event to the runtime and wait for its answer, a crash, or the deadline (then kill it)."""
        if self.state is not EnvironmentState.READY:
            raise IllegalTransition(f"environment {self.spec.env_id} is {self.state.name}, cannot take an invoke")
        event = NextEvent(
            request_id=request.request_id,
            payload=request.payload,
            deadline_ms=int(request.deadline * 1000),
            invoked_function_arn=request.invoked_function_arn,
            trace_id=request.trace_header,
            client_context=_decode_client_context(request.client_context),
        )
        self._transition(EnvironmentState.BUSY)
        self.invocations += 1
        inflight = _Inflight(request, event, self._loop.create_future())
        self._inflight = inflight
        if self._reinit_pending:
            early = await self._rerun_init(inflight)
            if early is not None:
                return early
        self._hand_off(event)
        remaining = request.deadline - time.time()
        try:
            return await asyncio.wait_for(asyncio.shield(inflight.future), timeout=max(remaining, 0.0))
        except TimeoutError:
            return await self._time_out(inflight)

    async def kill(self) -> None:
        """SIGKILL the environment's process group and wait (bounded) until the fork server reaped it."""
        if self.pid is not None and not self._exited.done():
            self._killing = True
            try:
                await self.host._send_control({"op": "kill", "env_id": self.spec.env_id})
            except RuntimeError as exc:  # the fork server is gone, and its children with it (PR_SET_PDEATHSIG)
                LOG.warning("environment %s: cannot ask for a kill: %s", self.spec.env_id, exc)
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), timeout=_EXIT_WAIT_S)
            except TimeoutError:
                LOG.warning(
                    "environment %s (pid %s) not reaped %.1f s after SIGKILL", self.spec.env_id, self.pid, _EXIT_WAIT_S
                )
        self._die("killed")

    def memory_rss_bytes(self) -> int:
        """Resident set size now (0 when the process is gone)."""
        if self.pid is None or self._exited.done():
            return 0
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as statm:
                return int(statm.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return 0

    def memory_uss_bytes(self) -> int:
        """Unique set size: memory only this process holds (what one more environment costs)."""
        if self.pid is None or self._exited.done():
            return 0
        try:
            return int(psutil.Process(self.pid).memory_full_info().uss)
        except (psutil.Error, OSError):
            return 0

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
        return max(1, kib // 1024)

    def take_idle_logs(self) -> str:
        """Output the function wrote outside INIT and invocations (e.g. a background thread), oldest first."""
        self._drain_log()
        self._flush_idle_segment()
        text = "".join(self.idle_logs)
        self.idle_logs.clear()
        return text

    # --- Runtime API delegate ----------------------------------------------------------------------------------------

    async def next_event(self) -> NextEvent:
        self._drain_log()  # the INIT mark is in the pipe before the runtime can ask
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
        self._drain_log()
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
        self._drain_log()
        self._flush_idle_segment()
        if self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.set_result(event)
            self._mark_handed()
        else:
            self._queued = event

    def _mark_handed(self) -> None:
        if self._inflight is not None and self._inflight.handed_at is None:
            self._inflight.handed_at = time.time()

    def _flush_idle_segment(self) -> None:
        if self._segment.size:
            self.idle_logs.append(self._segment.text())
        self._segment = _LogSegment()

    def _take_segment(self) -> str:
        self._drain_log()
        text = self._segment.text()
        self._segment = _LogSegment()
        return text

    def _finish(
        self,
        inflight: _Inflight,
        status: InvokeStatus,
        body: bytes,
        error_type: str | None,
        *,
        content_type: str | None = None,
    ) -> None:
        if inflight.future.done():
            return
        ended = time.time()
        started = inflight.handed_at or ended
        logs = self._take_segment()
        self._last_hwm_mb = max(self._last_hwm_mb, self.max_memory_used_mb())
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
            init_logs=inflight.init_logs,
        )
        self._inflight = None
        if status in (InvokeStatus.SUCCESS, InvokeStatus.FUNCTION_ERROR) and self.state is EnvironmentState.BUSY:
            self._transition(EnvironmentState.READY)
        inflight.future.set_result(result)

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

    def _init_done(self) -> None:
        now = time.time()
        if self.init_started_at is None:
            self.init_started_at = self.spawned_at  # no INIT mark seen; count from the spawn request
        if self.state is EnvironmentState.STARTING:
            self._transition(EnvironmentState.INIT)
        self._resolve_init(ok=True, status="success", duration=now - self.init_started_at)

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
    ) -> None:
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        started = self.init_started_at
        if duration is None and started is not None:
            duration = max(time.time() - started, 0.0)
        result = InitResult(
            ok=ok,
            status=status,
            init_started_at=started,
            init_duration_s=duration,
            error_type=error_type,
            error_message=error_message,
            error_body=error_body,
            logs=self._take_segment(),
            retry_in_invoke=retry_in_invoke,
        )
        target = self._reinit if self._reinit is not None and not self._reinit.done() else self._ready
        if target.done():
            return
        target.set_result(result)
        if target is self._ready:
            if ok:
                self.ready_at = time.time()
                self._transition(EnvironmentState.READY)
            elif retry_in_invoke:
                self._transition(EnvironmentState.READY)  # it takes the first invoke, which re-runs INIT
            else:
                self._die("init failed")

    def _on_init_cap(self) -> None:
        self._init_timer = None
        if self._ready.done() or not self.alive:
            return
        cap = self.spec.init_cap_s
        if cap is not None:
            LOG.info(
                "environment %s: INIT ran past %.1f s; it will be re-run in the first invoke", self.spec.env_id, cap
            )
            self._reinit_pending = True
            self._abandoned_pid = self.pid
            self._killing = True
            self.host._send_control_soon({"op": "kill", "env_id": self.spec.env_id})
            self._resolve_init(
                ok=False,
                status="timeout",
                error_type="Sandbox.Timedout",
                error_message=f"INIT phase timed out after {cap:.2f} seconds",
                retry_in_invoke=True,
            )
        else:
            limit = self._provisioned_limit()
            self._resolve_init(
                ok=False,
                status="timeout",
                error_type="Sandbox.Timedout",
                error_message=f"INIT phase timed out after {limit:.2f} seconds",
            )

    def _provisioned_limit(self) -> float:
        return max(PROVISIONED_INIT_FLOOR_S, float(self.spec.timeout_s))

    async def _rerun_init(self, inflight: _Inflight) -> InvokeResult | None:
        """Re-run INIT inside this invoke, under the function timeout (after an on-demand INIT timeout)."""
        self._reinit_pending = False
        if not self._exited.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), timeout=_EXIT_WAIT_S)
        inflight.handed_at = time.time()  # the invoke phase (and its duration) starts now
        self._reinit = self._loop.create_future()
        self._exited = self._loop.create_future()
        self._killing = False
        self.init_started_at = None
        self._mark_seen = False
        try:
            await self.host._launch(self)
        except RuntimeError as exc:  # the fork server is gone or stopped: the invoke ends as a crash
            LOG.warning("environment %s: cannot re-run INIT: %s", self.spec.env_id, exc)
            self._exited.set_result(None)
            self._die(f"cannot re-run INIT: {exc}")
            return inflight.future.result()
        remaining = inflight.request.deadline - time.time()
        try:
            init = await asyncio.wait_for(asyncio.shield(self._reinit), timeout=max(remaining, 0.0))
        except TimeoutError:
            return await self._time_out(inflight)
        inflight.init_duration_s = init.init_duration_s
        inflight.init_logs = init.logs
        if init.ok:
            return None
        error_type = init.error_type or "Runtime.Unknown"
        body = init.error_body or error_json(error_type, init.error_message or "")
        self._finish(inflight, InvokeStatus.FUNCTION_ERROR, body, error_type)
        await self.kill()
        return inflight.future.result()

    # logs ----------------------------------------------------------------------------------------------------------

    def _attach_log(self, fd: int) -> None:
        self._close_log()
        self._mark_seen = False
        self._log_buffer = b""
        self._log_fd = fd
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._drain_log)

    def _drain_log(self) -> None:
        fd = self._log_fd
        if fd is None:
            return
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                LOG.debug("environment %s: log pipe read failed: %s", self.spec.env_id, exc)
                data = b""
            if not data:
                self._close_log()
                return
            self._on_log_bytes(data)

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
                with contextlib.suppress(ValueError):
                    self.init_started_at = float(line[len(forkserver.INIT_MARK) :])
                if self.state is EnvironmentState.STARTING:
                    self._transition(EnvironmentState.INIT)
        if data:
            self._segment.add(data)

    def _close_log(self) -> None:
        fd, self._log_fd = self._log_fd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)

    # process exit ----------------------------------------------------------------------------------------------------

    def _on_exit(self, pid: int, exit_code: int | None, sig: int | None, maxrss_kb: int | None = None) -> None:
        if pid == self._abandoned_pid:  # the INIT we killed at its cap: the env lives on, INIT re-runs in the invoke
            self._abandoned_pid = None
            self._close_log()
            self._segment = _LogSegment()
            if not self._exited.done():
                self._exited.set_result(None)
            return
        if pid != self.pid:
            return
        if maxrss_kb:
            self._last_hwm_mb = max(self._last_hwm_mb, maxrss_kb // 1024)
        self.exit_code, self.exit_signal = exit_code, sig
        self._drain_log()
        self._close_log()
        reason = exit_reason(exit_code, sig)
        inflight = self._inflight
        if inflight is not None and not inflight.future.done():
            request_id = inflight.request.request_id
            if self._oom:
                error_type = "Runtime.OutOfMemory"
                message = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
            elif exit_code == 0 and sig is None:
                error_type = "Runtime.ExitError"
                message = f"RequestId: {request_id} Error: Runtime exited without providing a reason"
            else:
                error_type = "Runtime.ExitError"
                message = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
            self._finish(inflight, InvokeStatus.CRASH, error_json(error_type, message), error_type)
        init_waiting = not self._ready.done() or (self._reinit is not None and not self._reinit.done())
        if init_waiting:
            if self._init_error is not None:
                err_type, err_message, err_body = self._init_error
                self._resolve_init(
                    ok=False, status="error", error_type=err_type, error_message=err_message, error_body=err_body
                )
            else:
                err_type = "Runtime.OutOfMemory" if self._oom else "Runtime.ExitError"
                self._resolve_init(
                    ok=False, status="error", error_type=err_type, error_message=f"Runtime exited with error: {reason}"
                )
        if not self._exited.done():
            self._exited.set_result(None)
        self._die(reason)

    def _die(self, why: str) -> None:
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        if self.state is not EnvironmentState.DEAD:
            LOG.debug("environment %s (pid %s) dead: %s", self.spec.env_id, self.pid, why)
            self._transition(EnvironmentState.DEAD)
            if self._exited.done():
                self._close_log()
            elif not self._killing and self.pid is not None:
                self._killing = True
                self.host._send_control_soon({"op": "kill", "env_id": self.spec.env_id})
            if self._next_waiter is not None and not self._next_waiter.done():
                self._next_waiter.cancel()
            self.host._retire(self)
        inflight = self._inflight
        if inflight is not None and not inflight.future.done():
            reason = f"RequestId: {inflight.request.request_id} Error: Runtime exited with error: signal: killed"
            self._finish(inflight, InvokeStatus.CRASH, error_json("Runtime.ExitError", reason), "Runtime.ExitError")
        if not self._ready.done():
            self._ready.set_result(
                InitResult(
                    ok=False,
                    status="error",
                    init_started_at=self.init_started_at,
                    init_duration_s=None,
                    error_type="Runtime.ExitError",
                    error_message=f"Runtime exited with error: {why}",
                    logs=self._take_segment(),
                )
            )

    def _memory_exceeded(self) -> bool:
        return self.memory_rss_bytes() > self.spec.memory_mb * MIB


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


class EnvironmentHost:
    """Owns the fork server and every environment forked from it (one per local cloud)."""

    def __init__(self, run_dir: Path | None = None, *, memory_poll_s: float = 0.02) -> None:
        self.run_dir = run_dir
        self.memory_poll_s = memory_poll_s
        self.environments: dict[str, Environment] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spawns: dict[str, asyncio.Future[int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._address_space_base = 0
        self.forkserver_pid: int | None = None
        self._ready: asyncio.Future[int] | None = None
        self._stopping = False

    # --- start / stop -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the fork server (it pre-imports awslambdaric) and wait until it says ready."""
        if self._proc is not None:
            raise RuntimeError("the environment host is already started")
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        _raise_fd_limit()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        stderr: Any = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            stderr = open(self.run_dir / "forkserver.log", "ab")  # noqa: SIM115 - handed to the child
        env = {"PATH": os.defpath, "LANG": "C.UTF-8"}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", forkserver.__file__, str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                close_fds=True,
                start_new_session=True,
            )
        finally:
            theirs.close()
            if stderr is not None:
                stderr.close()
        ours.setblocking(False)
        self._control = ours
        self._ready = self._loop.create_future()
        self._loop.add_reader(ours.fileno(), self._on_control)
        try:
            self.forkserver_pid = await asyncio.wait_for(self._ready, timeout=_START_TIMEOUT_S)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"the fork server did not report ready within {_START_TIMEOUT_S:.0f} s") from None
        self._address_space_base = _address_space(self.forkserver_pid)
        self._monitor = self._loop.create_task(self._watch_memory())
        LOG.info("fork server pid %s ready", self.forkserver_pid)

    async def stop(self) -> None:
        """Kill every environment and the fork server; leave no process behind."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        self._stopping = True
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.send(json.dumps({"op": "stop"}).encode())
        proc = self._proc
        if proc is not None:
            deadline = time.monotonic() + _EXIT_WAIT_S
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if proc.poll() is None:
                LOG.warning("fork server pid %s did not stop within %.1f s; killing it", proc.pid, _EXIT_WAIT_S)
                _kill_tree(proc.pid)
                proc.wait(timeout=_EXIT_WAIT_S)
        if self._control is not None and self._loop is not None:
            self._loop.remove_reader(self._control.fileno())
            self._control.close()
            self._control = None
        for env in list(self.environments.values()):
            env._killing = True
            if not env._exited.done():
                env._exited.set_result(None)
            env._die("host stopped")
            env._close_log()
        await self._close_servers()
        for future in self._spawns.values():
            if not future.done():
                future.set_exception(RuntimeError("the environment host stopped"))
        self._spawns.clear()
        self._proc = None

    async def _close_servers(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        servers = [env.server.close() for env in self.environments.values()]
        self.environments.clear()
        if servers:
            await asyncio.gather(*servers, return_exceptions=True)

    # --- spawning ---------------------------------------------------------------------------------------------------

    async def spawn(self, spec: EnvironmentSpec) -> Environment:
        """Create an environment; returns once its process exists (INIT then runs in it; see wait_ready)."""
        if self._control is None:
            raise RuntimeError("the environment host is not started")
        existing = self.environments.get(spec.env_id)
        if existing is not None and existing.alive:
            raise ValueError(f"environment {spec.env_id} already exists")
        envvars.check_user_environment(spec.user_environment)
        if not spec.code_dir.is_dir():
            raise ValueError(f"environment {spec.env_id}: code directory {spec.code_dir} does not exist")
        env = Environment(self, spec, RuntimeApiServer(_DelegateRef(spec.env_id, self)))
        await env.server.start()
        self.environments[spec.env_id] = env
        try:
            await self._launch(env)
        except BaseException:
            self.environments.pop(spec.env_id, None)
            await env.server.close()
            raise
        cap = spec.init_cap_s if spec.init_cap_s is not None else env._provisioned_limit()
        env._init_timer = asyncio.get_running_loop().call_later(
            max(cap - (time.time() - env.spawned_at), 0.0), env._on_init_cap
        )
        return env

    async def _launch(self, env: Environment) -> None:
        """Fork a process for `env` (first spawn, or INIT re-run after a timeout)."""
        spec = env.spec
        environ = envvars.build_environment(
            envvars.EnvironmentVariablesInput(
                function_name=spec.function_name,
                version=spec.version,
                handler=spec.handler,
                runtime=spec.runtime,
                memory_mb=spec.memory_mb,
                region=spec.region,
                log_group=spec.log_group,
                init_type=spec.init_type,
                code_dir=spec.code_dir,
                runtime_api=env.server.address,
                endpoint_url=spec.endpoint_url,
                user_environment=spec.user_environment,
                xray_daemon_address=spec.xray_daemon_address,
            )
        )
        read_fd, write_fd = os.pipe()
        env._attach_log(read_fd)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._spawns[spec.env_id] = future
        request = {
            "op": "spawn",
            "env_id": spec.env_id,
            "environ": environ,
            "code_dir": str(spec.code_dir),
            "handler": spec.handler,
            "address_space_limit": self._address_space_base + spec.memory_mb * MIB + 1024 * MIB,
        }
        try:
            await self._send_control(request, [write_fd])
        finally:
            os.close(write_fd)
        try:
            env.pid = await asyncio.wait_for(future, timeout=_SPAWN_TIMEOUT_S)
        except TimeoutError:
            raise RuntimeError(f"the fork server did not fork {spec.env_id} within {_SPAWN_TIMEOUT_S:.0f} s") from None
        finally:
            self._spawns.pop(spec.env_id, None)

    # --- control channel --------------------------------------------------------------------------------------------

    async def _send_control(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        sock = self._control
        if sock is None:
            raise RuntimeError("the fork server is not running")
        data = json.dumps(message).encode()
        deadline = time.monotonic() + _SPAWN_TIMEOUT_S
        while True:
            try:
                socket.send_fds(sock, [data], fds or [])
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the fork server's control socket stayed full") from None
                await asyncio.sleep(0.001)

    def _send_control_soon(self, message: dict[str, Any]) -> None:
        if self._control is None or self._loop is None:
            return
        task = self._loop.create_task(self._send_control(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_control(self) -> None:
        sock = self._control
        if sock is None:
            return
        while True:
            try:
                data = sock.recv(forkserver.MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError as exc:
                LOG.warning("fork server control socket failed: %s", exc)
                data = b""
            if not data:
                self._on_forkserver_gone()
                return
            self._on_message(json.loads(data))

    def _on_message(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(int(message["pid"]))
        elif op == "spawned":
            future = self._spawns.get(message["env_id"])
            if future is not None and not future.done():
                future.set_result(int(message["pid"]))
        elif op == "spawn_failed":
            future = self._spawns.get(message["env_id"])
            if future is not None and not future.done():
                future.set_exception(RuntimeError(f"fork server could not spawn: {message.get('error')}"))
        elif op == "exited":
            env = self.environments.get(message["env_id"])
            if env is not None:
                env._on_exit(
                    int(message["pid"]), message.get("exit_code"), message.get("signal"), message.get("maxrss_kb")
                )
        else:
            LOG.warning("fork server sent an unknown message %r", op)

    def _on_forkserver_gone(self) -> None:
        if self._control is not None and self._loop is not None:
            self._loop.remove_reader(self._control.fileno())
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError("the fork server exited before it was ready"))
        for env in list(self.environments.values()):
            if env.alive:
                if not self._stopping:
                    LOG.warning("fork server gone: environment %s is dead", env.spec.env_id)
                env._killing = True
                if not env._exited.done():
                    env._exited.set_result(None)
                env._die("the fork server exited")

    def _retire(self, env: Environment) -> None:
        """A dead environment's listener closes in the background; once its process is reaped it leaves the table."""
        if self._loop is None:
            return
        task = self._loop.create_task(self._retire_later(env))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retire_later(self, env: Environment) -> None:
        await env.server.close()
        if not env._exited.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(env._exited), timeout=_EXIT_WAIT_S)
        if self.environments.get(env.spec.env_id) is env:
            del self.environments[env.spec.env_id]

    # --- memory -----------------------------------------------------------------------------------------------------

    async def _watch_memory(self) -> None:
        """Kill an initialising or busy environment whose resident set is over its memory size."""
        while True:
            watched = [
                env
                for env in self.environments.values()
                if env.state in (EnvironmentState.INIT, EnvironmentState.BUSY, EnvironmentState.STARTING)
                and not env._killing
            ]
            for env in watched:
                if env._memory_exceeded():
                    LOG.info("environment %s over %d MB: killing it", env.spec.env_id, env.spec.memory_mb)
                    env._oom = True
                    env._killing = True
                    await self._send_control({"op": "kill", "env_id": env.spec.env_id})
            # Bound the cost: at most ~2,000 /proc reads per second however many environments are busy.
            await asyncio.sleep(max(self.memory_poll_s, len(watched) / 2000.0))


class _DelegateRef:
    """The Runtime API's view of an environment, looked up by id (the server exists before the Environment)."""

    def __init__(self, env_id: str, host: EnvironmentHost) -> None:
        self.env_id = env_id
        self.host = host

    def _env(self) -> Environment:
        return self.host.environments[self.env_id]

    async def next_event(self) -> NextEvent:
        return await self._env().next_event()

    def post_response(self, request_id: str, body: bytes, content_type: str | None) -> Verdict:
        return self._env().post_response(request_id, body, content_type)

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> Verdict:
        return self._env().post_error(request_id, body, error_type)

    def post_init_error(self, body: bytes, error_type: str | None) -> Verdict:
        return self._env().post_init_error(body, error_type)

    def post_too_large(self, request_id: str, limit: int) -> Verdict:
        return self._env().post_too_large(request_id, limit)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _address_space(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[0]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 256 * MIB


def _kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.Error:
        return
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
