"""Nothing below a composition root reads the time itself (issue 10): every lambdalab module is parsed and a read of
the clock fails the test unless the module is on the allow-list below, with its reason.

A read is a call to, or a reference to (`wall=time.time` is a read waiting to happen), time.time / time_ns /
monotonic / perf_counter / process_time (and their _ns forms), datetime.now / utcnow / today, date.today, an event
loop's `time()`, a `from time import monotonic`-style import, and time.gmtime / localtime / ctime / strftime
without the time to format. Making a wall clock (WallClock(), EpochClock(), Clocks.wall()) is a composition root's
job too, so it has its own allow-list.

The local cloud's clocks are made once, in server.py (`Clocks.wall()`), and passed down by constructor; tests and
the simulator use `Clocks.virtual()`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lambdalab"

# Modules that may read the clock, and why. Keep it short: an entry is a root that reads time for itself, not a
# component of the local cloud (those take a Clock).
READS_ALLOWED: dict[str, str] = {
    "lambdalab/clock.py": "the clocks themselves: WallClock and EpochClock are the local cloud's only readers",
    "lambdalab/traces/cli.py": (
        "`lambdalab traces` reads AWS or files from outside any local cloud: its own root, one datetime.now at the "
        "top of run(), which --since and the default last hour count back from"
    ),
    "lambdalab/simulate/cli.py": (
        "the simulator runs on virtual time; perf_counter only measures how long it took (wall_time_s in its report)"
    ),
    "lambdalab/awslambda/runtime/forkserver.py": (
        "the fork server is its own process, run by the runtime's interpreter isolated (-I -S) on the standard "
        "library only, so it cannot be handed a Clock: it replays measured start-up and import costs as real "
        "sleeps (time.time), times its own waits for the CPU gate and its stop (time.monotonic) and the SDK data it "
        "parses (perf_counter), and writes INIT_MARK in epoch seconds, which the host reads as wall time (the host "
        "is only ever built on wall clocks)"
    ),
    "lambdalab/simulate/tune.py": (
        "a sweep of simulations (virtual time) in worker processes; perf_counter only measures each run's and the "
        "sweep's own duration for the report"
    ),
}

# Modules that may make a wall clock (WallClock(), EpochClock(), Clocks.wall()): composition roots only.
MAKES_ALLOWED: dict[str, str] = {
    "lambdalab/clock.py": "Clocks.wall() itself",
    "lambdalab/server.py": "the local cloud's composition root: the one Clocks.wall(), passed down",
    "lambdalab/autoscaling/experiments.py": "a tool driving a running cloud from outside: main() makes its clock",
    "lambdalab/dynamodb/service.py": "the DynamoDB process is its own root: main() makes its epoch clock",
}

TIME_READERS = frozenset(
    {
        "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "process_time",
        "process_time_ns", "thread_time", "thread_time_ns", "clock_gettime", "clock_gettime_ns",
    }
)  # fmt: skip
TIME_FORMATTERS = {"gmtime": 0, "localtime": 0, "ctime": 0, "asctime": 0, "strftime": 1}  # reads if no more args
DATETIME_READERS = frozenset({"now", "utcnow", "today"})
CLOCK_MAKERS = frozenset({"WallClock", "EpochClock"})


class _Finder(ast.NodeVisitor):
    """Clock reads and wall-clock constructions in one module, as (line, what)."""

    def __init__(self) -> None:
        self.reads: list[tuple[int, str]] = []
        self.makes: list[tuple[int, str]] = []
        self.time_modules: set[str] = set()
        self.datetime_modules: set[str] = set()
        self.datetime_classes: set[str] = set()  # names bound to datetime.datetime or datetime.date

    # --- names bound by imports -------------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "time":
                self.time_modules.add(alias.asname or "time")
            elif alias.name == "datetime":
                self.datetime_modules.add(alias.asname or "datetime")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if node.module == "time" and alias.name in TIME_READERS:
                self.reads.append((node.lineno, f"from time import {alias.name}"))
            elif node.module == "datetime" and alias.name in ("datetime", "date"):
                self.datetime_classes.add(alias.asname or alias.name)
            elif node.module == "lambdalab.clock" and alias.name in CLOCK_MAKERS:
                pass  # importing is fine; constructing is what counts

    # --- reads ------------------------------------------------------------------------------------------------

    def _is_time_module(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id in self.time_modules

    def _is_datetime_class(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.datetime_classes
        return (
            isinstance(node, ast.Attribute)
            and node.attr in ("datetime", "date")
            and isinstance(node.value, ast.Name)
            and node.value.id in self.datetime_modules
        )

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self._is_time_module(node.value) and node.attr in TIME_READERS:
            self.reads.append((node.lineno, f"time.{node.attr}"))
        elif node.attr in DATETIME_READERS and self._is_datetime_class(node.value):
            self.reads.append((node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
        elif node.attr == "wall" and isinstance(node.value, ast.Name) and node.value.id == "Clocks":
            self.makes.append((node.lineno, "Clocks.wall"))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        arguments = len(node.args) + len(node.keywords)
        if isinstance(func, ast.Attribute):
            if self._is_time_module(func.value) and func.attr in TIME_FORMATTERS:
                if arguments <= TIME_FORMATTERS[func.attr]:
                    self.reads.append((node.lineno, f"time.{func.attr} of the current time"))
            elif func.attr == "time" and arguments == 0 and not self._is_time_module(func.value):
                self.reads.append((node.lineno, f"{ast.unparse(func.value)}.time() (an event loop's clock)"))
            elif func.attr in CLOCK_MAKERS:
                self.makes.append((node.lineno, f"{func.attr}()"))
        elif isinstance(func, ast.Name) and func.id in CLOCK_MAKERS:
            self.makes.append((node.lineno, f"{func.id}()"))
        self.generic_visit(node)


def _scan(source: str) -> _Finder:
    finder = _Finder()
    finder.visit(ast.parse(source))
    return finder


def _modules() -> dict[str, _Finder]:
    return {
        str(path.relative_to(ROOT)): _scan(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_below_a_composition_root_reads_the_clock() -> None:
    allowed = READS_ALLOWED
    offenders = [
        f"{module}:{line}: {what}"
        for module, found in _modules().items()
        if module not in allowed
        for line, what in found.reads
    ]
    assert offenders == [], (
        "these read the clock themselves; take a Clock (or the Clocks) from the constructor instead, passed down "
        "from the composition root (server.py):\n" + "\n".join(offenders)
    )


def test_only_composition_roots_make_a_wall_clock() -> None:
    allowed = MAKES_ALLOWED
    offenders = [
        f"{module}:{line}: {what}"
        for module, found in _modules().items()
        if module not in allowed
        for line, what in found.makes
    ]
    assert offenders == [], "these make a wall clock of their own; take the root's instead:\n" + "\n".join(offenders)


def test_every_allow_list_entry_is_still_needed() -> None:
    found = _modules()
    stale = [m for m in READS_ALLOWED if m not in found or not found[m].reads]
    stale += [m for m in MAKES_ALLOWED if m not in found or not found[m].makes]
    assert stale == [], "these no longer read or make a clock: take them off the allow-list\n" + "\n".join(stale)


def test_the_finder_sees_every_form_of_a_read() -> None:
    """The test can fail: each of these is a read (or a clock made), and the harmless lines are not."""
    source = """
import time
import time as t
import datetime as dt
from datetime import UTC, date, datetime
from time import monotonic
import asyncio

time.time()
t.monotonic()
default = time.perf_counter  # a reference is a read waiting to happen
time.time_ns()
datetime.now(UTC)
datetime.utcnow()
date.today()
dt.datetime.now()
time.gmtime()
time.strftime("%Y")
asyncio.get_running_loop().time()
WallClock()
clock.EpochClock()
Clocks.wall()

time.sleep(1)
time.gmtime(0)
time.strftime("%Y", time.gmtime(0))
datetime.fromtimestamp(0, UTC)
clock.now()
"""
    finder = _scan(source)
    assert [line for line, _ in finder.reads] == [6, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    assert [line for line, _ in finder.makes] == [20, 21, 22]
