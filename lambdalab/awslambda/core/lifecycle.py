"""The invocation lifecycle as a sans-IO state machine: events in, commands out; every decision made by the policy.

What the Lambda service sequences around the pure policy (service.py `_run`, leases.py `acquire` and `prewarm`, the
reaper and the async dispatcher), written once so that any host can drive it: the simulator's discrete-event loop
(lambdalab/simulate/) does today, and the asyncio service can. It performs no I/O and reads no clock of its own:
time comes from the policy's injected clock.

Events (methods) → commands (return values):

* `invoke(attempt)` → `Reject` (throttled: reason and retry-after from the policy), `Spawn` (a cold start: start
  the environment and run INIT with `init_deadline`; the attempt waits for it) or `Run` (warm or provisioned:
  hand the attempt to the environment, under `deadline`).
* `init_done(env_id)` → `Run` for the attempt that waited (on demand) or nothing (a provisioned pre-warm is ready).
* `init_failed(env_id, error)` → `Answer` (INIT_ERROR) + `Kill`, or `Kill` alone for a provisioned pre-warm (its
  configuration is FAILED, as the policy records).
* `init_timed_out(env_id)`: the INIT deadline passed. On demand: Lambda resets the environment and runs INIT again
  inside the invoke, under the function timeout → `Run(reinit=True)`. Provisioned: INIT failed.
* `run_done(env_id, outcome)` → `Answer` first, then `Kill` when the environment is discarded (timeout, crash) or
  retired, and `Spawn` of a provisioned replacement.
* `set_provisioned` / `delete_provisioned` → `Spawn` (provisioned-concurrency INIT, no cap) and `Kill`.
* `reap()` → `Kill` for idle on-demand environments past their keep-alive; `next_reap_at()` says when to call it.
* Asynchronous invocations: `accept_async(event)`; `dispatch_async()` → commands for due events (each attempt is an
  ordinary `invoke`) and `Dispose` for events that expired queued; an attempt of an async event answers with
  `Dispose` (the queue's disposition: requeued, succeeded, destination, DLQ or discarded) after its `Answer`.

Rules applied here, with sources (the rest are the policy's and the queue's):

* On-demand INIT is capped at 10 s; past it the INIT is retried during the first invoke under the function timeout;
  provisioned INIT may run "130 seconds or the configured function timeout (maximum 900 seconds), whichever is
  higher". [Lambda execution environment lifecycle] (The process host of the local cloud, runtime/environment.py,
  applies the same two limits; `provisioned_init_limit` is the one place to take them from.)
* A timeout or a crash discards the environment; a ready provisioned one is replaced. [Lambda timeouts]
* An async attempt that is throttled goes back to the queue with backoff; with reserved concurrency 0 it fails at
  once (`ZeroReservedConcurrency`). [Asynchronous invocation]

Hot path: a warm call is `invoke` → one `Run`, then `run_done` → one `Answer`: two small objects and two policy
calls, nothing else allocated (bench/bench_simulate.py measures it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from lambdalab.awslambda.core.asyncq import AsyncEvent, AsyncQueue, Disposition
from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.awslambda.core.policy import Admitted, ConcurrencyPolicy, PolicyStateError, StartKind, Throttled
from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

# "130 seconds or the configured function timeout (maximum 900 seconds), whichever is higher" [Lambda execution
# environment lifecycle, provisioned concurrency INIT]
PROVISIONED_INIT_FLOOR_S = 130.0


def provisioned_init_limit(timeout_s: float) -> float:
    """How long a provisioned-concurrency INIT may run before it fails."""
    return max(PROVISIONED_INIT_FLOOR_S, float(timeout_s))


class Attempt:
    """One invocation attempt. The caller fills the identity; the lifecycle fills the rest as it goes.

    `context` is the caller's (the payload, a virtual user, a Map iteration): the lifecycle never reads it.
    """

    __slots__ = (
        "async_event",
        "context",
        "env_id",
        "function",
        "init_retried",
        "kind",
        "outcome",
        "qualifier",
        "received_at",
        "request_id",
        "spillover",
        "throttle",
        "timeout_s",
        "version",
    )

    def __init__(
        self,
        request_id: str | int,
        function: str,
        version: str,
        qualifier: str,
        *,
        timeout_s: float,
        received_at: float,
        context: Any = None,
        async_event: AsyncEvent | None = None,
    ) -> None:
        self.request_id = request_id
        self.function = function
        self.version = version
        self.qualifier = qualifier
        self.timeout_s = timeout_s
        self.received_at = received_at
        self.context = context
        self.async_event = async_event
        self.env_id: str | None = None
        self.kind: StartKind | None = None
        self.spillover = False
        self.init_retried = False
        self.outcome: Outcome | None = None
        self.throttle: Throttled | None = None


class Command:
    """What the host must do. Subclasses are plain slotted classes (cheap to build on the hot path)."""

    __slots__ = ()


class Reject(Command):
    """Answer the attempt as throttled (429 TooManyRequestsException with `decision.reason`, Retry-After)."""

    __slots__ = ("attempt", "decision")

    def __init__(self, attempt: Attempt, decision: Throttled) -> None:
        self.attempt = attempt
        self.decision = decision


class Spawn(Command):
    """Start environment `env_id` and run its INIT; report `init_done`, `init_failed` or, once `init_deadline`
    (clock time) passes first, `init_timed_out`. `attempt` is the request waiting for it (None: provisioned)."""

    __slots__ = ("attempt", "env_id", "function", "init_deadline", "init_type", "qualifier", "version")

    def __init__(
        self,
        env_id: str,
        function: str,
        version: str,
        *,
        qualifier: str | None,
        init_type: str,
        init_deadline: float,
        attempt: Attempt | None,
    ) -> None:
        self.env_id = env_id
        self.function = function
        self.version = version
        self.qualifier = qualifier
        self.init_type = init_type  # AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand" | "provisioned-concurrency"
        self.init_deadline = init_deadline
        self.attempt = attempt


class Run(Command):
    """Hand `attempt` to environment `env_id`; it must end by `deadline` (clock time) or time out. With `reinit`,
    the environment first runs INIT again inside this invoke (after an on-demand INIT timeout)."""

    __slots__ = ("attempt", "deadline", "env_id", "reinit")

    def __init__(self, env_id: str, attempt: Attempt, deadline: float, reinit: bool = False) -> None:
        self.env_id = env_id
        self.attempt = attempt
        self.deadline = deadline
        self.reinit = reinit


class Answer(Command):
    """The attempt is over: `attempt.outcome` says how (the caller answers its client)."""

    __slots__ = ("attempt",)

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt


class Kill(Command):
    """Stop environment `env_id` (the policy already counts it DEAD)."""

    __slots__ = ("env_id", "reason")

    def __init__(self, env_id: str, reason: str) -> None:
        self.env_id = env_id
        self.reason = reason


class Dispose(Command):
    """An asynchronous event's disposition from the queue: deliver it (destination, DLQ) or note it."""

    __slots__ = ("disposition",)

    def __init__(self, disposition: Disposition) -> None:
        self.disposition = disposition


_NOTHING: tuple[Command, ...] = ()
# enum members as module constants on the hot path (an enum class attribute costs ~200 ns on CPython 3.11)
_COLD = StartKind.COLD
_SUCCESS, _FUNCTION_ERROR, _THROTTLED = Outcome.SUCCESS, Outcome.FUNCTION_ERROR, Outcome.THROTTLED


class Lifecycle:
    """Sequences invocations and environments around one `ConcurrencyPolicy` (and optionally an `AsyncQueue`).

    Owns only what the policy does not: the attempt waiting for each environment and the attempt running in it.
    Single-threaded by contract, like the policy.
    """

    def __init__(
        self,
        policy: ConcurrencyPolicy,
        clock: Clock,
        *,
        queue: AsyncQueue | None = None,
        timeout_of: Callable[[str, str], float] | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.queue = queue
        # (function, version) → timeout in seconds, for provisioned INIT limits (no attempt carries one then)
        self._timeout_of = timeout_of or (lambda function, version: 900.0)
        self._waiting: dict[str, Attempt] = {}  # env id → the attempt its (on-demand) INIT serves
        self._running: dict[str, Attempt] = {}  # env id → the attempt it runs
        self._init_cap = policy.limits.init_cap_s

    # --- invocations ---------------------------------------------------------------------------------------------

    def invoke(self, attempt: Attempt) -> Command:
        decision = self.policy.admit(attempt.function, attempt.version, attempt.qualifier)
        if type(decision) is not Admitted:
            assert isinstance(decision, Throttled)
            attempt.outcome = _THROTTLED
            attempt.throttle = decision
            return Reject(attempt, decision)
        env_id = decision.env_id
        attempt.env_id = env_id
        attempt.kind = decision.kind
        attempt.spillover = decision.spillover
        if decision.kind is _COLD:
            self._waiting[env_id] = attempt
            now = self.clock.now()
            return Spawn(
                env_id,
                attempt.function,
                attempt.version,
                qualifier=None,
                init_type="on-demand",
                init_deadline=now + self._init_cap,
                attempt=attempt,
            )
        self._running[env_id] = attempt
        return Run(env_id, attempt, self.clock.now() + attempt.timeout_s)

    def init_done(self, env_id: str) -> Command | None:
        """INIT succeeded. A cold start's attempt runs now (its deadline starts with the invoke phase)."""
        self.policy.init_finished(env_id)
        attempt = self._waiting.pop(env_id, None)
        if attempt is None:
            return None
        self._running[env_id] = attempt
        return Run(env_id, attempt, self.clock.now() + attempt.timeout_s)

    def init_failed(self, env_id: str, reason: str) -> tuple[Command, ...]:
        """INIT failed (an error in the function's INIT code, or the process could not start)."""
        with contextlib.suppress(PolicyStateError):  # retired or its function deleted meanwhile: already DEAD
            self.policy.init_failed(env_id, reason)
        attempt = self._waiting.pop(env_id, None)
        if attempt is None:
            return (Kill(env_id, "init failed"),)
        attempt.outcome = Outcome.INIT_ERROR
        return (Answer(attempt), Kill(env_id, "init failed"), *self._settle_async(attempt))

    def init_timed_out(self, env_id: str) -> tuple[Command, ...]:
        """The INIT deadline passed before INIT ended. On demand: run INIT again inside the invoke (the policy counts
        the environment BUSY from now); provisioned: the INIT failed."""
        attempt = self._waiting.pop(env_id, None)
        if attempt is None:
            limit = provisioned_init_limit(self._timeout_of(*self._identity(env_id)))
            return self.init_failed(env_id, f"Sandbox.Timedout: INIT phase timed out after {limit:.2f} seconds")
        self.policy.init_finished(env_id)
        attempt.init_retried = True
        self._running[env_id] = attempt
        return (Run(env_id, attempt, self.clock.now() + attempt.timeout_s, reinit=True),)

    def run_done(self, env_id: str, outcome: Outcome) -> tuple[Command, ...]:
        """The invoke ended: SUCCESS or FUNCTION_ERROR keep the environment; TIMEOUT and CRASH discard it."""
        attempt = self._running.pop(env_id)
        attempt.outcome = outcome
        answer = Answer(attempt)
        if outcome is _SUCCESS or outcome is _FUNCTION_ERROR:
            if self.policy.release(env_id):
                if attempt.async_event is None:
                    return (answer,)
                return (answer, *self._settle_async(attempt))
            commands: list[Command] = [answer, Kill(env_id, "retired")]
        else:
            replacements = self.policy.discard(env_id, outcome.value)
            commands = [answer, Kill(env_id, outcome.value)]
            commands.extend(self._spawn_provisioned(new_id) for new_id in replacements)
        commands.extend(self._settle_async(attempt))
        return tuple(commands)

    # --- provisioned concurrency and reaping ----------------------------------------------------------------------

    def set_provisioned(self, function: str, qualifier: str, version: str, count: int) -> list[Command]:
        """PutProvisionedConcurrencyConfig (or an alias moved): pre-warm the new environments, stop the retired ones.
        Raises PolicyError for an impossible setting, as the policy decides."""
        change = self.policy.set_provisioned(function, qualifier, version, count)
        commands: list[Command] = [Kill(env_id, "provisioned concurrency reduced") for env_id in change.retire]
        commands.extend(self._spawn_provisioned(env_id) for env_id in change.create)
        return commands

    def delete_provisioned(self, function: str, qualifier: str) -> list[Command]:
        doomed = self.policy.delete_provisioned(function, qualifier)
        return [Kill(env_id, "provisioned concurrency deleted") for env_id in doomed]

    def reap(self) -> list[Command]:
        return [Kill(env_id, "idle past keep-alive") for env_id in self.policy.reap_idle()]

    def next_reap_at(self) -> float | None:
        return self.policy.next_reap_at()

    def in_flight(self) -> int:
        """Attempts admitted and not yet answered (waiting for an INIT or running)."""
        return len(self._waiting) + len(self._running)

    # --- asynchronous invocations --------------------------------------------------------------------------------

    def accept_async(self, event: AsyncEvent) -> None:
        """Invoke with InvocationType=Event: answered 202, queued (never throttled at the front door)."""
        self._queue().accept(event)

    def dispatch_async(self, make_attempt: Callable[[AsyncEvent], Attempt]) -> list[Command]:
        """Expired events and an attempt for every due event; call again at `queue.next_due_at()`."""
        queue = self._queue()
        commands: list[Command] = [Dispose(d) for d in queue.take_expired()]
        for event in queue.due():
            attempt = make_attempt(event)
            attempt.async_event = event
            command = self.invoke(attempt)
            if type(command) is Reject:
                commands.append(command)
                commands.extend(self._settle_async(attempt))
            else:
                commands.append(command)
        commands.extend(Dispose(d) for d in queue.take_expired())
        return commands

    # --- internals -----------------------------------------------------------------------------------------------

    def _queue(self) -> AsyncQueue:
        if self.queue is None:
            raise RuntimeError("this lifecycle has no asynchronous queue")
        return self.queue

    def _settle_async(self, attempt: Attempt) -> tuple[Command, ...]:
        """The queue's disposition of an async attempt's outcome."""
        event = attempt.async_event
        if event is None:
            return _NOTHING
        queue = self._queue()
        outcome = attempt.outcome
        if outcome is Outcome.THROTTLED:
            assert attempt.throttle is not None
            zero = self.policy.reserved(attempt.function) == 0
            disposition = queue.on_throttle(event, attempt.throttle.reason.value, reserved_zero=zero)
        elif outcome is Outcome.SUCCESS:
            disposition = queue.on_success(event, None, attempt.version)
        else:
            assert outcome is not None
            error = "Sandbox.Timedout" if outcome is Outcome.TIMEOUT else "Runtime.ExitError"
            if outcome is Outcome.FUNCTION_ERROR or outcome is Outcome.INIT_ERROR:
                error = "Unhandled"
            disposition = queue.on_function_error(event, error, outcome.value, executed_version=attempt.version)
        return (Dispose(disposition),)

    def _identity(self, env_id: str) -> tuple[str, str]:
        record = self.policy.environment(env_id)
        return record.function, record.version

    def _spawn_provisioned(self, env_id: str) -> Spawn:
        record = self.policy.environment(env_id)
        limit = provisioned_init_limit(self._timeout_of(record.function, record.version))
        return Spawn(
            env_id,
            record.function,
            record.version,
            qualifier=record.qualifier,
            init_type="provisioned-concurrency",
            init_deadline=self.clock.now() + limit,
            attempt=None,
        )
