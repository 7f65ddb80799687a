"""How long one request has waited for this machine so far — never Lambda's time.

A request's local waits are: held at admission while INITs are held up by this machine (LambdaService._admit), and
the INIT of its environment queued for a CPU token or ready to run without a CPU (the environment measures it). The
caller that made the request (API Gateway) reads the total while it waits, so its integration timeout counts only
what AWS would count: a wait this machine causes never turns into a 504 AWS would not give. Pure; durations on
whatever monotonic clock the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable


class LocalWait:
    """Finished waits, the one under way, and the INIT being waited on (read live from its environment)."""

    def __init__(self) -> None:
        self._done = 0.0
        self._since: float | None = None
        self._live: Callable[[], float] | None = None

    def begin(self, now: float) -> None:
        """A wait for this machine begins (at `now`)."""
        if self._since is None:
            self._since = now

    def end(self, now: float) -> None:
        if self._since is not None:
            self._done += max(now - self._since, 0.0)
            self._since = None

    def watch(self, so_far: Callable[[], float]) -> None:
        """An INIT this request waits on: its local wait so far is counted live until `settle`."""
        self._live = so_far

    def settle(self, seconds: float) -> None:
        """The INIT is over: its local wait, as measured at its end, replaces the live reading."""
        self._live = None
        self._done += max(seconds, 0.0)

    def seconds(self, now: float) -> float:
        ongoing = max(now - self._since, 0.0) if self._since is not None else 0.0
        live = self._live() if self._live is not None else 0.0
        return self._done + ongoing + live
