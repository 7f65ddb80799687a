"""Runs schedules: EventBridge Scheduler schedules (any group) and EventBridge rules with a ScheduleExpression
(the default bus), read from moto's state, fired on a compressed schedule clock, delivered through the router.

* Each schedule runs on its own schedule clock: the real time when the local cloud first saw it, then
  `1 / time_scale` times as fast. With `--time-scale 0.01` a `rate(1 minute)` fires every 0.6 s, a daily cron every
  864 s, and an `at()` ten minutes ahead fires 6 s after the schedule was created (the local cloud's output says
  so). `ScheduleClock` is the only place the compression lives.
* Scheduler: the target's `Input` (default `{}`) with the context attributes `<aws.scheduler.schedule-arn>`,
  `<aws.scheduler.scheduled-time>`, `<aws.scheduler.execution-id>` and `<aws.scheduler.attempt-number>` filled in;
  `FlexibleTimeWindow` FLEXIBLE delays each run by a random time within `MaximumWindowInMinutes`; `StartDate` /
  `EndDate`, `ScheduleExpressionTimezone`, `State`, `ActionAfterCompletion: DELETE`; the target's `RetryPolicy` and
  `DeadLetterConfig` (ERROR_CODE, ERROR_MESSAGE, EXECUTION_ID, SCHEDULE_ARN, TARGET_ARN attributes).
  [EventBridge Scheduler User Guide: schedule types, flexible time windows, context attributes, DLQ]
* EventBridge scheduled rules: the `Scheduled Event` event (source `aws.events`, the rule ARN in `resources`,
  empty `detail`) to each target, with its input settings, retry policy and DLQ, like any rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdalab.clock import Clock, Clocks
from lambdalab.sources.retry import RetryPolicy
from lambdalab.sources.router import SourceRouter, iso_s
from lambdalab.sources.schedule_expr import At, Expression, Rate, ScheduleError, next_fire, parse, timezone_of
from lambdalab.sources.targets import Target

LOG = logging.getLogger(__name__)

TICK_S = 0.05  # how often due schedules are checked (wall seconds)
REFRESH_S = 0.5  # how often moto's schedules and rules are re-read


class ScheduleClock:
    """Schedule time (aware UTC datetimes): the epoch clock's time at `start` (default: now), then `1 / time_scale`
    times as fast. `epoch` is the local cloud's epoch clock (a virtual one in tests)."""

    def __init__(self, time_scale: float, epoch: Clock, start: float | None = None) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self.time_scale = time_scale
        self._epoch = epoch
        self._start = epoch.now() if start is None else start

    def fork(self) -> ScheduleClock:
        """A clock for a new schedule: the same compression, starting at the real time now."""
        return ScheduleClock(self.time_scale, self._epoch)

    def now(self) -> datetime:
        elapsed = (self._epoch.now() - self._start) / self.time_scale
        return datetime.fromtimestamp(self._start + elapsed, UTC)

    def wall_seconds_until(self, when: datetime) -> float:
        return max(0.0, (when - self.now()).total_seconds() * self.time_scale)


@dataclass
class _Entry:
    key: str  # the schedule or rule ARN
    fingerprint: str  # what it was built from: a change rebuilds the entry
    expression: Expression
    zone: Any
    anchor: datetime | None
    start: datetime | None
    end: datetime | None
    window_s: float  # flexible time window, schedule seconds
    fire: Callable[[datetime], None]
    clock: ScheduleClock
    next_at: datetime | None = None
    due_at: datetime | None = None  # next_at plus the flexible offset
    fired: int = 0


def _date(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError):
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Scheduler:
    """Reads moto's schedules and scheduled rules every REFRESH_S and fires them through `router`."""

    def __init__(
        self,
        router: SourceRouter,
        *,
        region: str,
        account_id: str,
        clocks: Clocks,
        time_scale: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.router = router
        self.region = region
        self.account_id = account_id
        self.monotonic = clocks.monotonic  # when moto's definitions are re-read
        self.clock = ScheduleClock(time_scale, clocks.epoch)  # schedule time
        self.rng = rng or random.Random()
        self.entries: dict[str, _Entry] = {}
        self.fired: list[tuple[str, datetime]] = []  # (ARN, scheduled time) of every run, for tests and reports
        self._task: asyncio.Task[None] | None = None
        self._refreshed: float | None = None  # monotonic time of the last refresh
        self._warned: set[str] = set()

    @property
    def compressed(self) -> bool:
        return self.clock.time_scale != 1.0

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._task.set_name("scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(TICK_S)

    async def tick(self) -> int:
        """One pass: re-read the definitions if REFRESH_S have passed on the monotonic clock, then fire what is due
        on the schedule clocks. Returns how many runs fired."""
        if self._refreshed is None or self.monotonic.now() - self._refreshed >= REFRESH_S:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                LOG.exception("reading schedules failed")
            self._refreshed = self.monotonic.now()
        return self.fire_due()

    # --- definitions ----------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read moto's Scheduler schedules and default-bus scheduled rules (in process: moto's own state)."""
        from moto.events.models import events_backends
        from moto.scheduler.models import scheduler_backends

        seen: set[str] = set()
        scheduler = scheduler_backends[self.account_id][self.region]
        for group in list(scheduler.schedule_groups.values()):
            for schedule in list(group.schedules.values()):
                if schedule.state == "ENABLED":
                    self._keep_schedule(schedule)
                    seen.add(schedule.arn)
        events = events_backends[self.account_id][self.region]
        bus = events.event_buses.get("default")
        for rule in list(bus.rules.values()) if bus is not None else []:
            if rule.scheduled_expression and rule.state == "ENABLED":
                self._keep_rule(rule)
                seen.add(rule.arn)
        for key in set(self.entries) - seen:
            del self.entries[key]

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            LOG.warning("%s", message)

    def _keep_schedule(self, schedule: Any) -> None:
        target = dict(schedule.target or {})
        fingerprint = json.dumps(
            [schedule.schedule_expression, schedule.schedule_expression_timezone, schedule.flexible_time_window,
             target, schedule.start_date, schedule.end_date, schedule.action_after_completion],
            sort_keys=True, default=str,
        )  # fmt: skip
        existing = self.entries.get(schedule.arn)
        if existing is not None and existing.fingerprint == fingerprint:
            return
        try:
            zone = timezone_of(schedule.schedule_expression_timezone)
            expression = parse(schedule.schedule_expression, zone=zone)
        except ScheduleError as exc:
            self._warn_once(schedule.arn, f"schedule {schedule.arn}: {exc}; not run locally")
            return
        window = schedule.flexible_time_window or {}
        window_s = float(window.get("MaximumWindowInMinutes") or 0) * 60 if window.get("Mode") == "FLEXIBLE" else 0.0
        anchor = _date(schedule.start_date) or _date(schedule.creation_date)
        arn = schedule.arn

        def fire(when: datetime) -> None:
            self._fire_schedule(arn, target, when, expression, schedule)

        self._add(
            arn, fingerprint=fingerprint, expression=expression, zone=zone, anchor=anchor,
            start=_date(schedule.start_date), end=_date(schedule.end_date), window_s=window_s, fire=fire,
        )  # fmt: skip

    def _keep_rule(self, rule: Any) -> None:
        targets = [dict(t) for t in rule.targets]
        fingerprint = json.dumps([rule.scheduled_expression, targets], sort_keys=True, default=str)
        existing = self.entries.get(rule.arn)
        if existing is not None and existing.fingerprint == fingerprint:
            return
        try:
            expression = parse(rule.scheduled_expression, allow_at=False)
        except ScheduleError as exc:
            self._warn_once(rule.arn, f"rule {rule.arn}: {exc}; not run locally")
            return
        arn, name = rule.arn, rule.name

        def fire(when: datetime) -> None:
            event = self.router.eventbridge_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[arn],
                event_time=when.timestamp(),
            )  # fmt: skip
            self.router.on_rule_match(arn, name, targets, event)

        created = _date(getattr(rule, "creation_time", None))
        self._add(
            arn, fingerprint=fingerprint, expression=expression, zone=UTC, anchor=created, start=None, end=None,
            window_s=0.0, fire=fire,
        )  # fmt: skip

    def _add(
        self,
        key: str,
        *,
        fingerprint: str,
        expression: Expression,
        zone: Any,
        anchor: datetime | None,
        start: datetime | None,
        end: datetime | None,
        window_s: float,
        fire: Callable[[datetime], None],
    ) -> None:
        previous = self.entries.get(key)
        clock = previous.clock if previous is not None else self.clock.fork()
        if previous is None and isinstance(expression, At) and expression.when <= clock.now():
            anchor = None  # an at() already due when created runs once, at once
        entry = _Entry(key, fingerprint, expression, zone, anchor, start, end, window_s, fire, clock)
        if previous is None:
            after = clock.now()
            if isinstance(expression, At) and expression.when <= after:
                after = expression.when - timedelta(microseconds=1)
            elif isinstance(expression, Rate) and anchor is not None and anchor < after:
                anchor = after  # rates count from when the local cloud saw the schedule
                entry.anchor = anchor
        else:
            after = (previous.next_at or clock.now()) - timedelta(microseconds=1)
        self._schedule_next(entry, after)
        self.entries[key] = entry

    def _schedule_next(self, entry: _Entry, after: datetime) -> None:
        if entry.start is not None and after < entry.start:
            after = entry.start - timedelta(microseconds=1)
        entry.next_at = next_fire(entry.expression, after, zone=entry.zone, anchor=entry.anchor)
        if entry.next_at is not None and entry.end is not None and entry.next_at > entry.end:
            entry.next_at = None
        offset = self.rng.uniform(0.0, entry.window_s) if entry.window_s > 0 else 0.0
        entry.due_at = None if entry.next_at is None else entry.next_at + timedelta(seconds=offset)

    # --- firing ---------------------------------------------------------------------------------------------------

    def fire_due(self) -> int:
        fired = 0
        for entry in list(self.entries.values()):
            now = entry.clock.now()
            while entry.due_at is not None and entry.due_at <= now:
                scheduled = entry.next_at
                assert scheduled is not None
                entry.fired += 1
                self.fired.append((entry.key, scheduled))
                fired += 1
                try:
                    entry.fire(scheduled)
                except Exception:
                    LOG.exception("firing %s failed", entry.key)
                self._schedule_next(entry, scheduled)
        return fired

    def _fire_schedule(
        self, arn: str, target: dict[str, Any], when: datetime, expression: Expression, schedule: Any
    ) -> None:
        target_arn = str(target.get("Arn", ""))
        if target_arn.startswith("arn:aws:scheduler:::aws-sdk:"):
            self._warn_once(f"{arn}:universal", f"schedule {arn}: universal targets ({target_arn}) are not run locally")
            return
        execution_id = str(uuid.uuid4())
        template = str(target.get("Input") if target.get("Input") is not None else "{}")

        def payload(attempt: int) -> str:
            return (
                template.replace("<aws.scheduler.schedule-arn>", arn)
                .replace("<aws.scheduler.scheduled-time>", iso_s(when.timestamp()))
                .replace("<aws.scheduler.execution-id>", execution_id)
                .replace("<aws.scheduler.attempt-number>", str(attempt))
            )

        bridge = target.get("EventBridgeParameters") or {}
        destination = Target(
            target_arn,
            message_group_id=(target.get("SqsParameters") or {}).get("MessageGroupId"),
            partition_key=(target.get("KinesisParameters") or {}).get("PartitionKey"),
            detail_type=bridge.get("DetailType"),
            source=bridge.get("Source"),
        )
        try:
            policy = RetryPolicy.from_api(target.get("RetryPolicy"))
        except ValueError:
            policy = RetryPolicy()
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        attributes = {"EXECUTION_ID": execution_id, "SCHEDULE_ARN": arn, "TARGET_ARN": target_arn}
        self.router.bridge.submit(
            self.router.deliver_with_retries(
                destination,
                payload(1),
                policy=policy,
                dlq=dlq,
                dlq_attributes=attributes,
                kind="scheduler",
                attempt_hook=payload,
            )
        )
        if isinstance(expression, At) and schedule.action_after_completion == "DELETE":
            self.router.bridge.submit(self._delete(schedule.group_name, schedule.name))

    async def _delete(self, group: str, name: str) -> None:
        from lambdalab.awsclients import local_client

        def delete() -> None:
            client = local_client("scheduler", self.router.delivery.moto_url, self.region)
            with contextlib.suppress(Exception):
                client.delete_schedule(GroupName=group, Name=name)

        await asyncio.to_thread(delete)
