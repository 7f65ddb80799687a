"""Make moto's SQS usable with thousands of messages and many threads.

Speed: moto 5 checks every message's visibility with `unix_time_millis()`, which builds two datetimes per call
(~13 µs); every SendMessage, ReceiveMessage and queue-attribute read scans the whole queue, so at 2,500 messages one
call took over a second. The same value from the local cloud's epoch clock (`time.time()`) costs ~0.1 µs. Only the
SQS module's references are replaced, with functions that answer what moto's do for "now", on the epoch clock
server.py passes (and defer to moto's for an explicit datetime). moto's other modules keep their own clock reads.

Thread safety: moto serves each request on its own thread. `Queue.add_message` appends under the queue's
`_messages_lock`, but `Queue.delete_message` rebuilds the message list without it and `receive_message` moves
messages to the dead-letter queue without it, so a SendMessage that lands while a DeleteMessage rebuilds the list is
silently lost (seen: 2 of 2,000 messages under load, never received by anyone, gone from the queue). Both now hold
the queue's lock (a Condition over an RLock: the long poll's `wait_for` inside ReceiveMessage releases it while it
waits), and so does PurgeQueue.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

_PATCHED = False


_THREAD_SAFE = False


def make_moto_sqs_thread_safe() -> None:
    """Idempotent; call in the process that runs moto's server (see the module docstring)."""
    global _THREAD_SAFE  # noqa: PLW0603 - one process-wide patch of a third-party module
    if _THREAD_SAFE:
        return
    from moto.sqs import models

    queue_delete = models.Queue.delete_message
    receive = models.SQSBackend.receive_message
    purge = models.SQSBackend.purge_queue

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            queue_delete(self, receipt_handle)

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            return receive(self, queue_name, *args, **kwargs)

    def purge_queue(self: Any, queue_name: str) -> None:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            purge(self, queue_name)

    models.Queue.delete_message = delete_message  # type: ignore[method-assign]
    models.SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    models.SQSBackend.purge_queue = purge_queue  # type: ignore[method-assign]
    _THREAD_SAFE = True


def speed_up_moto_sqs(epoch: Clock) -> None:
    """Idempotent (the first call's clock stays); call in the process that runs moto's server."""
    global _PATCHED  # noqa: PLW0603 - one process-wide patch of a third-party module
    if _PATCHED:
        return
    from moto.core import utils as core_utils
    from moto.sqs import models

    slow_unix_time = core_utils.unix_time
    now = epoch.now

    def unix_time(dt: datetime.datetime | None = None) -> float:
        return now() if dt is None else slow_unix_time(dt)

    def unix_time_millis(dt: datetime.datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    _PATCHED = True
    LOG.debug("moto SQS reads the local cloud's epoch clock")
