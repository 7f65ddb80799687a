"""The scheduler on the virtual clocks: definitions re-read every REFRESH_S of monotonic time, runs fired at exact
schedule times (epoch clock compressed by the time scale) — no real time passes and nothing depends on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from lambdalab.clock import Clocks
from lambdalab.sources.invoke import LoopBridge
from lambdalab.sources.router import SourceRouter
from lambdalab.sources.scheduler import REFRESH_S, Scheduler

START = 1_800_000_000.0
RULE = SimpleNamespace(
    arn="arn:aws:events:us-east-1:123456789012:rule/every-minute",
    name="every-minute",
    scheduled_expression="rate(1 minute)",
    targets=[],
    creation_time=None,
)


def _scheduler(loop: asyncio.AbstractEventLoop) -> tuple[Any, Scheduler, list[dict[str, Any]], list[int]]:
    clock, clocks = Clocks.virtual(start_epoch=START)
    router = SourceRouter(
        bridge=LoopBridge(loop),
        invoker=None,  # type: ignore[arg-type]  # the rule has no targets: nothing is invoked
        moto_url="http://moto",
        gateway_url="http://gateway",
        region="us-east-1",
        account_id="123456789012",
        clocks=clocks,
    )
    events: list[dict[str, Any]] = []
    router.on_rule_match = lambda arn, name, targets, event: events.append(event)  # type: ignore[method-assign]
    scheduler = Scheduler(
        router, region="us-east-1", account_id="123456789012", clocks=clocks, time_scale=0.125
    )  # a minute is 7.5 s
    refreshes: list[int] = []

    def refresh() -> None:  # moto's state stands for one scheduled rule
        refreshes.append(1)
        scheduler._keep_rule(RULE)

    scheduler.refresh = refresh  # type: ignore[method-assign]
    return clock, scheduler, events, refreshes


async def _ticks() -> None:
    clock, scheduler, events, refreshes = _scheduler(asyncio.get_running_loop())
    assert await scheduler.tick() == 0  # the first tick reads the definitions; nothing is due yet
    assert len(refreshes) == 1
    assert scheduler.entries[RULE.arn].next_at == datetime.fromtimestamp(START, UTC) + timedelta(minutes=1)

    clock.advance(REFRESH_S / 2)  # no re-read yet; 2 s of schedule time: not due
    assert await scheduler.tick() == 0
    assert len(refreshes) == 1

    clock.advance(7.5 - REFRESH_S / 2)  # 7.5 s at time scale 0.125 is exactly the minute
    assert await scheduler.tick() == 1
    assert len(refreshes) == 2  # REFRESH_S had passed
    first = datetime.fromtimestamp(START, UTC) + timedelta(minutes=1)
    assert scheduler.fired == [(RULE.arn, first)]
    assert events[0]["time"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")  # the scheduled time, not a clock read

    clock.advance(3 * 7.5)  # three more minutes of schedule time: three runs, in order
    assert await scheduler.tick() == 3
    assert [when for _, when in scheduler.fired] == [first + timedelta(minutes=n) for n in range(4)]


def test_the_scheduler_fires_at_exact_schedule_times_on_a_virtual_clock() -> None:
    asyncio.run(_ticks())
