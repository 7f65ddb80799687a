"""Schedule expressions: rate, cron (with L, W, #, names, years, time zones), at; and the compressed schedule clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lambdalab.clock import Clocks
from lambdalab.sources.schedule_expr import At, Rate, ScheduleError, next_fire, parse, timezone_of
from lambdalab.sources.scheduler import ScheduleClock

T0 = datetime(2026, 11, 22, 7, 40, 12, tzinfo=UTC)  # a Sunday


def nexts(expression: str, after: datetime = T0, count: int = 3, zone=UTC) -> list[datetime]:
    parsed = parse(expression, zone=zone)
    out = []
    for _ in range(count):
        after = next_fire(parsed, after, zone=zone)  # type: ignore[assignment]
        out.append(after)
    return out


def test_rates_run_every_period_from_their_anchor() -> None:
    assert parse("rate(1 minute)") == Rate(60) and parse("rate(5 minutes)") == Rate(300)
    assert parse("rate(2 hours)") == Rate(7200) and parse("rate(1 day)") == Rate(86400)
    anchor = T0
    fire = next_fire(Rate(300), T0 + timedelta(seconds=1), anchor=anchor)
    assert fire == T0 + timedelta(minutes=5)
    assert next_fire(Rate(300), T0 + timedelta(minutes=5), anchor=anchor) == T0 + timedelta(minutes=10)


@pytest.mark.parametrize(
    "bad",
    ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(1 week)", "cron(* * * * *)", "cron(0 12 * * * *)",
     "cron(0 12 ? * ? *)", "cron(61 * * * ? *)", "cron(0 12 ? * 8 *)", "cron(0 12 ? * MON#6 *)", "every 5 minutes"],
)  # fmt: skip
def test_invalid_expressions_are_refused(bad: str) -> None:
    with pytest.raises(ScheduleError):
        parse(bad)


def test_cron_fields() -> None:
    assert nexts("cron(0/15 * * * ? *)") == [
        T0.replace(minute=45, second=0),
        T0.replace(hour=8, minute=0, second=0),
        T0.replace(hour=8, minute=15, second=0),
    ]
    assert nexts("cron(0 10 ? * MON-FRI *)", count=2) == [
        datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
    ]
    assert nexts("cron(0 18 ? * 6#3 *)", count=1) == [datetime(2026, 12, 18, 18, 0, tzinfo=UTC)]  # 3rd Friday
    assert nexts("cron(0 0 L * ? *)", count=2) == [
        datetime(2026, 11, 30, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 0, 0, tzinfo=UTC),
    ]
    assert nexts("cron(0 9 1W * ? *)", count=1) == [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]  # 1 Dec is a Tuesday
    assert nexts("cron(0 9 ? * 6L *)", count=1) == [datetime(2026, 11, 27, 9, 0, tzinfo=UTC)]  # last Friday
    assert nexts("cron(30 6 1 JAN ? 2027)", count=2) == [datetime(2027, 1, 1, 6, 30, tzinfo=UTC), None]


def test_cron_in_a_time_zone() -> None:
    zone = timezone_of("America/New_York")
    (fire,) = nexts("cron(0 9 * * ? *)", count=1, zone=zone)
    assert fire == datetime(2026, 11, 22, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    with pytest.raises(ScheduleError, match="time zone"):
        timezone_of("Mars/Olympus")


def test_at_runs_once() -> None:
    parsed = parse("at(2026-11-22T08:00:00)", zone=UTC)
    assert parsed == At(datetime(2026, 11, 22, 8, 0, tzinfo=UTC))
    assert next_fire(parsed, T0) == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert next_fire(parsed, datetime(2026, 11, 22, 8, 0, tzinfo=UTC)) is None
    with pytest.raises(ScheduleError, match="Scheduler only"):
        parse("at(2026-11-22T08:00:00)", allow_at=False)


def test_the_schedule_clock_runs_1_over_time_scale_as_fast_from_its_start() -> None:
    wall, clocks = Clocks.virtual(start_epoch=1000.0)
    clock = ScheduleClock(0.01, clocks.epoch)
    start = clock.now()
    wall.advance(0.6)  # 0.6 s real ...
    assert clock.now() - start == timedelta(minutes=1)  # ... is a minute of schedule time
    assert clock.wall_seconds_until(clock.now() + timedelta(minutes=5)) == pytest.approx(3.0)
    later = clock.fork()
    assert later.now() == datetime.fromtimestamp(1000.6, UTC)  # a new schedule's clock starts at the real time
