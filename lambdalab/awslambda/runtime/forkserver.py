"""The fork server: one process per runtime that has imported the Lambda runtime client and the SDK, and forks one
child per execution environment.

Run as a script by :mod:`lambdalab.awslambda.runtime.host` with the runtime's own interpreter, isolated
(``python3.X -I -S forkserver.py serve FD HOST_PID CONFIG``): it imports only the standard library and the runtime's
packages (``awslambdaric``, ``boto3`` ... from the folder of :mod:`lambdalab.awslambda.runtime.packages`), so a
child's ``sys.modules`` and ``sys.path`` hold nothing of the lab.

Why a fork server: a fresh interpreter needs tens of milliseconds of CPU before the function's own INIT can begin,
and ``import boto3`` a few hundred more. On AWS every environment has its own CPU; here a storm of cold starts would
share two cores and stretch each other 10-20x. So the fork server imports them once and the children share those
pages. What a child has not asked for it does not see: the pre-imported SDK modules are taken out of the child's
``sys.modules`` and put back only when the function imports them (a meta-path finder, :class:`Preloaded`), and the
child then *waits* as long as that import costs when done alone in a fresh interpreter (measured once per machine
and runtime by :mod:`lambdalab.awslambda.runtime.probe`, replayed as a sleep, not as CPU). The runtime's own start
(interpreter + runtime client) is replayed the same way at the start of INIT. A function that ships its own copy of
a package (in its code folder, its dependencies or a layer) imports that copy for real, as on AWS.

The same for the SDK's data that every client reads when it is made, whatever its service (``PRELOAD_DATA``: the
endpoints, partitions, default configuration and retry rules — a quarter of the CPU of ``boto3.client(...)``): the fork
server parses those files once (:class:`PreparsedData`); a child's first load of each is handed the parsed object and
waits as long as parsing it alone takes (measured by the probe). Later loads in the same child (another session)
parse the file for real, as they would on AWS.

The native ``runtime_client`` extension of awslambdaric reads ``AWS_LAMBDA_RUNTIME_API`` once, in a C++ static
initialiser, when the shared object is loaded. A child forked after that load would talk to whatever address the
fork server had. So the fork server imports ``awslambdaric.bootstrap`` with the native module hidden, and every child
loads the extension itself, after its own ``AWS_LAMBDA_RUNTIME_API`` is set. The fork server preloads ``libstdc++``
so that the child's load of the extension costs little.

Control protocol, over an ``AF_UNIX``/``SOCK_SEQPACKET`` socket (one JSON object per message; file descriptors
ride along with SCM_RIGHTS):

host → server  ``{"op": "spawn", "env_id", "environ", "task_root", "paths", "handler", "address_space_limit"}``
               + [log fd, gate fd]
host → server  ``{"op": "kill", "env_id"}``   SIGKILL the child's process group (only if it is still alive)
host → server  ``{"op": "stop"}``             kill every child, reap them, exit
server → host  ``{"op": "ready", "pid"}``
server → host  ``{"op": "spawned", "env_id", "pid"}`` | ``{"op": "spawn_failed", "env_id", "error", "errno"}``
server → host  ``{"op": "exited", "env_id", "pid", "exit_code", "signal", "maxrss_kb"}``  as soon as it is reaped

Gate protocol, over each child's own ``SOCK_SEQPACKET`` socket (the host runs a FIFO of CPU tokens for INIT code):
child → host ``acquire`` (then blocks until ``go``), ``release`` (a replayed wait begins), ``end <seconds>
<slept>`` (INIT code ended; the seconds it spent blocked waiting for ``go``, and asleep in replayed costs and INIT's
own sleeps), ``restored`` (the first pre-imported module was handed to the function: its memory now counts);
host → child ``go``.

A child writes ``INIT_MARK <epoch seconds> <run-queue seconds> <CPU seconds>\\n`` as the very first bytes of its log
pipe: that is when INIT begins (the host strips the line from the logs). The function's INIT code asks for a
token only once it has used ``GATE_AFTER_CPU_S`` of CPU (a profiling interval timer, ``ITIMER_PROF``): an INIT that
sleeps or imports little never queues.

``probe`` mode (``python3.X -I -S -X importtime forkserver.py probe SITE``) imports what ``serve`` imports, prints
``baseline`` on stdout when the runtime client is loaded, then imports the SDK and prints a JSON line with resident
set sizes; the probe module reads the import times from stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import fcntl
import gc
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from types import ModuleType
from typing import Any

LOG = logging.getLogger(__name__)

INIT_MARK = b"\x00lambdalab-init-start "
PROBE_MARK = "lambdalab-probe-baseline"
MAX_MESSAGE = 1 << 20  # a spawn request carries at most 4 KB of user environment; 1 MiB is ample
PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 5.0
GATE_ACQUIRE = b"acquire"
GATE_RELEASE = b"release"
GATE_RESTORED = b"restored"
GATE_END = b"end"
GATE_GO = b"go"
GATE_FD = 3  # the environment's end of the CPU gate socket
TELEMETRY_FD = 4  # awslambdaric's log frames (_LAMBDA_TELEMETRY_LOG_FD)
GATE_AFTER_CPU_S = 0.02  # INIT code asks for a CPU token once it has used this much CPU
_sleep = time.sleep  # the real one: INIT's time.sleep is replaced while INIT code runs

# What the runtime imports lazily on its first calls (http.client for /init/error, the thread pool for polling, decimal
# for marshalling, the hooks runner): imported once here so no child pays for them. They are part of the runtime's
# start, which is replayed as a whole.
BASELINE_MODULES = (
    "awslambdaric.bootstrap",
    "awslambdaric.lambda_config",
    "awslambdaric.lambda_literals",
    "awslambdaric.lambda_runtime_hooks_runner",
    "concurrent.futures.thread",
    "decimal",
    "http.client",
    "importlib.util",
)
# What Lambda's Python runtime provides beyond the runtime client; pre-imported, restored on demand.
PRELOAD_MODULES = ("boto3",)
# botocore data files (under botocore/data, no extension) that making any client loads: parsed once, handed over once.
PRELOAD_DATA = ("endpoints", "partitions", "sdk-default-configuration", "_retry")


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent (thread) dies (Linux prctl)."""
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")


def _use_site(site: str) -> None:
    """The import path: the standard library, then the runtime's packages (nothing else)."""
    script_dir = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != script_dir] + [site]


def _import_baseline() -> None:
    """Import awslambdaric (Python parts) without loading its native client, and warm what INIT will need."""
    sys.modules["runtime_client"] = None  # type: ignore[assignment]  # makes `import runtime_client` fail
    try:
        for name in BASELINE_MODULES:
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


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- the server --------------------------------------------------------------------------------------------------


class ForkServer:
    """The server loop: spawn children on request, reap them, report their exits."""

    def __init__(
        self,
        control: socket.socket,
        config: dict[str, Any],
        preloaded: dict[str, ModuleType],
        preparsed: PreparsedData | None = None,
    ) -> None:
        self.control = control
        self.config = config
        self.preloaded = preloaded
        self.preparsed = preparsed
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
            return True
        for fd in fds:
            os.close(fd)
        if op == "kill":
            self._kill(message["env_id"])
        elif op == "stop":
            return False
        else:
            LOG.warning("fork server: unknown op %r", op)
        return True

    def _kill(self, env_id: str) -> None:
        for pid, owner in self.children.items():
            if owner == env_id:
                _kill_group(pid)

    def _spawn(self, request: dict[str, Any], fds: list[int]) -> None:
        env_id = request["env_id"]
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            self.send({"op": "spawn_failed", "env_id": env_id, "error": f"expected 3 fds, got {len(fds)}", "errno": 0})
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.send({"op": "spawn_failed", "env_id": env_id, "error": f"fork: {exc}", "errno": exc.errno or 0})
            return
        if pid == 0:
            _child_main(request, fds[0], fds[1], fds[2], self)
        for fd in fds:
            os.close(fd)
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


class Gate:
    """The child's side of the host's CPU gate for INIT code. Only the thread that opened it talks to the host; any
    other thread (and every thread once INIT code has ended) just waits where a replayed cost is due."""

    def __init__(self, sock: socket.socket | None) -> None:
        self._sock = sock
        self._busy = False  # a gate operation is running: a SIGPROF-driven acquire waits for its end
        self._deferred = False
        self._owner: int | None = None
        self._held = False
        self._restored_sent = False
        self.waited_s = 0.0  # blocked waiting for tokens, in total
        self.slept_s = 0.0  # in replayed costs and INIT's own sleeps: never waiting for the machine

    def _send(self, message: bytes) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.send(message)
            return True
        except OSError:
            self._sock = None  # the host is gone or closed its side: run ungated
            return False

    def on_cpu_used(self) -> None:
        """The SIGPROF handler: INIT code has used its free CPU; take a token (after any gate operation under way)."""
        if self._busy:
            self._deferred = True
        else:
            self.acquire()

    def acquire(self) -> None:
        """Ask for a CPU token and block until the host grants it."""
        if self._owner not in (None, threading.get_ident()) or self._held:
            return
        self._owner = threading.get_ident()
        if not self._send(GATE_ACQUIRE):
            return
        begin = time.monotonic()
        while self._sock is not None:
            try:
                data = self._sock.recv(64)
            except InterruptedError:
                continue
            except OSError:
                self._sock = None
                break
            if not data or data == GATE_GO:
                break
        self.waited_s += time.monotonic() - begin
        self._held = True

    def release(self) -> None:
        if self._held and self._owner == threading.get_ident():
            self._held = False
            self._send(GATE_RELEASE)

    def end_init(self) -> None:
        """INIT code is over: give the token back; from now on replayed costs are plain waits."""
        self._held = False
        self._owner = -1  # no thread is the owner any more
        self._send(GATE_END + b" " + repr(self.waited_s).encode() + b" " + repr(self.slept_s).encode())

    def wait(self, seconds: float) -> None:
        """A replayed cost: hand the token back while waiting (waiting needs no CPU), then queue for it again."""
        if seconds <= 0:
            return
        self._busy = True
        try:
            owner = self._held and self._owner == threading.get_ident()
            if owner:
                self.release()
            _sleep(seconds)
            if self._owner != -1:  # during INIT
                self.slept_s += seconds
        finally:
            self._busy = False
        if owner or self._deferred:
            self._deferred = False
            self.acquire()

    def restored(self) -> None:
        if not self._restored_sent:
            self._restored_sent = True
            self._send(GATE_RESTORED)


class _Restore(importlib.abc.Loader):
    """Hands back a module the fork server already executed, exactly as it was (its own spec included)."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self._module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec  # the import system set ours; the module keeps the one it was loaded with


class Preloaded(importlib.abc.MetaPathFinder):
    """Puts pre-imported runtime modules back on first import, after the wait that import costs when done alone.

    A module comes back with what it imported when it was first loaded (its import-time subtree) and its parent
    packages, so their identities are those of the fork server's objects. When the function's own path (code folder,
    dependencies, layers) provides a top-level package of that set, or one of them is already imported as another
    object, nothing is restored and the import runs for real, from the function's path or the runtime's folder, as
    on AWS.
    """

    def __init__(
        self,
        stash: dict[str, ModuleType],
        costs: dict[str, float],
        tree: dict[str, list[str]],
        own_paths: list[str],
        gate: Gate,
    ) -> None:
        self._stash = stash
        self._costs = costs
        self._tree = tree
        self._own_paths = own_paths
        self._gate = gate
        self._shadow: dict[str, bool] = {}
        self.charged_s = 0.0

    def _shadowed(self, top: str) -> bool:
        known = self._shadow.get(top)
        if known is None:
            known = importlib.machinery.PathFinder.find_spec(top, self._own_paths) is not None
            self._shadow[top] = known
        return known

    def _closure(self, name: str) -> set[str]:
        members: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current in members:
                continue
            members.add(current)
            todo.extend(self._tree.get(current, ()))
            parent = current.rpartition(".")[0]
            if parent:
                todo.append(parent)
        return {m for m in members if m in self._stash}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        module = self._stash.get(fullname)
        if module is None:
            return None
        closure = self._closure(fullname)
        for member in closure:
            if self._shadowed(member.partition(".")[0]):
                return None
            present = sys.modules.get(member)
            if present is not None and present is not self._stash[member]:
                return None
        cost = 0.0
        for member in closure:
            cost += self._costs.get(member, 0.0)
            restored = self._stash.pop(member)
            if member != fullname:
                sys.modules[member] = restored
        self.charged_s += cost
        self._gate.restored()
        self._gate.wait(cost)
        return importlib.util.spec_from_loader(fullname, _Restore(module))


def botocore_data_dir() -> str:
    """Where the runtime's botocore keeps its data files (botocore imported)."""
    return os.path.join(os.path.dirname(sys.modules["botocore"].__file__ or ""), "data")


def parse_data(name: str) -> Any:
    """One botocore data file, parsed as botocore parses it (`JSONFileLoader`)."""
    loaders = importlib.import_module("botocore.loaders")
    return loaders.JSONFileLoader().load_file(os.path.join(botocore_data_dir(), name))


class PreparsedData:
    """botocore data files the fork server parsed before forking. `install` wraps botocore's `JSONFileLoader.load_file`
    (the class object children restore with botocore); in a child, the first load of a file gets the parsed object
    after waiting what parsing it alone costs, through the child's gate (no CPU token held meanwhile)."""

    def __init__(self, names: list[str], costs: dict[str, float]) -> None:
        directory = botocore_data_dir()
        self._data: dict[str, Any] = {}
        self._costs: dict[str, float] = {}
        for name in names:
            data = parse_data(name)
            if data is not None:  # a botocore without this file: the child parses whatever it has
                path = os.path.join(directory, name)
                self._data[path] = data
                self._costs[path] = float(costs.get(name, 0.0))
        self.gate: Gate | None = None
        self.charged_s = 0.0

    def install(self) -> None:
        loader_class = importlib.import_module("botocore.loaders").JSONFileLoader
        original = loader_class.load_file
        preparsed = self

        def load_file(loader: Any, file_path: str) -> Any:
            data = preparsed.take(file_path)
            return original(loader, file_path) if data is None else data

        load_file.__doc__ = original.__doc__
        loader_class.load_file = load_file

    def take(self, file_path: str) -> Any:
        data = self._data.pop(file_path, None)
        if data is not None:
            cost = self._costs.pop(file_path, 0.0)
            self.charged_s += cost
            if self.gate is not None:
                self.gate.wait(cost)
            else:
                _sleep(cost)
        return data


def _child_main(request: dict[str, Any], log_fd: int, gate_fd: int, telemetry_fd: int, server: ForkServer) -> None:
    """Become one execution environment: never returns into the fork server's loop."""
    code = 1
    try:
        gate = _become_environment(request, log_fd, gate_fd, telemetry_fd, server)
        code = _run_runtime(request["handler"], gate, float(server.config.get("startup_s") or 0.0))
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


def _become_environment(
    request: dict[str, Any], log_fd: int, gate_fd: int, telemetry_fd: int, server: ForkServer
) -> Gate:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # what a fresh Python process has
    os.setpgid(0, 0)
    set_parent_death_signal(signal.SIGKILL)
    for fd in (server.control.fileno(), server.wake_r, server.wake_w):
        with contextlib.suppress(OSError):
            os.close(fd)
    # Fixed numbers: copies above the targets first, so no received fd sits on a target when it is placed.
    gate_fd, telemetry_fd = _above(gate_fd), _above(telemetry_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    gate_fd = _place(gate_fd, GATE_FD)
    telemetry_fd = _place(telemetry_fd, TELEMETRY_FD)
    # Nothing of the fork server's (control socket, selector, wake-up pipe) stays open in an environment.
    os.closerange(TELEMETRY_FD + 1, max(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1024))
    gate = Gate(socket.socket(fileno=gate_fd))
    # The fork server's own logging must not echo the function's records: a fresh root logger, as in a new process.
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)
    logging.root.setLevel(logging.WARNING)
    sys.argv[:] = [str(sys.modules["awslambdaric.bootstrap"].__file__)]
    # One place sets the environment: exactly what the host built (reserved variables + the function's own).
    os.environ.clear()
    os.environ.update(request["environ"])
    # Where awslambdaric writes its log records, one frame per record (it reads and removes the variable), as on
    # Lambda: a multi-line record (a traceback) stays one CloudWatch event; print() still goes to stdout.
    os.environ["_LAMBDA_TELEMETRY_LOG_FD"] = str(TELEMETRY_FD)
    os.chdir(request["task_root"])
    own_paths = [str(p) for p in request["paths"]]
    sys.path[:] = own_paths + sys.path
    importlib.invalidate_caches()
    stash = {name: sys.modules.pop(name) for name in server.preloaded if name in sys.modules}
    costs, tree = server.config.get("costs", {}), server.config.get("tree", {})
    sys.meta_path.insert(0, Preloaded(stash, costs, tree, own_paths, gate))
    if server.preparsed is not None:
        server.preparsed.gate = gate
    limit = request.get("address_space_limit")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    if os.environ.get("AWS_LAMBDA_LOG_FORMAT") or os.environ.get("AWS_LAMBDA_LOG_LEVEL"):
        importlib.reload(sys.modules["awslambdaric.bootstrap"])  # it reads both variables at import time
    return gate


def _above(fd: int) -> int:
    """A copy of `fd` numbered above every fixed one (the original closed)."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD, TELEMETRY_FD + 1)
    os.close(fd)
    return copy


def _place(fd: int, target: int) -> int:
    os.dup2(fd, target)
    os.close(fd)
    return target


def _sched_stat() -> tuple[float, float]:
    """(CPU seconds, run-queue seconds) of this thread so far."""
    try:
        with open("/proc/self/schedstat", "rb") as stat:
            fields = stat.read().split()
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def _run_runtime(handler: str, gate: Gate, startup_s: float) -> int:
    started = time.time()
    cpu, run_queue = _sched_stat()
    os.write(1, INIT_MARK + f"{started!r} {run_queue!r} {cpu!r}".encode() + b"\n")
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
    # The runtime's own start, as a fresh interpreter takes it alone (what this fork saved, minus what it spent).
    gate.wait(startup_s - (time.time() - started))
    original = bootstrap._get_handler

    def init_sleep(seconds: Any) -> None:
        value = float(seconds)  # what time.sleep accepts (a number or an object with __index__ / __float__)
        if value < 0:
            raise ValueError("sleep length must be non-negative")
        gate.wait(value)  # no CPU needed: the token goes back meanwhile, a token asked for meanwhile comes after

    def gated_get_handler(name: str) -> Any:
        # The function's INIT code asks for a CPU token (the host keeps the queue) once it has used a little CPU:
        # SIGPROF fires after GATE_AFTER_CPU_S of this process's CPU time, and its handler blocks until granted.
        # While INIT sleeps it holds no token, and a SIGPROF that lands as a sleep begins waits for the sleep's end
        # (else the time queued for a token would overlap the sleep and be subtracted from INIT twice).
        previous = signal.signal(signal.SIGPROF, lambda *_: gate.on_cpu_used())
        plain_sleep, time.sleep = time.sleep, init_sleep
        signal.setitimer(signal.ITIMER_PROF, GATE_AFTER_CPU_S)
        try:
            return original(name)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)
            time.sleep = plain_sleep
            gate.end_init()

    bootstrap._get_handler = gated_get_handler  # type: ignore[attr-defined]
    bootstrap.run(handler, client)
    return 0


# --- probe ----------------------------------------------------------------------------------------------------------


_probe_kept: list[Any] = []  # the probe's parsed data stays alive, as the fork server's does, for the RSS reading


def probe(site: str) -> int:
    """What one fresh runtime process costs: see the module docstring."""
    _use_site(site)
    _import_baseline()
    baseline_rss = _rss_bytes()
    sys.stdout.write("baseline\n")
    sys.stdout.flush()
    sys.stderr.write(PROBE_MARK + "\n")
    sys.stderr.flush()
    for name in PRELOAD_MODULES:
        __import__(name)  # the import statement's path: -X importtime does not time importlib.import_module
    data_s: dict[str, float] = {}
    for name in PRELOAD_DATA:  # what parsing each costs alone; kept by the fork server, so its memory counts too
        begin = time.perf_counter()
        _probe_kept.append(parse_data(name))
        data_s[name] = time.perf_counter() - begin
    sizes = {"baseline_rss": baseline_rss, "preload_rss": _rss_bytes(), "data_s": data_s}
    sys.stdout.write(json.dumps(sizes) + "\n")
    sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="forkserver %(levelname)s %(message)s")
    if len(argv) >= 3 and argv[1] == "probe":
        return probe(argv[2])
    if len(argv) < 5 or argv[1] != "serve":
        sys.stderr.write("usage: forkserver.py serve CONTROL_FD HOST_PID CONFIG_JSON | probe SITE\n")
        return 2
    host_pid = int(argv[3])
    set_parent_death_signal(signal.SIGKILL)
    if host_pid and os.getppid() != host_pid:
        return 1  # the host died before PDEATHSIG was armed
    control = socket.socket(fileno=int(argv[2]))
    with open(argv[4], encoding="utf-8") as handle:
        config = json.load(handle)
    _use_site(config["site"])
    _import_baseline()
    baseline = set(sys.modules)
    for name in config.get("preload", PRELOAD_MODULES):
        importlib.import_module(name)
    preloaded = {name: module for name, module in sys.modules.items() if name not in baseline and module is not None}
    preparsed = None
    if "botocore" in sys.modules:
        preparsed = PreparsedData(list(config.get("preload_data", PRELOAD_DATA)), config.get("data_costs", {}))
        preparsed.install()
    gc.collect()
    gc.freeze()  # keep the pre-imported objects out of the collector so children do not copy their pages
    ForkServer(control, config, preloaded, preparsed).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
