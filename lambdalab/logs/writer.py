"""The log writer: Lambda and API Gateway hand it events and go on; a background thread batches them into the store.

`put` never blocks on the store: it appends to a deque (thread-safe, O(1)) and wakes the writer thread, which drains
everything pending in one pass, groups it per stream in arrival order and appends each run with one store call.
Within a stream, events keep the order they were put in: a timestamp earlier than the stream's previous one is
raised to it (the platform's clock and a child process's clock can disagree by a millisecond), so the store's
timestamp order is the arrival order. Nothing is dropped: `close` drains what is left.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from lambdalab.logs.store import LogStore

LOG = logging.getLogger(__name__)

Batch = tuple[str, str, list[tuple[int, str]], bool]  # group, stream, events, from Lambda (EMF is extracted)
Listener = Callable[[str, str, Sequence[tuple[int, str]]], None]


class LogWriter:
    """`put(group, stream, events)`; the writer thread creates groups and streams on first write."""

    def __init__(self, store: LogStore, *, emf_listener: Listener | None = None, interval_s: float = 0.02) -> None:
        self.store = store
        self.emf_listener = emf_listener
        self.interval_s = interval_s
        self._pending: deque[Batch] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._last: dict[tuple[str, str], int] = {}
        self._thread: threading.Thread | None = None
        self.batches_written = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lambdalab-logs-writer", daemon=True)
        self._thread.start()

    def put(self, group: str, stream: str, events: Iterable[tuple[int, str]], *, emf: bool = False) -> None:
        """Queue events (timestamp ms, message), in order, for one stream. Safe from any thread; never blocks."""
        batch = list(events)
        if not batch:
            return
        self._idle.clear()
        self._pending.append((group, stream, batch, emf))
        self._wake.set()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything put so far is in the store (tests, shutdown, readers that need their own writes)."""
        if self._thread is None:
            self._drain()
            return True
        for _ in range(max(1, math.ceil(timeout_s / 0.05))):  # each turn waits <= 0.05 s: bounded without a clock
            if self._idle.wait(0.05):
                if not self._pending:
                    return True
                time.sleep(0.05)  # idle was set just as a put came in: the writer has it next
            self._wake.set()
        return not self._pending

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._drain()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            if self.interval_s > 0:
                time.sleep(self.interval_s)  # let a burst of puts gather into one pass
            self._drain()

    def _drain(self) -> None:
        while self._pending:
            runs: dict[tuple[str, str], list[tuple[int, str]]] = {}
            emf_runs: dict[tuple[str, str], list[tuple[int, str]]] = {}
            while self._pending:
                group, stream, events, emf = self._pending.popleft()
                key = (group, stream)
                last = self._last.get(key, 0)
                kept = runs.setdefault(key, [])
                for timestamp, message in events:
                    last = max(last, int(timestamp))
                    kept.append((last, message))
                    if emf:
                        emf_runs.setdefault(key, []).append((last, message))
                self._last[key] = last
            for (group, stream), events in runs.items():
                try:
                    self.store.append(group, stream, events, create=True)
                except Exception:  # a deleted group is re-created; anything else is a bug to see, not to hide
                    LOG.exception("could not write %d log events to %s %s", len(events), group, stream)
            self.batches_written += 1
            if self.emf_listener is not None:
                for (group, stream), events in emf_runs.items():
                    try:
                        self.emf_listener(group, stream, events)
                    except Exception:
                        LOG.exception("embedded metric extraction failed for %s", group)
        if not self._pending:
            self._idle.set()
