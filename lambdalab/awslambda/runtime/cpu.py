"""This machine's CPU as a local limit: the FIFO gate INIT code runs through, and the run-queue delay of a process.

On AWS every execution environment has CPU of its own; here all of them share a few cores. Two mechanisms keep that
out of what the lab reports as Lambda's behaviour:

* :class:`CpuGate` lets at most ``capacity`` CPU-heavy INITs run function code at once (an INIT asks for a token
  only after its first 20 ms of CPU, so one that sleeps or imports little never queues), so a storm of cold starts
  finishes one INIT after another at full speed instead of all of them at 1/N speed (and leaves CPU for the warm
  path). An INIT holds a token only while it computes: it gives it back while it waits (a replayed import cost)
  and asks again after, ahead of the INITs that have not begun (``resume=True``): finishing what has started first
  keeps every INIT's wait short, where a plain FIFO would send each resuming INIT to the back of the storm.
* :func:`run_queue_delay_s` reads how long a process's main thread was ready to run but had no CPU
  (``/proc/<pid>/schedstat``, second field, nanoseconds; Linux ≥ 2.6.23 with CONFIG_SCHED_INFO). The host subtracts
  it, with the time spent queueing at the gate, from INIT durations, and adds it to INIT and invoke deadlines: waiting
  for this machine is reported as local waiting, never as Lambda's INIT time or as a Lambda timeout.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

LOG = logging.getLogger(__name__)


@dataclass
class GateStats:
    granted: int = 0  # tokens handed out
    queued: int = 0  # requests that had to wait for a token


class CpuGate:
    """A FIFO of CPU tokens for INIT code. Pure and single-threaded: call it from the event loop only.

    ``request(owner, grant)`` calls ``grant()`` now when a token is free, else when one is released: resuming owners
    first (in order of request), then new ones (in order of request); an owner holds at most one token and has at
    most one request pending. ``release(owner)`` gives back the owner's token or withdraws its pending request; it is
    idempotent, so every path that ends an INIT (its first /next, an error, an exit, a kill) may call it.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"the INIT CPU gate needs at least one token, not {capacity}")
        self.capacity = capacity
        self._holders: set[str] = set()
        self._resuming: OrderedDict[str, Callable[[], None]] = OrderedDict()
        self._waiting: OrderedDict[str, Callable[[], None]] = OrderedDict()
        self.stats = GateStats()

    @property
    def holders(self) -> frozenset[str]:
        return frozenset(self._holders)

    @property
    def waiting(self) -> int:
        return len(self._resuming) + len(self._waiting)

    def request(self, owner: str, grant: Callable[[], None], *, resume: bool = False) -> bool:
        """Ask for a token; True when granted at once (``grant`` has been called). ``resume``: the owner held a token
        before in the same INIT and gave it back to wait; it goes ahead of the owners that have not begun."""
        if owner in self._holders:
            grant()  # already holds one: a repeated request is granted by the token it has
            return True
        queue = self._resuming if resume else self._waiting
        if owner in self._resuming or owner in self._waiting:
            self._resuming.pop(owner, None)
            self._waiting.pop(owner, None)
            queue[owner] = grant
            return False
        if len(self._holders) < self.capacity and not self._resuming and not self._waiting:
            self._grant(owner, grant)
            return True
        self.stats.queued += 1
        queue[owner] = grant
        return False

    def release(self, owner: str) -> None:
        self._resuming.pop(owner, None)
        self._waiting.pop(owner, None)
        if owner in self._holders:
            self._holders.discard(owner)
            self._admit()

    def _admit(self) -> None:
        while (self._resuming or self._waiting) and len(self._holders) < self.capacity:
            queue = self._resuming if self._resuming else self._waiting
            owner, grant = queue.popitem(last=False)
            self._grant(owner, grant)

    def _grant(self, owner: str, grant: Callable[[], None]) -> None:
        self._holders.add(owner)
        self.stats.granted += 1
        try:
            grant()
        except Exception:  # a grant that cannot be delivered (the process is gone): the token comes back
            LOG.exception("could not hand a CPU token to %s", owner)
            self._holders.discard(owner)


@dataclass(frozen=True)
class SchedStat:
    """A thread's CPU time and run-queue delay since it started, in seconds (`/proc/<pid>/schedstat`)."""

    cpu_s: float
    run_queue_s: float


def sched_stat(pid: int) -> SchedStat | None:
    """The process's main thread's schedstat; None if unknown (the process is gone, or no CONFIG_SCHED_INFO)."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as stat:
            fields = stat.read().split()
        return SchedStat(int(fields[0]) / 1e9, int(fields[1]) / 1e9)
    except (OSError, IndexError, ValueError):
        return None


def run_queue_delay_s(pid: int) -> float | None:
    """Seconds the process's main thread spent runnable but waiting for a CPU since it started; None if unknown."""
    stat = sched_stat(pid)
    return stat.run_queue_s if stat is not None else None
