"""The process host: :class:`ProcessHost` (one per local cloud) runs one fork server per runtime
(:class:`ForkServerProcess`) and spawns :class:`~lambdalab.awslambda.runtime.environment.Environment` s from them.

The Lambda service decides *which* environment serves a request; this module is the machinery it drives.

Runtimes: a ``python3.X`` function runs on CPython 3.X when this machine has it
(:mod:`lambdalab.awslambda.runtime.interpreters`), with the runtime's own packages only — the runtime interface
client and the AWS SDK (:mod:`lambdalab.awslambda.runtime.packages`) — after the function's code folder, its
dependencies and its layers on the import path. Nothing of the lab's virtualenv is importable.

This machine's limits are local, never Lambda's: a full fork-server socket, a failed fork (EAGAIN/ENOMEM) or a
listener that cannot bind makes the spawn wait and retry; if that is not enough the spawn fails with
:class:`~lambdalab.awslambda.runtime.environment.LocalCapacityError`, which the service reports as a local error,
never as an AWS one. The memory monitor (see :mod:`lambdalab.awslambda.runtime.environment`) runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from lambdalab import constants
from lambdalab.awslambda.hosting import EnvironmentSpec
from lambdalab.awslambda.runtime import envvars, forkserver
from lambdalab.awslambda.runtime.cpu import CpuGate
from lambdalab.awslambda.runtime.environment import (
    EXIT_WAIT_S,
    MIB,
    PAGE_SIZE,
    Environment,
    LocalCapacityError,
)
from lambdalab.awslambda.runtime.interpreters import Interpreter, find_interpreter
from lambdalab.awslambda.runtime.packages import ensure_runtime_packages
from lambdalab.awslambda.runtime.probe import RuntimeCosts, runtime_costs
from lambdalab.clock import Clock, Clocks
from lambdalab.logs.function import FunctionLogs
from lambdalab.logs.store import LogStore
from lambdalab.logs.writer import LogWriter

LOG = logging.getLogger(__name__)

_START_TIMEOUT_S = 60.0  # a fork server imports the SDK before it is ready; generous on a loaded machine
# How long a spawn may wait for this machine (a full control socket, a failed fork, a listener that cannot bind)
# before it fails as a local error. A healthy fork server forks in milliseconds; this bounds a wedged one.
LOCAL_WAIT_LIMIT_S = 60.0
_RETRY_DELAYS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_LOCAL_ERRNOS = frozenset({errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EADDRINUSE, errno.ENOBUFS})


@dataclass(frozen=True)
class Runtime:
    """A runtime prepared on this machine: its interpreter, its packages and what an environment of it costs alone."""

    name: str
    interpreter: Interpreter
    site: Path
    costs: RuntimeCosts


def prepare_runtime(name: str, clocks: Clocks, cache: Path | None = None) -> Runtime:
    """Find the interpreter, build the runtime's packages and measure its costs (each once per machine, on the
    host's `clocks`). Blocking: seconds the first time, milliseconds after; call it off the event loop."""
    interpreter = find_interpreter(name)
    site = ensure_runtime_packages(interpreter, cache)
    return Runtime(name, interpreter, site, runtime_costs(interpreter, site, clocks))


class ForkServerProcess:
    """The host's side of one fork server: its process, its control socket and the spawns it has in flight."""

    def __init__(self, host: ProcessHost, runtime: Runtime) -> None:
        self.host = host
        self.runtime = runtime
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[int] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._spawns: dict[str, asyncio.Future[int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._config_file: Path | None = None
        self.address_space_base = 0
        self.gone = False

    @property
    def costs(self) -> RuntimeCosts:
        return self.runtime.costs

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        runtime = self.runtime
        config = {
            "site": str(runtime.site),
            "preload": list(forkserver.PRELOAD_MODULES),
            "costs": runtime.costs.imports_s,
            "tree": runtime.costs.tree,
            "startup_s": runtime.costs.startup_s,
            "preload_data": list(forkserver.PRELOAD_DATA),
            "data_costs": runtime.costs.data_s,
        }
        handle, name = tempfile.mkstemp(prefix="lambdalab-forkserver-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(config, out)
        self._config_file = Path(name)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        stderr: Any = None
        if self.host.run_dir is not None:
            self.host.run_dir.mkdir(parents=True, exist_ok=True)
            stderr = open(self.host.run_dir / "forkserver.log", "ab")  # noqa: SIM115 - handed to the child
        env = {"PATH": os.defpath, "LANG": "C.UTF-8"}
        command = [str(runtime.interpreter.executable), "-I", "-S", forkserver.__file__, "serve"]
        try:
            self._proc = subprocess.Popen(
                [*command, str(theirs.fileno()), str(os.getpid()), name],
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
        self._ready = self._loop.create_future()
        self.use_socket(ours)
        try:
            self.pid = await asyncio.wait_for(self._ready, timeout=_START_TIMEOUT_S)
        except TimeoutError:
            await self.stop()
            raise LocalCapacityError(
                f"the {runtime.name} fork server did not report ready within {_START_TIMEOUT_S:.0f} s"
            ) from None
        except BaseException:
            await self.stop()
            raise
        self.address_space_base = _address_space(self.pid)
        LOG.info("fork server for %s (%s) pid %s ready", runtime.name, runtime.interpreter.executable, self.pid)

    def use_socket(self, sock: socket.socket) -> None:
        """Talk to the fork server over `sock` (its end of a SOCK_SEQPACKET pair), on the running loop."""
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._control = sock
        self._loop.add_reader(sock.fileno(), self._on_control)

    async def stop(self) -> None:
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.send(json.dumps({"op": "stop"}).encode())
        proc = self._proc
        if proc is not None:
            clock = self.host.clocks.monotonic
            deadline = clock.now() + EXIT_WAIT_S
            while proc.poll() is None and clock.now() < deadline:
                await asyncio.sleep(0.01)
            if proc.poll() is None:
                LOG.warning("fork server pid %s did not stop within %.1f s; killing it", proc.pid, EXIT_WAIT_S)
                _kill_tree(proc.pid)
                proc.wait(timeout=EXIT_WAIT_S)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._close_control()
        for future in self._spawns.values():
            if not future.done():
                future.set_exception(LocalCapacityError("the environment host stopped"))
        self._spawns.clear()
        self._proc = None
        if self._config_file is not None:
            self._config_file.unlink(missing_ok=True)
            self._config_file = None

    def _close_control(self) -> None:
        sock, self._control = self._control, None
        if sock is not None and self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock.fileno())
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_writer(sock.fileno())
            sock.close()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # --- sending ----------------------------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        """Send one control message. A full socket is backpressure: wait until it drains, however long the fork
        server needs, as long as it lives."""
        data = json.dumps(message).encode()
        while True:
            sock = self._control
            if sock is None or self.gone:
                raise LocalCapacityError(f"the {self.runtime.name} fork server is not running")
            try:
                socket.send_fds(sock, [data], fds or [])
                return
            except BlockingIOError:
                await self._wait_writable(sock)
            except OSError as exc:
                raise LocalCapacityError(f"the {self.runtime.name} fork server's socket failed: {exc}") from None

    async def _wait_writable(self, sock: socket.socket) -> None:
        assert self._loop is not None
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()
            self._loop.add_writer(sock.fileno(), self._on_writable)
        await asyncio.shield(self._writable)

    def _on_writable(self) -> None:
        if self._control is not None and self._loop is not None:
            self._loop.remove_writer(self._control.fileno())
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def send_soon(self, message: dict[str, Any]) -> None:
        if self._control is None or self._loop is None:
            return
        task = self._loop.create_task(self.send(message))
        self._tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.debug("fork server message not delivered: %s", task.exception())

    async def fork(self, env_id: str, request: dict[str, Any], fds: list[int]) -> int:
        """Ask for a child and wait for its pid; the fds are the caller's to close."""
        assert self._loop is not None
        future: asyncio.Future[int] = self._loop.create_future()
        self._spawns[env_id] = future
        try:
            await self.send(request, fds)
            # A healthy fork server answers in milliseconds; the bound only catches a wedged one.
            return await asyncio.wait_for(future, timeout=LOCAL_WAIT_LIMIT_S)
        except TimeoutError:
            raise LocalCapacityError(
                f"the {self.runtime.name} fork server did not fork {env_id} within {LOCAL_WAIT_LIMIT_S:.0f} s"
            ) from None
        finally:
            self._spawns.pop(env_id, None)

    # --- receiving ----------------------------------------------------------------------------------------------------

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
                self._on_gone()
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
                future.set_exception(_SpawnFailed(str(message.get("error")), int(message.get("errno") or 0)))
        elif op == "exited":
            env = self.host.environments.get(message["env_id"])
            if env is not None and env.forkserver is self:
                env.on_exit(
                    int(message["pid"]), message.get("exit_code"), message.get("signal"), message.get("maxrss_kb")
                )
        else:
            LOG.warning("fork server sent an unknown message %r", op)

    def _on_gone(self) -> None:
        self.gone = True
        self._close_control()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(LocalCapacityError(f"the {self.runtime.name} fork server exited before ready"))
        for future in self._spawns.values():
            if not future.done():
                future.set_exception(LocalCapacityError(f"the {self.runtime.name} fork server exited"))
        for env in list(self.host.environments.values()):
            if env.forkserver is self and env.alive:
                if not self.host.stopping:
                    LOG.warning("fork server gone: environment %s is dead", env.spec.env_id)
                env.killing = True
                if not env.exited.done():
                    env.exited.set_result(None)
                env.die(f"the {self.runtime.name} fork server exited", local=True)


class _SpawnFailed(Exception):
    def __init__(self, message: str, err: int) -> None:
        super().__init__(message)
        self.errno = err


class ProcessHost:
    """Owns the fork servers (one per runtime, started on first use) and every environment forked from them."""

    def __init__(
        self,
        run_dir: Path | None = None,
        *,
        memory_poll_s: float = 0.02,
        init_concurrency: int | None = None,
        cache_dir: Path | None = None,
        logs: FunctionLogs | None = None,
        clocks: Clocks,
    ) -> None:
        self.run_dir = run_dir
        self.clocks = clocks  # the local cloud's (server.py); the environments and the runtime probe read these
        # Where environments write their log streams: the local cloud's CloudWatch Logs, or a store of the host's own.
        self._own_log_writer: LogWriter | None = None
        if logs is None:
            store = LogStore(constants.DEFAULT_REGION, "", epoch=clocks.epoch)
            self._own_log_writer = LogWriter(store)
            logs = FunctionLogs(
                self._own_log_writer, region=constants.DEFAULT_REGION, account_id="", epoch=clocks.epoch
            )
        self.logs = logs
        self.memory_poll_s = memory_poll_s
        self.cache_dir = cache_dir
        self.gate = CpuGate(init_concurrency if init_concurrency is not None else constants.default_init_concurrency())
        self.environments: dict[str, Environment] = {}
        self._watched: dict[str, Environment] = {}  # initialising or busy: their memory is checked
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: dict[str, ForkServerProcess] = {}
        self._preparing: dict[str, asyncio.Future[ForkServerProcess]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._started = False

    @property
    def forkserver_pids(self) -> list[int]:
        return [server.pid for server in self._servers.values() if server.pid is not None]

    @property
    def forkserver_pid(self) -> int | None:
        """The first fork server's pid (most hosts run one runtime)."""
        pids = self.forkserver_pids
        return pids[0] if pids else None

    def runtime(self, name: str) -> Runtime | None:
        server = self._servers.get(name)
        return server.runtime if server is not None else None

    # --- start / stop -----------------------------------------------------------------------------------------------

    async def start(self, runtimes: tuple[str, ...] = ()) -> None:
        """Start watching memory; start the fork servers of `runtimes` now (others start on their first spawn)."""
        if self._started:
            raise RuntimeError("the environment host is already started")
        self._started = True
        self.stopping = False
        self._loop = asyncio.get_running_loop()
        _raise_fd_limit()
        if self._own_log_writer is not None:
            self._own_log_writer.start()
        self._monitor = self._loop.create_task(self._watch_memory())
        for name in runtimes:
            await self.prepare(name)

    async def prepare(self, name: str) -> ForkServerProcess:
        """The running fork server of runtime `name`, started (and the runtime prepared) on first call."""
        server = self._servers.get(name)
        if server is not None and not server.gone:
            return server
        if self._loop is None or self.stopping:
            raise LocalCapacityError("the environment host is not started")
        pending = self._preparing.get(name)
        if pending is None:
            pending = self._loop.create_future()
            self._preparing[name] = pending
            task = self._loop.create_task(self._start_server(name, pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(pending)

    async def _start_server(self, name: str, pending: asyncio.Future[ForkServerProcess]) -> None:
        try:
            runtime = await asyncio.to_thread(prepare_runtime, name, self.clocks, self.cache_dir)
            server = ForkServerProcess(self, runtime)
            await server.start()
        except BaseException as exc:
            self._preparing.pop(name, None)
            if not pending.done():
                pending.set_exception(exc)
            return
        self._servers[name] = server
        self._preparing.pop(name, None)
        if not pending.done():
            pending.set_result(server)

    async def stop(self) -> None:
        """Kill every environment and the fork servers; leave no process behind."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        self.stopping = True
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for server in list(self._servers.values()):
            await server.stop()
        for env in list(self.environments.values()):
            env.killing = True
            if not env.exited.done():
                env.exited.set_result(None)
            env.die("the local cloud stopped", local=True)
            env.close_stream()
        await self._close_servers()
        self._servers.clear()
        if self._own_log_writer is not None:
            self._own_log_writer.close()
        self._started = False

    async def _close_servers(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        servers = [env.server.close() for env in self.environments.values()]
        self.environments.clear()
        self._watched.clear()
        if servers:
            await asyncio.gather(*servers, return_exceptions=True)

    # --- spawning ---------------------------------------------------------------------------------------------------

    async def spawn(self, spec: EnvironmentSpec) -> Environment:
        """Create an environment; returns once its process exists (INIT then runs in it; see wait_ready).

        Waits while this machine is short of forks or sockets; raises LocalCapacityError if waiting was not enough,
        ValueError for a bad spec."""
        existing = self.environments.get(spec.env_id)
        if existing is not None and existing.alive:
            raise ValueError(f"environment {spec.env_id} already exists")
        envvars.check_user_environment(spec.user_environment)
        if not spec.code_dir.is_dir():
            raise ValueError(f"environment {spec.env_id}: code directory {spec.code_dir} does not exist")
        server = await self.prepare(spec.runtime)
        env = Environment(self, server, spec)
        await _with_local_retries(
            f"open a Runtime API listener for {spec.env_id}", env.server.start, self.clocks.monotonic
        )
        self.environments[spec.env_id] = env
        self.watch(env, True)
        try:
            await self.launch(env)
        except BaseException:
            self.environments.pop(spec.env_id, None)
            self.watch(env, False)
            env.close_gate()
            await env.server.close()
            raise
        env.arm_init_cap()
        return env

    async def launch(self, env: Environment) -> None:
        """Fork a process for `env` (first spawn, or INIT re-run after a timeout)."""
        spec = env.spec
        server = env.forkserver
        assert isinstance(server, ForkServerProcess)  # every environment this host launches, it spawned
        environ = envvars.build_environment(
            envvars.EnvironmentVariablesInput(
                function_name=spec.function_name,
                version=spec.version,
                handler=spec.handler,
                runtime=spec.runtime,
                memory_mb=spec.memory_mb,
                region=spec.region,
                log_group=env.log.group,
                init_type=spec.init_type,
                code_dir=spec.code_dir,
                runtime_api=env.server.address,
                endpoint_url=spec.endpoint_url,
                user_environment=spec.user_environment,
                runtime_dir=str(server.runtime.site),
                xray_daemon_address=spec.xray_daemon_address,
                log_stream_name=env.log.stream,
                service_endpoints=spec.service_endpoints,
                log_variables=env.log.config.runtime_variables(),
            )
        )
        request = {
            "op": "spawn",
            "env_id": spec.env_id,
            "environ": environ,
            "task_root": str(spec.code_dir),
            "paths": [str(spec.code_dir), *(str(p) for p in spec.paths)],
            "handler": spec.handler,
            "address_space_limit": server.address_space_base + spec.memory_mb * MIB + 1024 * MIB,
        }

        async def fork_once() -> int:
            read_fd, write_fd = os.pipe()
            telemetry_read, telemetry_write = os.pipe()
            host_gate, child_gate = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            env.attach_log(read_fd)
            env.attach_telemetry(telemetry_read)
            env.attach_gate(host_gate)
            try:
                return await server.fork(spec.env_id, request, [write_fd, child_gate.fileno(), telemetry_write])
            except _SpawnFailed as exc:
                env.close_output()
                env.close_gate()
                if exc.errno in _LOCAL_ERRNOS:
                    raise OSError(exc.errno, str(exc)) from None  # retried: the machine is short of something
                raise LocalCapacityError(f"the fork server could not start {spec.env_id}: {exc}") from None
            finally:
                os.close(write_fd)
                os.close(telemetry_write)
                child_gate.close()

        env.pid = await _with_local_retries(f"fork {spec.env_id}", fork_once, self.clocks.monotonic)

    def retire(self, env: Environment) -> None:
        """A dead environment's listener closes in the background; once its process is reaped it leaves the table."""
        if self._loop is None:
            return
        task = self._loop.create_task(self._retire_later(env))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retire_later(self, env: Environment) -> None:
        await env.server.close()
        if not env.exited.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(env.exited), timeout=EXIT_WAIT_S)
        if self.environments.get(env.spec.env_id) is env:
            del self.environments[env.spec.env_id]

    # --- memory -----------------------------------------------------------------------------------------------------

    def watch(self, env: Environment, watched: bool) -> None:
        if watched:
            self._watched[env.spec.env_id] = env
        else:
            self._watched.pop(env.spec.env_id, None)

    async def _watch_memory(self) -> None:
        """Kill an initialising or busy environment whose resident set is over its memory size."""
        while True:
            watched = [env for env in self._watched.values() if not env.killing]
            for env in watched:
                if env.memory_exceeded():
                    LOG.info("environment %s over %d MB: killing it", env.spec.env_id, env.spec.memory_mb)
                    env.oom = True
                    env.killing = True
                    with contextlib.suppress(LocalCapacityError):
                        await env.forkserver.send({"op": "kill", "env_id": env.spec.env_id})
            # Bound the cost: at most ~500 /proc reads per second however many environments are busy (at 2,000 the
            # reads were 4 % of the event loop in the flash sale, with ~50 environments busy).
            await asyncio.sleep(max(self.memory_poll_s, len(watched) / 500.0))


async def _with_local_retries(what: str, attempt: Callable[[], Any], clock: Clock) -> Any:
    """Run `attempt`; an OSError of a local shortage (EAGAIN, ENOMEM, EMFILE, EADDRINUSE, ...) is retried with
    backoff for up to LOCAL_WAIT_LIMIT_S, then it is a LocalCapacityError."""
    begin = clock.now()
    for delay in (*_RETRY_DELAYS_S, None):
        try:
            return await attempt()
        except OSError as exc:
            if exc.errno not in _LOCAL_ERRNOS:
                raise LocalCapacityError(f"could not {what}: {exc}") from None
            waited = clock.now() - begin
            if delay is None or waited + delay > LOCAL_WAIT_LIMIT_S:
                raise LocalCapacityError(f"could not {what} after waiting {waited:.1f} s: {exc}") from None
            LOG.info("this machine is short of resources (%s); retrying to %s in %.2f s", exc, what, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _address_space(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[0]) * PAGE_SIZE
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
