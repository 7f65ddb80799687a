"""When this machine, not Lambda, shaped the results: a line in `lambdalab up`'s output, at most every few seconds.

Every invocation record says how long it waited for this machine (``init_local_wait_s``: its INIT queued for a CPU
token or had no CPU; ``local_wait_s``: that plus the invoke's run-queue delay) and whether it failed for a local
reason (``outcome == "local_error"``). This tally turns them into one plain sentence per reporting interval, so a
user watching the output never mistakes the machine's limits for Lambda's behaviour.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.observe.model import InvocationRecord

NOTABLE_WAIT_S = 0.05  # below this a wait is noise, not worth a line


@dataclass
class Window:
    inits_waited: int = 0
    init_wait_s: float = 0.0
    calls_waited: int = 0
    wait_s: float = 0.0
    local_errors: int = 0

    def notable(self) -> bool:
        return self.local_errors > 0 or self.wait_s >= NOTABLE_WAIT_S


class LocalLimits:
    """Thread-safe tally of local waiting and local errors; `take()` returns the sentence for the window, if any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = Window()
        self.total = Window()

    def record(self, record: InvocationRecord) -> None:
        init_wait = record.init_local_wait_s or 0.0
        wait = record.local_wait_s or 0.0
        local_error = record.outcome == Outcome.LOCAL_ERROR
        if init_wait < 0.001 and wait < 0.001 and not local_error:
            return
        with self._lock:
            for window in (self._window, self.total):
                if init_wait >= 0.001:
                    window.inits_waited += 1
                    window.init_wait_s += init_wait
                if wait >= 0.001:
                    window.calls_waited += 1
                    window.wait_s += wait
                window.local_errors += local_error

    def take(self, seconds: float) -> str | None:
        with self._lock:
            window, self._window = self._window, Window()
        if not window.notable():
            return None
        parts = []
        if window.inits_waited:
            parts.append(f"{window.inits_waited} INITs waited {window.init_wait_s:.1f} s for a CPU")
        other = window.wait_s - window.init_wait_s
        if other >= NOTABLE_WAIT_S:
            parts.append(f"invocations waited {other:.1f} s more")
        if window.local_errors:
            parts.append(f"{window.local_errors} calls failed for a local reason (Lambdalab.LocalCapacity)")
        return (
            f"note: this machine limited the last {seconds:.0f} s: {'; '.join(parts)}. This is local waiting, not "
            "Lambda's behaviour: INIT durations and timeouts exclude it"
        )
