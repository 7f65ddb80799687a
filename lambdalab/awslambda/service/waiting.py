"""The waiting room: calls held at admission while this machine's CPU lags behind AWS (see LambdaService._admit).

A cold-start storm can hold hundreds of calls at once, all waiting for the same thing: an environment of their
function to come free, or the INITs queued for this machine's CPU to get it. So calls wait in groups, one per thing
waited for, and a group's condition is tested once per poll for all of its calls — not once per call per poll, which
in a storm cost the event loop more than the calls it held. A call that ends wakes the oldest waiting call of its
function (the one its environment or concurrency can serve), which tests its own condition at once; a group whose
condition no longer holds is released whole at the next poll; a call past its deadline is released alone.

Time is the injected clock's; the poll is the event loop's timer (`call_later`), so a virtual clock only decides the
deadlines.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from lambdalab.clock import Clock

POLL_S = 0.05  # how often a group's condition is tested without a call ending (an INIT got its CPU, say)


@dataclass
class _Waiter:
    future: asyncio.Future[None]
    deadline: float


@dataclass
class _Group:
    function_name: str | None  # None: any function's call that ends may serve it (the account's concurrency)
    still: Callable[[], bool]  # does the reason to wait hold? (the same for every call of the group)
    waiters: collections.deque[_Waiter] = field(default_factory=collections.deque)


class WaitingRoom:
    """Calls waiting for this machine, grouped by what they wait for."""

    def __init__(self, clock: Clock, poll_s: float = POLL_S) -> None:
        self._clock = clock
        self._poll_s = poll_s
        self._groups: dict[Hashable, _Group] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.polls = 0  # how many times a group's condition was tested by the poll (for tests and benchmarks)

    def __len__(self) -> int:
        return sum(1 for group in self._groups.values() for w in group.waiters if not w.future.done())

    async def pause(self, key: Hashable, function_name: str | None, still: Callable[[], bool], deadline: float) -> bool:
        """Wait until a call of `function_name` ends, `still()` stops holding, or `deadline` passes; False, without
        waiting, once the deadline has passed or the room is closed. The caller tests its own condition again
        afterwards and decides whether to pause once more. Calls that pass the same `key` must mean the same `still`
        (the first one's is the one tested)."""
        if self._closed or self._clock.now() >= deadline:
            return False
        loop = asyncio.get_running_loop()
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(function_name, still)
        waiter = _Waiter(loop.create_future(), deadline)
        group.waiters.append(waiter)
        if self._timer is None:
            self._timer = loop.call_later(self._poll_s, self._poll)
        try:
            await waiter.future
        finally:
            if not waiter.future.done():  # cancelled: the poll drops it
                waiter.future.cancel()
        return True

    def call_ended(self, function_name: str) -> None:
        """A call of `function_name` ended: its environment or concurrency is free for one waiting call."""
        for group in self._groups.values():
            if group.function_name in (function_name, None):
                while group.waiters:
                    waiter = group.waiters.popleft()
                    if not waiter.future.done():
                        waiter.future.set_result(None)
                        break

    def _poll(self) -> None:
        self._timer = None
        now = self._clock.now()
        for key, group in list(self._groups.items()):
            live = [w for w in group.waiters if not w.future.done()]
            release_all = False
            if live:
                self.polls += 1
                release_all = not group.still()
            group.waiters = collections.deque()
            for waiter in live:
                if release_all or now >= waiter.deadline:
                    waiter.future.set_result(None)
                else:
                    group.waiters.append(waiter)
            if not group.waiters:
                del self._groups[key]
        if self._groups:
            self._timer = asyncio.get_running_loop().call_later(self._poll_s, self._poll)

    def close(self) -> None:
        """Release every waiting call, and let none wait again (the service is stopping)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for group in self._groups.values():
            for waiter in group.waiters:
                if not waiter.future.done():
                    waiter.future.set_result(None)
        self._groups.clear()
