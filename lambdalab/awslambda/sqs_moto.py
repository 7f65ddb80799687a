"""Make moto's SQS usable with thousands of messages: its per-message clock reads go through datetime arithmetic.

moto 5 checks every message's visibility with `unix_time_millis()`, which builds two datetimes per call (~13 µs);
every SendMessage, ReceiveMessage and queue-attribute read scans the whole queue, so at 2,500 messages one call
took over a second. The same value from `time.time()` costs ~0.1 µs. Only the SQS module's references are replaced,
with functions that answer exactly what moto's do for "now" (and defer to moto's for an explicit datetime).
"""

from __future__ import annotations

import datetime
import logging
import time

LOG = logging.getLogger(__name__)

_PATCHED = False


def speed_up_moto_sqs() -> None:
    """Idempotent; call in the process that runs moto's server."""
    global _PATCHED  # noqa: PLW0603 - one process-wide patch of a third-party module
    if _PATCHED:
        return
    from moto.core import utils as core_utils
    from moto.sqs import models

    slow_unix_time = core_utils.unix_time

    def unix_time(dt: datetime.datetime | None = None) -> float:
        return time.time() if dt is None else slow_unix_time(dt)

    def unix_time_millis(dt: datetime.datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    _PATCHED = True
    LOG.debug("moto SQS reads the clock with time.time()")
