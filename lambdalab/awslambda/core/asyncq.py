"""Lambda's internal queue for asynchronous invocations: retry schedules, event age, destinations and DLQ.

Pure code on an injected `Clock`: no I/O, no threads, no asyncio, no wall-clock calls. The Lambda service calls it
from its one event-loop thread, so it holds no locks. It decides; the service runs events and delivers records.

Documented behaviour reproduced [Lambda developer guide, "Asynchronous invocation" and "Capturing records of Lambda
asynchronous invocations"; PutFunctionEventInvokeConfig API reference]:

* Invoke with InvocationType=Event returns 202 and queues the event (`accept`).
* Throttles (429) and system errors (5xx) go back to the queue and are retried with an interval growing
  exponentially from 1 second to at most 5 minutes, for as long as the event is younger than
  MaximumEventAgeInSeconds (60-21600, default 21600 = 6 h) (`on_throttle`, `on_system_error`).
* Function errors - returned by the code or by the runtime, timeouts and crashes (Runtime.ExitError) included - are
  retried MaximumRetryAttempts times (0-2, default 2): one minute after the first attempt, two minutes after the
  second (`on_function_error`).
* When an event fails every attempt or grows too old, Lambda sends an invocation record to the on-failure
  destination if one is set, else the event itself to the function's dead-letter queue if one is set, else it
  discards the event. We record every discard (counts, log, `discarded()`), never dropping one silently.
* With reserved concurrency 0, "Lambda begins sending new events to the configured dead-letter queue or the
  on-failure event destination, without any retries" (`on_throttle(..., reserved_zero=True)`).
* A successful event sends an invocation record to the on-success destination if one is set.
* Dead-letter messages carry the event as body and the attributes RequestID, ErrorCode (3-digit HTTP status) and
  ErrorMessage (first 1 KB).

Every delay and the maximum event age are multiplied by `time_scale` (1.0 faithful; tests and demos use e.g. 0.01).
Not modelled: Lambda slowing its reads of a backed-up queue, and duplicate deliveries.

Nothing is lost: at every moment each accepted event is in exactly one `EventState`, and `counts()` adds up to the
number accepted.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

from lambdalab.awslambda.core.control import EventInvokeConfig
from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

FUNCTION_ERROR_DELAYS_S = (60.0, 120.0)  # before the first and the second retry (MAX_RETRY_ATTEMPTS of them)
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
ERROR_MESSAGE_LIMIT = 1024  # bytes of ErrorMessage kept on a dead-letter message
HISTORY = 100_000  # finished events whose state `state_of` still knows
DISCARD_HISTORY = 1_000


class AsyncQueueError(Exception):
    """A caller bug: an unknown event, or one reported on while not in flight."""


class EventState(Enum):
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    DESTINATION = "destination"  # failed, record sent to the on-failure destination
    DLQ = "dlq"  # failed, event sent to the dead-letter queue
    DISCARDED = "discarded"  # failed with neither configured: recorded here, then gone


class Action(StrEnum):
    REQUEUED = "requeued"  # will run again at next_attempt_at
    SUCCEEDED = "succeeded"  # done; deliver `record` to `target_arn` if that is set (on-success destination)
    DESTINATION = "destination"  # deliver `record` to `target_arn` (on-failure destination)
    DLQ = "dlq"  # send `dlq_message` to `target_arn`
    DISCARDED = "discarded"  # nothing to deliver; `reason` says why


class Condition(StrEnum):
    SUCCESS = "Success"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


@dataclass
class AsyncEvent:
    """One asynchronous invocation. The caller fills the identity; the queue stamps and updates the rest."""

    event_id: str  # the request id: it stays the same across retries
    function: str
    qualifier: str | None  # as invoked: None or "$LATEST", a version or an alias
    payload: bytes
    function_arn: str = ""  # the ARN as invoked, for the invocation record
    trace_header: str | None = None
    accepted_epoch: float | None = None  # Unix time of acceptance, for the record's timestamp; None = clock time
    # stamped and updated by the queue
    accepted_at: float = 0.0  # clock time
    attempts: int = 0  # times the function actually ran (approximateInvokeCount)
    function_error_retries_used: int = 0
    backoff_retries: int = 0  # throttle / system-error retries so far
    next_attempt_at: float = 0.0
    state: EventState = EventState.QUEUED
    last_error: str | None = None  # error type of the last failed attempt
    last_error_message: str | None = None
    last_status_code: int | None = None
    last_function_error: str | None = None  # "Handled" | "Unhandled"
    last_executed_version: str | None = None
    last_response: bytes | None = None


@dataclass(frozen=True)
class DlqMessage:
    body: bytes
    attributes: dict[str, str]  # RequestID, ErrorCode, ErrorMessage


@dataclass(frozen=True)
class Disposition:
    """What the caller must do with an event after an attempt (or when it expired in the queue)."""

    action: Action
    event: AsyncEvent
    next_attempt_at: float | None = None
    target_arn: str | None = None
    record: dict[str, Any] | None = None  # the destination invocation record
    dlq_message: DlqMessage | None = None
    condition: Condition | None = None
    reason: str | None = None


@dataclass(frozen=True)
class QueueCounts:
    accepted: int
    queued: int
    in_flight: int
    succeeded: int
    destination: int
    dlq: int
    discarded: int

    def accounted(self) -> int:
        return self.queued + self.in_flight + self.succeeded + self.destination + self.dlq + self.discarded


@dataclass
class _Tally:
    accepted: int = 0
    by_state: dict[EventState, int] = field(default_factory=lambda: dict.fromkeys(EventState, 0))


class AsyncQueue:
    """The asynchronous-invocation queue of the local Lambda service. Single-threaded by contract.

    Loop of the caller: `take_expired()` and deliver; `due(limit)` and run each event (after the concurrency
    policy admits it); report each outcome with `on_success` / `on_function_error` / `on_throttle` /
    `on_system_error` and act on the returned `Disposition`; sleep until `next_due_at()` or a new `accept`.
    """

    def __init__(self, clock: Clock, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self._clock = clock
        self.time_scale = time_scale
        self._configs: dict[tuple[str, str], EventInvokeConfig] = {}  # (function, qualifier) → the one copy
        self._dlq: dict[str, str] = {}
        self._queued: dict[str, AsyncEvent] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._in_flight: dict[str, AsyncEvent] = {}
        self._finished: OrderedDict[str, EventState] = OrderedDict()
        self._expired: list[Disposition] = []
        self._discards: deque[Disposition] = deque(maxlen=DISCARD_HISTORY)
        self._tally = _Tally()

    # ------------------------------------------------------------------------------------------------------------
    # configuration

    def configure(self, config: EventInvokeConfig) -> None:
        """Put the event invoke config of its function's qualifier (validated when it was made)."""
        self._configs[(config.function_name, _qualifier(config.qualifier))] = config

    def unconfigure(self, function: str, qualifier: str | None) -> None:
        """Delete the event invoke config of a function's qualifier (None = unqualified), if any."""
        self._configs.pop((function, _qualifier(qualifier)), None)

    def configured(self, function: str, qualifier: str | None) -> EventInvokeConfig | None:
        """The config put for exactly this qualifier (None = unqualified / $LATEST), or None."""
        return self._configs.get((function, _qualifier(qualifier)))

    def configs_of(self, function: str) -> list[EventInvokeConfig]:
        """Every config put for the function, by qualifier."""
        return [config for (name, _), config in sorted(self._configs.items()) if name == function]

    def config_for(self, function: str, qualifier: str | None) -> EventInvokeConfig:
        """The config that applies to an event invoked as `qualifier`; AWS's defaults when none is set."""
        return self.configured(function, qualifier) or EventInvokeConfig(function, _qualifier(qualifier))

    def set_dead_letter(self, function: str, target_arn: str | None) -> None:
        """The function's DeadLetterConfig.TargetArn (SQS queue or SNS topic), or None."""
        if target_arn:
            self._dlq[function] = target_arn
        else:
            self._dlq.pop(function, None)

    def forget_function(self, function: str) -> list[Disposition]:
        """The function was deleted: its configs go, and its queued events are discarded (returned, recorded)."""
        for key in [k for k in self._configs if k[0] == function]:
            del self._configs[key]
        self._dlq.pop(function, None)
        out = []
        for event in [e for e in self._queued.values() if e.function == function]:
            del self._queued[event.event_id]
            out.append(self._discard(event, "function deleted"))
        return out

    # ------------------------------------------------------------------------------------------------------------
    # the queue

    def accept(self, event: AsyncEvent) -> AsyncEvent:
        """Queue a new event (Invoke with InvocationType=Event answered 202). It is due at once."""
        if event.event_id in self._queued or event.event_id in self._in_flight or event.event_id in self._finished:
            raise AsyncQueueError(f"event {event.event_id} was already accepted")
        now = self._clock.now()
        event.accepted_at = now
        if event.accepted_epoch is None:
            event.accepted_epoch = now
        event.attempts = event.function_error_retries_used = event.backoff_retries = 0
        self._tally.accepted += 1
        self._tally.by_state[EventState.QUEUED] += 1
        event.state = EventState.QUEUED
        self._schedule(event, now)
        return event

    def due(self, limit: int | None = None) -> list[AsyncEvent]:
        """Events whose time has come, earliest first, now IN_FLIGHT. Events past their maximum age are not
        returned: they are finished as EventAgeExceeded and wait in `take_expired()`."""
        now = self._clock.now()
        out: list[AsyncEvent] = []
        while self._heap and self._heap[0][0] <= now and (limit is None or len(out) < limit):
            when, _, event_id = heapq.heappop(self._heap)
            event = self._queued.get(event_id)
            if event is None or event.next_attempt_at != when:
                continue  # stale heap entry
            del self._queued[event_id]
            if now >= self._expires_at(event):
                self._expired.append(self._fail(event, Condition.EVENT_AGE_EXCEEDED, from_state=EventState.QUEUED))
                continue
            self._set_state(event, EventState.IN_FLIGHT)
            self._in_flight[event_id] = event
            out.append(event)
        return out

    def take_expired(self) -> list[Disposition]:
        """Dispositions of events that expired while queued (found by `due`); each is handed out once."""
        out, self._expired = self._expired, []
        return out

    def next_due_at(self) -> float | None:
        """When the earliest queued event is due (it may be in the past), or None if nothing is queued."""
        while self._heap:
            when, _, event_id = self._heap[0]
            event = self._queued.get(event_id)
            if event is not None and event.next_attempt_at == when:
                return when
            heapq.heappop(self._heap)
        return None

    # ------------------------------------------------------------------------------------------------------------
    # outcomes of an attempt

    def on_success(
        self, event: AsyncEvent, response_payload: bytes | None = None, executed_version: str | None = None
    ) -> Disposition:
        self._take_in_flight(event)
        event.attempts += 1
        event.last_status_code = 200
        event.last_function_error = None
        event.last_executed_version = executed_version
        event.last_response = response_payload
        self._set_state(event, EventState.SUCCEEDED)
        self._finish(event)
        config = self.config_for(event.function, event.qualifier)
        record = self._record(event, Condition.SUCCESS) if config.on_success_destination else None
        return Disposition(Action.SUCCEEDED, event, target_arn=config.on_success_destination, record=record)

    def on_function_error(
        self,
        event: AsyncEvent,
        error_type: str,
        message: str,
        *,
        handled: bool = False,
        response_payload: bytes | None = None,
        executed_version: str | None = None,
    ) -> Disposition:
        """The function ran and failed: an error it returned (handled) or one the runtime reported (unhandled:
        uncaught exception, timeout, crash `Runtime.ExitError`). Retried MaximumRetryAttempts times, 1 then 2 min
        later (scaled); then RetriesExhausted."""
        self._take_in_flight(event)
        event.attempts += 1
        event.last_error, event.last_error_message = error_type, message
        event.last_status_code = 200
        event.last_function_error = "Handled" if handled else "Unhandled"
        event.last_executed_version = executed_version
        event.last_response = response_payload
        config = self.config_for(event.function, event.qualifier)
        if event.function_error_retries_used >= config.maximum_retry_attempts:
            return self._fail(event, Condition.RETRIES_EXHAUSTED, from_state=EventState.IN_FLIGHT)
        delay = FUNCTION_ERROR_DELAYS_S[event.function_error_retries_used] * self.time_scale
        event.function_error_retries_used += 1
        return self._requeue(event, delay)

    def on_throttle(self, event: AsyncEvent, reason: str, *, reserved_zero: bool = False) -> Disposition:
        """The attempt was throttled (429, `reason` the throttle reason). Backoff retry until the event is too old;
        with reserved concurrency 0 the event fails at once, without retries (AWS)."""
        self._take_in_flight(event)
        event.last_error, event.last_error_message = "TooManyRequestsException", reason
        event.last_status_code = 429
        if reserved_zero:
            return self._fail(event, Condition.RETRIES_EXHAUSTED, from_state=EventState.IN_FLIGHT)
        return self._requeue(event, self._backoff(event))

    def on_system_error(self, event: AsyncEvent, message: str, status_code: int = 500) -> Disposition:
        """A 5xx on Lambda's side (e.g. the environment could not be started). Same backoff as throttles."""
        self._take_in_flight(event)
        event.last_error, event.last_error_message = "ServiceException", message
        event.last_status_code = status_code
        return self._requeue(event, self._backoff(event))

    # ------------------------------------------------------------------------------------------------------------
    # observation

    def counts(self) -> QueueCounts:
        s = self._tally.by_state
        return QueueCounts(
            accepted=self._tally.accepted,
            queued=s[EventState.QUEUED],
            in_flight=s[EventState.IN_FLIGHT],
            succeeded=s[EventState.SUCCEEDED],
            destination=s[EventState.DESTINATION],
            dlq=s[EventState.DLQ],
            discarded=s[EventState.DISCARDED],
        )

    def state_of(self, event_id: str) -> EventState | None:
        """The state of an event (None if unknown, or finished long enough ago to be forgotten)."""
        event = self._queued.get(event_id) or self._in_flight.get(event_id)
        if event is not None:
            return event.state
        return self._finished.get(event_id)

    def queued(self, function: str | None = None) -> list[AsyncEvent]:
        return [e for e in self._queued.values() if function is None or e.function == function]

    def in_flight(self) -> list[AsyncEvent]:
        return list(self._in_flight.values())

    def discarded(self) -> list[Disposition]:
        """The most recent discards (the last 1,000), with their reasons."""
        return list(self._discards)

    # ------------------------------------------------------------------------------------------------------------
    # internals

    def _expires_at(self, event: AsyncEvent) -> float:
        return (
            event.accepted_at + self.config_for(event.function, event.qualifier).maximum_event_age_s * self.time_scale
        )

    def _backoff(self, event: AsyncEvent) -> float:
        delay = min(BACKOFF_FIRST_S * 2.0**event.backoff_retries, BACKOFF_MAX_S)
        event.backoff_retries += 1
        return delay * self.time_scale

    def _schedule(self, event: AsyncEvent, when: float) -> None:
        event.next_attempt_at = when
        self._queued[event.event_id] = event
        heapq.heappush(self._heap, (when, next(self._seq), event.event_id))

    def _requeue(self, event: AsyncEvent, delay: float) -> Disposition:
        """Back to the queue after `delay`; if it would outlive its maximum age first, it is due when it expires,
        and `due()` finishes it as EventAgeExceeded then."""
        when = min(self._clock.now() + delay, self._expires_at(event))
        self._set_state(event, EventState.QUEUED)
        self._schedule(event, when)
        return Disposition(Action.REQUEUED, event, next_attempt_at=when)

    def _take_in_flight(self, event: AsyncEvent) -> None:
        if self._in_flight.pop(event.event_id, None) is None:
            raise AsyncQueueError(f"event {event.event_id} is not in flight (it is {self.state_of(event.event_id)})")

    def _set_state(self, event: AsyncEvent, state: EventState) -> None:
        self._tally.by_state[event.state] -= 1
        self._tally.by_state[state] += 1
        event.state = state

    def _finish(self, event: AsyncEvent) -> None:
        self._finished[event.event_id] = event.state
        while len(self._finished) > HISTORY:
            self._finished.popitem(last=False)

    def _fail(self, event: AsyncEvent, condition: Condition, *, from_state: EventState) -> Disposition:
        """Every attempt failed or the event is too old: on-failure destination, else DLQ, else discard."""
        assert event.state is from_state
        config = self.config_for(event.function, event.qualifier)
        if config.on_failure_destination:
            self._set_state(event, EventState.DESTINATION)
            self._finish(event)
            return Disposition(
                Action.DESTINATION,
                event,
                target_arn=config.on_failure_destination,
                record=self._record(event, condition),
                condition=condition,
            )
        dlq = self._dlq.get(event.function)
        if dlq:
            self._set_state(event, EventState.DLQ)
            self._finish(event)
            message = (event.last_error_message or condition.value).encode()[:ERROR_MESSAGE_LIMIT]
            attributes = {
                "RequestID": event.event_id,
                "ErrorCode": str(event.last_status_code or 200),
                "ErrorMessage": message.decode(errors="ignore"),
            }
            return Disposition(
                Action.DLQ,
                event,
                target_arn=dlq,
                dlq_message=DlqMessage(body=event.payload, attributes=attributes),
                condition=condition,
            )
        return self._discard(event, f"{condition.value}: {event.last_error or 'no error'}", condition=condition)

    def _discard(self, event: AsyncEvent, reason: str, condition: Condition | None = None) -> Disposition:
        self._set_state(event, EventState.DISCARDED)
        self._finish(event)
        LOG.warning(
            "async event %s of %s discarded after %s attempts: %s",
            event.event_id,
            event.function,
            event.attempts,
            reason,
        )
        disposition = Disposition(Action.DISCARDED, event, condition=condition, reason=reason)
        self._discards.append(disposition)
        return disposition

    def _record(self, event: AsyncEvent, condition: Condition) -> dict[str, Any]:
        """The invocation record AWS sends to a destination (version 1.0)."""
        assert event.accepted_epoch is not None
        epoch = event.accepted_epoch + (self._clock.now() - event.accepted_at)
        stamp = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        response_context: dict[str, Any] = {
            "statusCode": event.last_status_code or 200,
            "executedVersion": event.last_executed_version or _version_of(event.qualifier),
        }
        if condition is not Condition.SUCCESS and event.last_function_error:
            response_context["functionError"] = event.last_function_error
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": stamp,
            "requestContext": {
                "requestId": event.event_id,
                "functionArn": event.function_arn,
                "condition": condition.value,
                "approximateInvokeCount": event.attempts,
            },
            "requestPayload": _decode(event.payload),
            "responseContext": response_context,
        }
        if event.last_response is not None:
            record["responsePayload"] = _decode(event.last_response)
        elif condition is not Condition.SUCCESS and event.last_function_error:
            record["responsePayload"] = {"errorMessage": event.last_error_message, "errorType": event.last_error}
        return record


def _version_of(qualifier: str | None) -> str:
    return qualifier if qualifier and qualifier.isdigit() else "$LATEST"


def _decode(payload: bytes) -> Any:
    """A payload as JSON when it is JSON, else as text (AWS payloads are JSON)."""
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload.decode(errors="replace")


def _qualifier(qualifier: str | None) -> str:
    """Unqualified is $LATEST (one config for both)."""
    return qualifier or "$LATEST"
