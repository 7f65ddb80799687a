"""The waiting room of calls held at admission for this machine: grouped, woken by calls that end, released whole
when the reason to wait is gone, bounded by a deadline on the injected clock, nothing lost."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalab.awslambda.service.waiting import WaitingRoom
from lambdalab.clock import VirtualClock

pytestmark = pytest.mark.timeout(30)
POLL = 0.005


class Condition:
    """A reason to wait that the test switches off, counting how often it is tested."""

    def __init__(self) -> None:
        self.holds = True
        self.tests = 0

    def __call__(self) -> bool:
        self.tests += 1
        return self.holds


async def waiting(room: WaitingRoom, n: int) -> None:
    while len(room) < n:
        await asyncio.sleep(0)


async def test_a_storm_of_waiting_calls_costs_one_test_per_poll_not_one_per_call() -> None:
    clock, held = VirtualClock(), Condition()
    room = WaitingRoom(clock, POLL)
    calls = [asyncio.create_task(room.pause("k", "f", held, clock.now() + 60)) for _ in range(300)]
    await waiting(room, 300)
    await asyncio.sleep(POLL * 6)
    assert not any(c.done() for c in calls)
    assert 1 <= held.tests == room.polls <= 10  # ~6 polls, each tested the group's condition once: not 300 x 6
    held.holds = False  # the INITs got their CPU: the next poll releases the whole group
    assert await asyncio.wait_for(asyncio.gather(*calls), 1.0) == [True] * 300
    assert len(room) == 0


async def test_a_call_that_ends_wakes_the_oldest_waiting_call_of_its_function_only() -> None:
    room = WaitingRoom(VirtualClock(), poll_s=60)  # no poll during the test: only the ends wake
    f1, f2, g = (
        asyncio.create_task(room.pause(k, fn, Condition(), 100)) for k, fn in (("f", "f"), ("f", "f"), ("g", "g"))
    )
    await waiting(room, 3)
    room.call_ended("f")
    await asyncio.sleep(0)
    assert (f1.done(), f2.done(), g.done()) == (True, False, False)
    room.call_ended("f")
    room.call_ended("f")  # nobody left of f: nothing else is woken
    await asyncio.sleep(0)
    assert (f2.done(), g.done()) == (True, False)
    room.close()
    await g


async def test_an_account_wide_wait_is_served_by_any_function_that_ends() -> None:
    room = WaitingRoom(VirtualClock(), poll_s=60)
    account = asyncio.create_task(room.pause("account", None, Condition(), 100))
    await waiting(room, 1)
    room.call_ended("some-other-function")
    assert await asyncio.wait_for(account, 1.0) is True


async def test_the_deadline_is_the_injected_clocks_and_then_pause_refuses() -> None:
    clock = VirtualClock()
    room = WaitingRoom(clock, POLL)
    call = asyncio.create_task(room.pause("k", "f", Condition(), deadline=10.0))
    await waiting(room, 1)
    await asyncio.sleep(POLL * 3)
    assert not call.done()  # real time passes, virtual time does not: still waiting
    clock.advance(10.0)
    assert await asyncio.wait_for(call, 1.0) is True
    assert await room.pause("k", "f", Condition(), deadline=10.0) is False  # past it: no wait at all


async def test_a_cancelled_call_is_dropped_and_the_next_one_is_woken() -> None:
    room = WaitingRoom(VirtualClock(), poll_s=60)
    first = asyncio.create_task(room.pause("k", "f", Condition(), 100))
    second = asyncio.create_task(room.pause("k", "f", Condition(), 100))
    await waiting(room, 2)
    first.cancel()
    await asyncio.sleep(0)
    assert len(room) == 1
    room.call_ended("f")
    assert await asyncio.wait_for(second, 1.0) is True


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["end f", "end g", "poll", "lift"]), max_size=30), st.integers(1, 12))
def test_nothing_waiting_is_lost_whatever_happens(events: list[str], n: int) -> None:
    """Every call is released exactly once, by an end, the lifted condition or close; none is left behind."""

    async def scenario() -> None:
        room, held = WaitingRoom(VirtualClock(), poll_s=3600), Condition()
        calls = [asyncio.create_task(room.pause(("k", i % 2), "fg"[i % 2], held, 100)) for i in range(n)]
        await waiting(room, n)
        for event in events:
            if event.startswith("end"):
                room.call_ended(event[-1])
            elif event == "lift":
                held.holds = False
            else:
                room._poll()
            await asyncio.sleep(0)
            assert len(room) == sum(1 for c in calls if not c.done())
        room.close()
        assert await asyncio.wait_for(asyncio.gather(*calls), 1.0) == [True] * n
        assert len(room) == 0

    asyncio.run(scenario())


async def test_once_closed_every_call_is_released_and_none_waits_again() -> None:
    room = WaitingRoom(VirtualClock(), poll_s=60)
    call = asyncio.create_task(room.pause("k", "f", Condition(), 100))
    await waiting(room, 1)
    room.close()
    assert await asyncio.wait_for(call, 1.0) is True
    assert await room.pause("k", "f", Condition(), 100) is False  # the caller stops waiting: the service is stopping
