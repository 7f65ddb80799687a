"""The fork server: one process that has imported the Lambda runtime client and forks one child per environment.

Run as a script by :class:`lambdalab.awslambda.environments.EnvironmentHost` (``python -I forkserver.py FD``); it
imports only the standard library and ``awslambdaric`` so that a child's ``sys.modules`` holds nothing of lambdalab.

Why a fork server: a fresh ``python -m awslambdaric`` needs ~75 ms before the function's own INIT can begin; a fork
of a process that already imported the runtime needs a few milliseconds.

The native ``runtime_client`` extension of awslambdaric reads ``AWS_LAMBDA_RUNTIME_API`` once, in a C++ static
initialiser, when the shared object is loaded (``static const std::string ENDPOINT(getenv(...))`` in
``runtime_client.cpp``). A child forked after that load would talk to whatever address the fork server had. So the
fork server imports ``awslambdaric.bootstrap`` with the native module hidden, and every child loads the extension
itself, after its own ``AWS_LAMBDA_RUNTIME_API`` is set, and hands it to ``awslambdaric.lambda_runtime_client``.
The fork server preloads ``libstdc++`` so that the child's load of the extension costs little.

Control protocol, over an ``AF_UNIX``/``SOCK_SEQPACKET`` socket (one JSON object per message; file descriptors
ride along with SCM_RIGHTS):

host → server  ``{"op": "spawn", "env_id", "environ", "code_dir", "handler", "address_space_limit"}`` + [log fd]
host → server  ``{"op": "kill", "env_id"}``   SIGKILL the child's process group (only if it is still alive)
host → server  ``{"op": "stop"}``             kill every child, reap them, exit
server → host  ``{"op": "ready", "pid"}``
server → host  ``{"op": "spawned", "env_id", "pid"}`` | ``{"op": "spawn_failed", "env_id", "error"}``
server → host  ``{"op": "exited", "env_id", "pid", "exit_code", "signal", "maxrss_kb"}``  as soon as it is reaped

A child writes ``INIT_MARK <epoch seconds>\\n`` as the very first bytes of its log pipe, just before it calls
``bootstrap.run``: that is when the function's INIT begins (the host strips the line from the logs).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import gc
import importlib
import json
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import Any

LOG = logging.getLogger(__name__)

INIT_MARK = b"\x00lambdalab-init-start "
MAX_MESSAGE = 1 << 20  # a spawn request carries at most 4 KB of user environment; 1 MiB is ample
PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 5.0


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent (thread) dies (Linux prctl)."""
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")


# What the runtime imports lazily on its first calls (http.client for /init/error, the thread pool for polling, decimal
# for marshalling, the hooks runner): imported once here so no child pays for them.
_WARM_MODULES = (
    "awslambdaric.bootstrap",
    "awslambdaric.lambda_config",
    "awslambdaric.lambda_literals",
    "awslambdaric.lambda_runtime_hooks_runner",
    "concurrent.futures.thread",
    "decimal",
    "http.client",
    "importlib.util",
)


def _preimport_runtime() -> None:
    """Import awslambdaric (Python parts) without loading its native client, and warm what INIT will need."""
    sys.modules["runtime_client"] = None  # type: ignore[assignment]  # makes `import runtime_client` fail
    try:
        for name in _WARM_MODULES:
            importlib.import_module(name)
        lrc = importlib.import_module("awslambdaric.lambda_runtime_client")
    finally:
        del sys.modules["runtime_client"]
    if lrc.runtime_client is not None:
        raise RuntimeError(
            "awslambdaric's native runtime_client was loaded in the fork server; children would share it"
        )
    libstdcxx = ctypes.util.find_library("stdc++")
    if libstdcxx:
        ctypes.CDLL(libstdcxx, mode=ctypes.RTLD_GLOBAL)


class ForkServer:
    """The server loop: spawn children on request, reap them, report their exits."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: dict[int, str] = {}  # pid -> env_id
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.control.sendall(json.dumps(message).encode())
        except OSError as exc:
            LOG.debug("fork server: cannot report %s to the host: %s", message.get("op"), exc)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        self.selector.register(self.control, selectors.EVENT_READ, "control")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.send({"op": "ready", "pid": os.getpid()})
        running = True
        while running:
            for key, _ in self.selector.select(timeout=1.0):
                if key.data == "wake":
                    self._drain_wakeups()
                else:
                    running = self._on_control()
                    if not running:
                        break
            self._reap()
            if os.getppid() == 1:  # the host is gone and PDEATHSIG did not fire (it is per thread): leave
                running = False
        self._kill_all()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _on_control(self) -> bool:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.control, MAX_MESSAGE, 4)
        except OSError as exc:
            LOG.warning("fork server: control socket failed: %s", exc)
            return False
        if not data:
            return False  # the host closed the control socket
        message = json.loads(data)
        op = message.get("op")
        if op == "spawn":
            self._spawn(message, fds)
        elif op == "kill":
            self._kill(message["env_id"])
            for fd in fds:
                os.close(fd)
        elif op == "stop":
            for fd in fds:
                os.close(fd)
            return False
        else:
            LOG.warning("fork server: unknown op %r", op)
            for fd in fds:
                os.close(fd)
        return True

    def _kill(self, env_id: str) -> None:
        for pid, owner in self.children.items():
            if owner == env_id:
                _kill_group(pid)

    def _spawn(self, request: dict[str, Any], fds: list[int]) -> None:
        env_id = request["env_id"]
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            self.send({"op": "spawn_failed", "env_id": env_id, "error": f"expected 1 log fd, got {len(fds)}"})
            return
        log_fd = fds[0]
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(log_fd)
            self.send({"op": "spawn_failed", "env_id": env_id, "error": f"fork: {exc}"})
            return
        if pid == 0:
            _child_main(request, log_fd, keep_out={self.control.fileno(), self.wake_r, self.wake_w})
        os.close(log_fd)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also done by the child; whichever runs first wins, both are harmless
        self.children[pid] = env_id
        self.send({"op": "spawned", "env_id": env_id, "pid": pid})

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            env_id = self.children.pop(pid, None)
            if env_id is None:
                continue
            exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            message = {"op": "exited", "env_id": env_id, "pid": pid, "exit_code": exit_code, "signal": sig}
            message["maxrss_kb"] = usage.ru_maxrss  # the child's peak resident set, exact even after a kill
            self.send(message)

    def _kill_all(self) -> None:
        for pid in list(self.children):
            _kill_group(pid)
        deadline = time.monotonic() + _STOP_GRACE_S
        while self.children and time.monotonic() < deadline:
            self._reap()
            if self.children:
                time.sleep(0.005)
        if self.children:
            LOG.warning("fork server: %d children not reaped after %.1f s", len(self.children), _STOP_GRACE_S)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# --- the child ------------------------------------------------------------------------------------------------------


def _child_main(request: dict[str, Any], log_fd: int, keep_out: set[int]) -> None:
    """Become one execution environment: never returns into the fork server's loop."""
    code = 1
    try:
        _become_environment(request, log_fd, keep_out)
        code = _run_runtime(request["handler"])
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        with contextlib.suppress(BaseException):  # stderr is the log pipe; nothing else can be told
            traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):  # whatever happens, never return into the fork server's loop
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    with contextlib.suppress(BaseException):
        sys.stderr.write(f"{exc.code}\n")
    return 1


def _become_environment(request: dict[str, Any], log_fd: int, keep_out: set[int]) -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # what a fresh Python process has
    os.setpgid(0, 0)
    set_parent_death_signal(signal.SIGKILL)
    for fd in keep_out:
        with contextlib.suppress(OSError):
            os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    # Nothing of the fork server's (control socket, selector, wake-up pipe) stays open in an environment.
    os.closerange(3, max(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1024))
    # The fork server's own logging must not echo the function's records: a fresh root logger, as in a new process.
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)
    logging.root.setLevel(logging.WARNING)
    sys.argv[:] = [str(sys.modules["awslambdaric.bootstrap"].__file__)]
    # One place sets the environment: exactly what the host built (reserved variables + the function's own).
    os.environ.clear()
    os.environ.update(request["environ"])
    code_dir = request["code_dir"]
    os.chdir(code_dir)
    sys.path[:] = [code_dir, *(p for p in sys.path if p and p != _SCRIPT_DIR)]
    limit = request.get("address_space_limit")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    if os.environ.get("AWS_LAMBDA_LOG_FORMAT") or os.environ.get("AWS_LAMBDA_LOG_LEVEL"):
        importlib.reload(sys.modules["awslambdaric.bootstrap"])  # it reads both variables at import time


def _run_runtime(handler: str) -> int:
    lrc = sys.modules["awslambdaric.lambda_runtime_client"]
    bootstrap = sys.modules["awslambdaric.bootstrap"]
    config = sys.modules["awslambdaric.lambda_config"]
    # The native client loads here, so its static initialiser reads this child's AWS_LAMBDA_RUNTIME_API.
    runtime_client = importlib.import_module("runtime_client")
    runtime_client.initialize_client(lrc._user_agent())
    vars(lrc)["runtime_client"] = runtime_client  # what `import runtime_client` in that module would have bound
    # Same choice as `python -m awslambdaric`: poll /next from a thread on the runtimes that do so.
    use_thread = os.environ.get("AWS_EXECUTION_ENV") in config.LambdaConfigProvider.SUPPORTED_THREADPOLLING_ENVS
    client = lrc.LambdaRuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"], use_thread)
    os.write(1, INIT_MARK + repr(time.time()).encode() + b"\n")
    bootstrap.run(handler, client)
    return 0


_SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="forkserver %(levelname)s %(message)s")
    if sys.path and os.path.abspath(sys.path[0] or ".") == _SCRIPT_DIR:
        sys.path.pop(0)  # run as a script: its folder must not shadow top-level names in children
    host_pid = int(argv[2]) if len(argv) > 2 else 0
    set_parent_death_signal(signal.SIGKILL)
    if host_pid and os.getppid() != host_pid:
        return 1  # the host died before PDEATHSIG was armed
    control = socket.socket(fileno=int(argv[1]))
    _preimport_runtime()
    gc.collect()
    gc.freeze()  # keep the pre-imported objects out of the collector so children do not copy their pages
    ForkServer(control).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
