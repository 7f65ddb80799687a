"""Schedule expressions of EventBridge rules and EventBridge Scheduler: `rate(...)`, `cron(...)`, `at(...)`. Pure.

The syntax of "Schedule types on EventBridge Scheduler" and "Creating an Amazon EventBridge rule that runs on a
schedule":

* `rate(value unit)`: a positive whole number and minute(s) / hour(s) / day(s); singular when the value is 1.
* `cron(minutes hours day-of-month month day-of-week year)`: six fields; `,` `-` `*` `/` everywhere, `?` in exactly one
  of day-of-month and day-of-week, `L` and `W` in day-of-month, `L` and `#` in day-of-week; months 1-12 or JAN-DEC,
  days of week 1-7 or SUN-SAT (1 = Sunday), years 1970-2199. Evaluated in UTC, or in the schedule's time zone.
* `at(yyyy-mm-ddThh:mm:ss)` (Scheduler only): once, in the schedule's time zone.

`next_fire(expression, after)` gives the first occurrence strictly after `after` (timezone-aware), or None.
A rate runs every period from its anchor (the schedule's start date, or when it was created).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_MONTHS = {m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                       "DEC"], start=1)}  # fmt: skip
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_SEARCH_DAYS = 366 * 5


class ScheduleError(ValueError):
    """An expression the service would refuse; the message says why."""


@dataclass(frozen=True)
class Rate:
    seconds: int


@dataclass(frozen=True)
class At:
    when: datetime


@dataclass(frozen=True)
class _Field:
    values: frozenset[int]
    any: bool = False


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    day_of_month: str  # the raw field: its L/W forms depend on the month
    months: frozenset[int]
    day_of_week: str
    years: frozenset[int] | None  # None: every year


Expression = Rate | Cron | At


def timezone_of(name: str | None) -> tzinfo:
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"Invalid time zone {name!r}") from None


def parse(expression: str, *, allow_at: bool = True, zone: tzinfo = UTC) -> Expression:
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value <= 0:
            raise ScheduleError(f"Invalid rate expression {expression!r}: the value must be a positive integer")
        if (value == 1) != (not unit.endswith("s")):
            raise ScheduleError(
                f"Invalid rate expression {expression!r}: use the singular unit for 1 and the plural otherwise"
            )
        return Rate(value * _UNIT_SECONDS[unit.rstrip("s")])
    at = _AT.match(text)
    if at:
        if not allow_at:
            raise ScheduleError(f"Invalid schedule expression {expression!r}: at() is for EventBridge Scheduler only")
        return At(datetime.fromisoformat(at.group(1)).replace(tzinfo=zone))
    cron = _CRON.match(text)
    if cron:
        return _parse_cron(cron.group(1), expression)
    raise ScheduleError(f"Invalid schedule expression {expression!r}: expected rate(...), cron(...) or at(...)")


def _numbers(field: str, low: int, high: int, names: dict[str, int] | None, where: str) -> frozenset[int]:
    out: set[int] = set()
    for item in field.split(","):
        step = 1
        part = item
        if "/" in item:
            part, step_text = item.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{where}: invalid increment {step_text!r}")
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _number(first, names, where), _number(last, names, where)
        else:
            start = _number(part, names, where)
            end = high if step != 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(f"{where}: {part!r} is outside {low}-{high}")
        if start <= end:
            out.update(range(start, end + 1, step))
        else:  # a wrapping range, e.g. FRI-MON
            out.update(v for i, v in enumerate([*range(start, high + 1), *range(low, end + 1)]) if i % step == 0)
    return frozenset(out)


def _number(text: str, names: dict[str, int] | None, where: str) -> int:
    upper = text.upper()
    if names and upper in names:
        return names[upper]
    if not text.isdigit():
        raise ScheduleError(f"{where}: invalid value {text!r}")
    return int(text)


def _parse_cron(body: str, expression: str) -> Cron:
    fields = body.split()
    where = f"Invalid cron expression {expression!r}"
    if len(fields) != 6:
        raise ScheduleError(f"{where}: six fields are needed (minutes hours day-of-month month day-of-week year)")
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(f"{where}: exactly one of day-of-month and day-of-week must be '?'")
    cron = Cron(
        minutes=_numbers(minutes, 0, 59, None, where),
        hours=_numbers(hours, 0, 23, None, where),
        day_of_month=dom.upper(),
        months=_numbers(month, 1, 12, _MONTHS, where),
        day_of_week=dow.upper(),
        years=None if year == "*" else _numbers(year, 1970, 2199, None, where),
    )
    for day in (1, 15, 28):  # validate the day fields once (they are evaluated lazily per month)
        _day_matches(cron, 2024, 1, day, where)
    return cron


def _weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday ... 7 = Saturday, as AWS cron counts."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _dom_matches(field: str, year: int, month: int, day: int, where: str) -> bool:
    last = calendar.monthrange(year, month)[1]
    if field == "?":
        return True
    if field == "L":
        return day == last
    if field == "LW":
        target = last
        while _weekday(year, month, target) in (1, 7):
            target -= 1
        return day == target
    if field.endswith("W") and field[:-1].isdigit():
        wanted = min(int(field[:-1]), last)
        weekday = _weekday(year, month, wanted)
        target = wanted
        if weekday == 7:  # Saturday → Friday, unless that leaves the month
            target = wanted - 1 if wanted > 1 else wanted + 2
        elif weekday == 1:  # Sunday → Monday, unless that leaves the month
            target = wanted + 1 if wanted < last else wanted - 2
        return day == target
    return day in _numbers(field, 1, 31, None, where)


def _dow_matches(field: str, year: int, month: int, day: int, where: str) -> bool:
    if field == "?":
        return True
    weekday = _weekday(year, month, day)
    if "#" in field:
        name, nth = field.split("#", 1)
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise ScheduleError(f"{where}: invalid day-of-week {field!r}")
        return weekday == _number(name, _DAYS, where) and (day - 1) // 7 + 1 == int(nth)
    if field == "L":
        return weekday == 7
    if field.endswith("L"):
        last = calendar.monthrange(year, month)[1]
        return weekday == _number(field[:-1], _DAYS, where) and day + 7 > last
    return weekday in _numbers(field, 1, 7, _DAYS, where)


def _day_matches(cron: Cron, year: int, month: int, day: int, where: str = "cron") -> bool:
    return _dom_matches(cron.day_of_month, year, month, day, where) and _dow_matches(
        cron.day_of_week, year, month, day, where
    )


def next_fire(
    expression: Expression, after: datetime, *, zone: tzinfo = UTC, anchor: datetime | None = None
) -> datetime | None:
    """The first occurrence strictly after `after` (aware datetimes; the result is in `zone`)."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    if isinstance(expression, At):
        return expression.when if expression.when > after else None
    if isinstance(expression, Rate):
        start = anchor or after
        if start > after:
            return start + timedelta(seconds=expression.seconds)
        periods = int((after - start).total_seconds() // expression.seconds) + 1
        return start + timedelta(seconds=expression.seconds * periods)
    local = after.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = local.date()
    for _ in range(_SEARCH_DAYS):
        if (
            (expression.years is None or day.year in expression.years)
            and day.month in expression.months
            and _day_matches(expression, day.year, day.month, day.day)
        ):
            for hour in sorted(expression.hours):
                for minute in sorted(expression.minutes):
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    if candidate >= local:
                        return candidate
        day = day + timedelta(days=1)
        local = datetime(day.year, day.month, day.day, tzinfo=zone)
    return None
