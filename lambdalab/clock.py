"""Clocks for policy code: the wall clock in the local cloud, a virtual one in tests and simulations."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """What policy code may ask about time. Seconds as floats; only differences are meaningful."""

    def now(self) -> float: ...


class WallClock:
    """Monotonic wall time, for the running local cloud."""

    def now(self) -> float:
        return time.monotonic()


class VirtualClock:
    """A clock that moves only when told to, so time-based policy is tested exactly and instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._now += seconds

    def set(self, when: float) -> None:
        if when < self._now:
            raise ValueError(f"a clock cannot go back (from {self._now} to {when})")
        self._now = when


class EpochClock:
    """Unix epoch seconds, for metric periods and timestamps that must line up with CloudWatch and X-Ray."""

    def now(self) -> float:
        return time.time()


class VirtualEpoch:
    """Epoch seconds that move with a virtual clock: `start` plus that clock's time (tests and simulations)."""

    def __init__(self, clock: Clock, start: float = 1_800_000_000.0) -> None:
        self._clock = clock
        self._start = start

    def now(self) -> float:
        return self._start + self._clock.now()


@dataclass(frozen=True)
class Clocks:
    """The two clocks the composition root creates and passes down; nothing below it reads the time itself.

    `monotonic` measures durations and sets deadlines and timers (a wall-clock step changes none of them); `epoch`
    stamps what must line up with CloudWatch, X-Ray and the Lambda API (records, log lines, LastModified)."""

    monotonic: Clock
    epoch: Clock

    @classmethod
    def wall(cls) -> Clocks:
        return cls(WallClock(), EpochClock())

    @classmethod
    def virtual(cls, start_epoch: float = 1_800_000_000.0) -> tuple[VirtualClock, Clocks]:
        """A virtual monotonic clock (advance it) and the pair built on it."""
        clock = VirtualClock()
        return clock, cls(clock, VirtualEpoch(clock, start_epoch))
