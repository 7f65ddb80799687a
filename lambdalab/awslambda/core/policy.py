"""Lambda's concurrency policy: admission (warm / cold / provisioned / spillover / throttle), pools and reaping.

Pure code: no I/O, no threads, no asyncio and no wall-clock calls; time comes from the injected `Clock`. The Lambda
service calls it from its one event-loop thread, so it holds no locks: it must not be shared between threads.

The policy tracks execution environments as records (`EnvironmentRecord`) with an explicit lifecycle (`EnvState`);
it never starts or stops a process. Whenever a call returns environment ids "to spawn" or "to kill", the caller
does that and reports back with `init_finished` / `init_failed` / `release` / `discard`.

AWS behaviour reproduced, with sources:

* Account concurrency (default 1,000 per Region) is shared by all functions; reserved concurrency carves a pool out
  of it for one function and caps that function; at least 100 must stay unreserved. [Lambda quotas;
  PutFunctionConcurrency API reference: "as long as you leave at least 100 simultaneous executions unreserved"]
* Provisioned concurrency is configured per alias or version (never $LATEST), counts towards the function's reserved
  concurrency and the Regional quota, is initialised before traffic, and calls beyond it spill over to on-demand
  environments. [Configuring provisioned concurrency; "Monitoring concurrency": ClaimedAccountConcurrency equals
  UnreservedConcurrentExecutions plus the total reserved plus the total provisioned concurrency]
* Each function scales by at most 1,000 new execution environments every 10 seconds, refilled continuously, not
  accumulated beyond 1,000. [Lambda scaling behavior, since Nov 2023]
* Throttles carry a reason: ReservedFunctionConcurrentInvocationLimitExceeded, ConcurrentInvocationLimitExceeded,
  FunctionInvocationRateLimitExceeded. [Invoke API reference, TooManyRequestsException]
* Metrics: "ConcurrentExecutions - the number of active concurrent invocations" (it includes invocations running on
  provisioned concurrency, and an on-demand environment in INIT for the request that caused it);
  "ProvisionedConcurrentExecutions - the number of execution environment instances that are actively processing an
  invocation on provisioned concurrency". [docs.aws.amazon.com/lambda/latest/dg/monitoring-concurrency.html]

Error wording (`PolicyError.message`) is AWS's where it is published or widely quoted:
"Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its
minimum value of [100]." (PutFunctionConcurrency), "Specified ConcurrentExecutions for function decreases account's
UnreservedConcurrentExecution below its minimum value of [100]." and "Requested Provisioned Concurrency should not be
greater than the reservedConcurrentExecution for function" (PutProvisionedConcurrencyConfig; both as returned by AWS
and reproduced by LocalStack's AWS-validated tests). The message for lowering reserved concurrency below the
function's provisioned concurrency is ours: we found no published AWS wording for it.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from lambdalab import constants
from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

LATEST = "$LATEST"
# How many DEAD records `environment()` can still look up; older ones are forgotten (counts are kept).
DEAD_HISTORY = 10_000


class EnvState(Enum):
    """An execution environment's lifecycle. Legal moves are in `_TRANSITIONS`; any other raises."""

    INIT = "init"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


_TRANSITIONS: dict[EnvState, frozenset[EnvState]] = {
    EnvState.INIT: frozenset({EnvState.BUSY, EnvState.IDLE, EnvState.DEAD}),
    EnvState.IDLE: frozenset({EnvState.BUSY, EnvState.DEAD}),
    EnvState.BUSY: frozenset({EnvState.IDLE, EnvState.DEAD}),
    EnvState.DEAD: frozenset(),
}


class Pool(StrEnum):
    ON_DEMAND = "on-demand"
    PROVISIONED = "provisioned"


class StartKind(StrEnum):
    COLD = "cold"
    WARM = "warm"
    PROVISIONED = "provisioned"


class ThrottleReason(StrEnum):
    RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"
    ACCOUNT = "ConcurrentInvocationLimitExceeded"
    SCALING_RATE = "FunctionInvocationRateLimitExceeded"  # the 1,000-per-10-s scaling rate is exhausted


# Enum members as module constants for the hot path: reading `EnvState.BUSY` goes through the enum's class attribute
# machinery (about 200 ns on CPython 3.11), a module global does not (bench/bench_simulate.py).
_INIT, _IDLE, _BUSY = EnvState.INIT, EnvState.IDLE, EnvState.BUSY
_ON_DEMAND, _PROVISIONED = Pool.ON_DEMAND, Pool.PROVISIONED
_COLD, _WARM, _PROVISIONED_START = StartKind.COLD, StartKind.WARM, StartKind.PROVISIONED
_RESERVED, _ACCOUNT, _SCALING_RATE = ThrottleReason.RESERVED, ThrottleReason.ACCOUNT, ThrottleReason.SCALING_RATE


class PolicyError(Exception):
    """An impossible setting. `code` is the AWS error code, `message` its AWS-worded message."""

    def __init__(self, message: str, code: str = "InvalidParameterValueException") -> None:
        self.message = message
        self.code = code
        super().__init__(message)


class PolicyStateError(Exception):
    """A caller bug: an unknown function or environment, or an illegal lifecycle transition."""


@dataclass(frozen=True)
class Limits:
    """Account limits and timings. Defaults are AWS's (lambdalab.constants)."""

    account_concurrency: int = constants.ACCOUNT_CONCURRENCY
    unreserved_minimum: int = constants.UNRESERVED_MINIMUM
    scale_burst: int = constants.SCALE_BURST  # token bucket capacity ...
    scale_period_s: float = constants.SCALE_PERIOD_SECONDS  # ... refilled at burst / period tokens per second
    init_cap_s: float = constants.ON_DEMAND_INIT_CAP_SECONDS
    keep_alive_s: float = constants.DEFAULT_KEEP_ALIVE_SECONDS

    def __post_init__(self) -> None:
        if self.account_concurrency < 1 or self.unreserved_minimum < 0:
            raise ValueError(f"bad account limits: {self.account_concurrency=} {self.unreserved_minimum=}")
        if self.unreserved_minimum > self.account_concurrency:
            raise ValueError("unreserved_minimum cannot exceed account_concurrency")
        if self.scale_burst < 1 or self.scale_period_s <= 0:
            raise ValueError(f"bad scaling rate: {self.scale_burst=} {self.scale_period_s=}")
        if self.keep_alive_s < 0 or self.init_cap_s <= 0:
            raise ValueError(f"bad timings: {self.keep_alive_s=} {self.init_cap_s=}")


@dataclass
class EnvironmentRecord:
    """One execution environment as the policy sees it. Mutated only by the policy; read it, don't write it."""

    env_id: str
    function: str
    version: str
    pool: Pool
    qualifier: str | None  # the alias or version owning a provisioned environment; None on demand
    state: EnvState
    created_at: float
    ready_at: float | None = None
    last_used_at: float | None = None
    invocations: int = 0
    retiring: bool = False  # provisioned env no longer wanted: killed when its current request ends
    died_at: float | None = None
    death_reason: str | None = None
    # The Admitted answers for reusing this environment (without / with spillover), built once: a frozen
    # dataclass costs about a microsecond to construct, a third of a warm admission (bench/bench_simulate.py).
    reuse_answers: tuple[Admitted, Admitted] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Admitted:
    """Run the request in `env_id`. kind COLD: a NEW record in INIT, counted as busy; the caller must spawn it."""

    env_id: str
    kind: StartKind
    spillover: bool


@dataclass(frozen=True)
class Throttled:
    reason: ThrottleReason
    retry_after_s: float


@dataclass(frozen=True)
class ProvisionChange:
    """What the caller must do after a provisioned-concurrency change."""

    create: list[str]  # env ids in INIT, PROVISIONED pool: spawn with init type provisioned-concurrency
    retire: list[str]  # env ids now DEAD: kill their processes (busy ones come later, through release())


@dataclass(frozen=True)
class ProvisionedStatus:
    """GetProvisionedConcurrencyConfig's view of one alias or version."""

    requested: int
    allocated: int  # environments that exist for it (INIT, IDLE or BUSY)
    available: int  # environments ready (IDLE or BUSY)
    status: str  # "IN_PROGRESS" | "READY" | "FAILED"
    status_reason: str | None
    version: str
    last_modified: float  # the stamp of the last write (set_provisioned's `modified_at`)


@dataclass
class _ProvisionedConfig:
    function: str
    qualifier: str
    version: str
    requested: int
    last_modified: float
    failure_reason: str | None = None


@dataclass
class _Bucket:
    """The per-function scaling-rate token bucket: `capacity` tokens, refilled at `rate` per second."""

    capacity: float
    rate: float
    tokens: float
    updated_at: float

    def refill(self, now: float) -> None:
        if now > self.updated_at:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.rate)
            self.updated_at = now

    def take(self, now: float) -> bool:
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def seconds_until_token(self, now: float) -> float:
        self.refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)


@dataclass
class _Function:
    name: str
    reserved: int | None = None
    bucket: _Bucket | None = None
    # counters kept in step with the records by ConcurrencyPolicy._count
    usage: int = 0  # what counts against reserved / account: on-demand INIT+BUSY, provisioned allocated + retiring
    executions: int = 0  # ConcurrentExecutions: on-demand INIT+BUSY + provisioned BUSY
    provisioned: dict[str, _ProvisionedConfig] = field(default_factory=dict)

    def provisioned_requested(self) -> int:
        return sum(c.requested for c in self.provisioned.values())


class ConcurrencyPolicy:
    """Decides, for every invocation, where it runs or why it is throttled. Single-threaded by contract."""

    def __init__(self, clock: Clock, limits: Limits | None = None) -> None:
        self._clock = clock
        self.limits = limits if limits is not None else Limits()
        self._functions: dict[str, _Function] = {}
        self._envs: dict[str, EnvironmentRecord] = {}  # every environment not DEAD
        self._dead: OrderedDict[str, EnvironmentRecord] = OrderedDict()
        self._dead_count = 0
        # idle indexes, insertion-ordered so the most recently used is last
        self._idle_on_demand: dict[tuple[str, str], dict[str, None]] = {}
        self._idle_provisioned: dict[tuple[str, str], dict[str, None]] = {}
        # per (function, qualifier): provisioned records not DEAD and not retiring; and those ready / busy
        self._pc_allocated: dict[tuple[str, str], int] = {}
        self._pc_ready: dict[tuple[str, str], int] = {}
        self._pc_busy: dict[tuple[str, str], int] = {}
        # running totals kept in step by _count and set_reserved, so admission never sums over functions
        self._account_usage = 0
        self._unreserved_usage_total = 0  # usage of the functions without reserved concurrency
        self._reserved_total = 0
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------------------------------
    # functions and settings

    def add_function(self, name: str) -> None:
        if name in self._functions:
            raise PolicyStateError(f"function {name} already exists")
        self._functions[name] = _Function(name=name)

    def has_function(self, name: str) -> bool:
        return name in self._functions

    def remove_function(self, name: str) -> list[str]:
        """Forget the function; every environment of it is now DEAD. Returns the env ids to kill."""
        self._function(name)
        doomed = [rec.env_id for rec in self._envs.values() if rec.function == name]
        for env_id in doomed:
            self._kill(self._envs[env_id], "function deleted")
        self._reserved_total -= self._functions[name].reserved or 0
        del self._functions[name]
        return doomed

    def reserved(self, function: str) -> int | None:
        return self._function(function).reserved

    def set_reserved(self, function: str, value: int | None) -> None:
        """PutFunctionConcurrency (value) / DeleteFunctionConcurrency (None). 0 throttles every invocation.

        Rules: value >= 0; the account keeps at least `unreserved_minimum` unreserved after it, counting the
        provisioned concurrency of unreserved functions as claimed (ClaimedAccountConcurrency); value >= the
        provisioned concurrency configured on the function. Lowering it below what is running now is allowed, as on
        AWS: running requests finish, new ones are throttled until usage is under the new value.
        """
        fn = self._function(function)
        if value is None:
            self._set_reserved_value(fn, None)
            LOG.info("reserved concurrency of %s removed", function)
            return
        if value < 0:
            raise PolicyError(
                f"1 validation error detected: Value '{value}' at 'reservedConcurrentExecutions' failed to satisfy "
                "constraint: Member must have value greater than or equal to 0",
                code="ValidationException",
            )
        other_reserved = sum(f.reserved or 0 for f in self._functions.values() if f.name != function)
        other_unreserved_pc = sum(
            f.provisioned_requested() for f in self._functions.values() if f.name != function and f.reserved is None
        )
        if (
            other_reserved + value + other_unreserved_pc
            > self.limits.account_concurrency - self.limits.unreserved_minimum
        ):
            raise PolicyError(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution"
                f" below its minimum value of [{self.limits.unreserved_minimum}]."
            )
        pc = fn.provisioned_requested()
        if value < pc:
            raise PolicyError(
                "Specified ReservedConcurrentExecutions for function is less than the function's provisioned "
                f"concurrency [{pc}]."
            )
        self._set_reserved_value(fn, value)
        LOG.info("reserved concurrency of %s set to %s", function, value)

    def set_provisioned(
        self, function: str, qualifier: str, version: str, count: int, *, modified_at: float | None = None
    ) -> ProvisionChange:
        """PutProvisionedConcurrencyConfig on an alias or version (`version` is what it points to now).

        Creates the missing environments (returned in `create`, in INIT) and retires the extra ones: idle first,
        then those still in INIT (both DEAD at once, returned in `retire`), then busy ones, which are marked retiring
        and die when `release()` returns False. Calling it again with another `version` (an alias moved) replaces
        every environment of the old version. Resets a FAILED status. `qualifier == version` means a version;
        anything else is an alias. An alias and the version it points to cannot both have provisioned concurrency
        (ResourceConflictException, AWS wording as reproduced by LocalStack's AWS-validated tests).
        Environments are created even while on-demand requests hold all of the reserved concurrency: the function is
        then above its reserved value until those requests end, and admits no new on-demand request meanwhile.
        `modified_at` is the caller's stamp of this write (the Lambda service passes epoch seconds, LastModified);
        without it, the policy's clock time.
        """
        fn = self._function(function)
        if count < 1:
            raise PolicyError(
                f"1 validation error detected: Value '{count}' at 'provisionedConcurrentExecutions' failed to satisfy "
                "constraint: Member must have value greater than or equal to 1",
                code="ValidationException",
            )
        if LATEST in (qualifier, version):
            raise PolicyError("Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
        for other in fn.provisioned.values():
            if other.qualifier == qualifier:
                continue
            if qualifier != version and other.qualifier == version:
                raise PolicyError(
                    "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version",
                    code="ResourceConflictException",
                )
            if qualifier == version and other.version == version:
                raise PolicyError(
                    "Version is pointed by a Provisioned Concurrency alias", code="ResourceConflictException"
                )
        others = sum(c.requested for q, c in fn.provisioned.items() if q != qualifier)
        if fn.reserved is not None:
            if others + count > fn.reserved:
                raise PolicyError(
                    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution "
                    "for function"
                )
        else:
            unreserved_pc = sum(
                f.provisioned_requested() for f in self._functions.values() if f.reserved is None and f is not fn
            )
            if self.unreserved_available() - (unreserved_pc + others + count) < self.limits.unreserved_minimum:
                raise PolicyError(
                    "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
                    f"below its minimum value of [{self.limits.unreserved_minimum}]."
                )
        stamp = self._clock.now() if modified_at is None else modified_at
        config = fn.provisioned.get(qualifier)
        if config is None:
            config = _ProvisionedConfig(function, qualifier, version, count, stamp)
            fn.provisioned[qualifier] = config
        else:
            config.requested = count
            config.last_modified = stamp
            config.failure_reason = None
        retire: list[str] = []
        if config.version != version:
            config.version = version
            retire += self._retire(function, qualifier, lambda rec: True)
        current = [r for r in self._provisioned_records(function, qualifier) if not r.retiring]
        excess = len(current) - count
        if excess > 0:
            rank = {EnvState.IDLE: 0, EnvState.INIT: 1, EnvState.BUSY: 2}
            victims = {r.env_id for r in sorted(current, key=lambda r: rank[r.state])[:excess]}
            retire += self._retire(function, qualifier, lambda rec: rec.env_id in victims)
        create = [self._new_provisioned(config) for _ in range(max(0, -excess))]
        LOG.info(
            "provisioned concurrency %s:%s (version %s) set to %s: %s to create, %s retired now",
            function,
            qualifier,
            version,
            count,
            len(create),
            len(retire),
        )
        return ProvisionChange(create=create, retire=retire)

    def delete_provisioned(self, function: str, qualifier: str) -> list[str]:
        """DeleteProvisionedConcurrencyConfig. Returns env ids to kill now; busy ones die on release()."""
        fn = self._function(function)
        if fn.provisioned.pop(qualifier, None) is None:
            raise PolicyStateError(f"no provisioned concurrency on {function}:{qualifier}")
        return self._retire(function, qualifier, lambda rec: True)

    def provisioned_status(self, function: str, qualifier: str) -> ProvisionedStatus | None:
        config = self._function(function).provisioned.get(qualifier)
        if config is None:
            return None
        key = (function, qualifier)
        available = self._pc_ready.get(key, 0)
        if config.failure_reason is not None:
            status = "FAILED"
        elif available >= config.requested:
            status = "READY"
        else:
            status = "IN_PROGRESS"
        return ProvisionedStatus(
            requested=config.requested,
            allocated=self._pc_allocated.get(key, 0),
            available=available,
            status=status,
            status_reason=config.failure_reason,
            version=config.version,
            last_modified=config.last_modified,
        )

    def provisioned_qualifiers(self, function: str) -> list[str]:
        return list(self._function(function).provisioned)

    # ------------------------------------------------------------------------------------------------------------
    # admission and the lifecycle

    def admit(self, function: str, version: str, qualifier: str) -> Admitted | Throttled:
        """Where one invocation of `function` (resolved to `version`, invoked as `qualifier`) runs, or why not.

        1. The qualifier has provisioned concurrency for this version with an idle ready environment: PROVISIONED
           (no new concurrency: it is already counted). 2. Otherwise on demand, and first the concurrency check:
           with reserved R, usage + 1 > R throttles with RESERVED; an unreserved function shares
           account - sum(reserved) with the others (their provisioned allocated + on-demand busy count) and throttles
           with ACCOUNT; and no on-demand admission takes the account past its limit (ACCOUNT), which matters only
           while a settings change has left some pool above its new limit. 3. An idle on-demand environment of
           (function, version), most recently used first (so the others age out): WARM. 4. A token from the scaling
           bucket: COLD (a new record in INIT), else SCALING_RATE. spillover=True when the qualifier has provisioned
           concurrency but none was idle. retry_after_s: the time until a token for SCALING_RATE, else 1 s.
        """
        fn = self._functions.get(function)
        if fn is None:
            raise PolicyStateError(f"unknown function {function}")
        spillover = False
        if fn.provisioned:
            config = fn.provisioned.get(qualifier)
            if config is not None and config.version == version:
                idle = self._idle_provisioned.get((function, qualifier))
                if idle:
                    rec = self._envs[next(reversed(idle))]
                    self._reuse_move(rec, True)  # an IDLE record is never retiring (retiring kills idle ones)
                    return self._reuse_answer(rec, _PROVISIONED_START, False)
                spillover = True
        reserved = fn.reserved
        if reserved is not None:
            if fn.usage + 1 > reserved:
                return Throttled(_RESERVED, 1.0)
        elif self._unreserved_usage_total + 1 > self.limits.account_concurrency - self._reserved_total:
            return Throttled(_ACCOUNT, 1.0)
        if self._account_usage + 1 > self.limits.account_concurrency:
            # Only after a settings change left some pool above its new limit (running requests finish): the
            # account limit still holds for every new on-demand environment.
            return Throttled(_ACCOUNT, 1.0)
        idle = self._idle_on_demand.get((function, version))
        if idle:
            rec = self._envs[next(reversed(idle))]
            self._reuse_move(rec, True)
            return self._reuse_answer(rec, _WARM, spillover)
        now = self._clock.now()
        bucket = self._bucket(fn, now)
        if not bucket.take(now):
            return Throttled(_SCALING_RATE, max(bucket.seconds_until_token(now), 0.001))
        rec = EnvironmentRecord(
            env_id=self._new_id(function),
            function=function,
            version=version,
            pool=_ON_DEMAND,
            qualifier=None,
            state=_INIT,
            created_at=now,
        )
        self._insert(rec)
        return Admitted(rec.env_id, _COLD, spillover=spillover)

    def init_finished(self, env_id: str) -> None:
        """INIT done: an on-demand environment goes BUSY (it serves the request that created it); a provisioned
        pre-warm goes IDLE, ready for traffic."""
        rec = self._live(env_id)
        if rec.state is not EnvState.INIT:
            raise PolicyStateError(f"{env_id} finished INIT but is {rec.state.value}")
        rec.ready_at = self._clock.now()
        self._move(rec, EnvState.BUSY if rec.pool is Pool.ON_DEMAND else EnvState.IDLE)

    def init_failed(self, env_id: str, reason: str) -> None:
        """INIT failed: the environment is DEAD. A provisioned one marks its configuration FAILED with `reason`."""
        rec = self._live(env_id)
        if rec.state is not EnvState.INIT:
            raise PolicyStateError(f"{env_id} failed INIT but is {rec.state.value}")
        self._fail_provisioned(rec, reason)
        self._kill(rec, f"init failed: {reason}")

    def release(self, env_id: str) -> bool:
        """The request ended normally: BUSY -> IDLE (invocations += 1, last_used = now) and True. False means the
        caller must kill the environment instead: a retired provisioned one (now DEAD), or one already DEAD (its
        function was deleted while it ran)."""
        rec = self._envs.get(env_id)
        if rec is None:
            if env_id in self._dead:
                return False
            raise PolicyStateError(f"unknown environment {env_id}")
        if rec.state is not _BUSY:
            raise PolicyStateError(f"{env_id} released but is {rec.state.value}")
        rec.invocations += 1
        rec.last_used_at = self._clock.now()
        if rec.retiring:
            self._kill(rec, "provisioned concurrency reduced")
            return False
        self._reuse_move(rec, False)
        return True

    def discard(self, env_id: str, reason: str = "discarded") -> list[str]:
        """Any state -> DEAD (crash, timeout kill); frees its concurrency. Returns env ids to SPAWN: a ready
        provisioned environment that dies is replaced by a new one in INIT (init type provisioned-concurrency).
        A provisioned one discarded during INIT marks its configuration FAILED instead (no replacement loop).
        Discarding an environment already DEAD does nothing."""
        rec = self._envs.get(env_id)
        if rec is None:
            if env_id in self._dead:
                return []
            raise PolicyStateError(f"unknown environment {env_id}")
        was = rec.state
        if rec.state is EnvState.BUSY:
            rec.invocations += 1
            rec.last_used_at = self._clock.now()
        replace = rec.pool is Pool.PROVISIONED and not rec.retiring and was is not EnvState.INIT
        if rec.pool is Pool.PROVISIONED and was is EnvState.INIT:
            self._fail_provisioned(rec, reason)
        self._kill(rec, reason)
        if replace and rec.qualifier is not None:
            config = self._functions[rec.function].provisioned.get(rec.qualifier)
            if config is not None and config.version == rec.version:
                return [self._new_provisioned(config)]
        return []

    def reap_idle(self) -> list[str]:
        """On-demand environments idle for keep_alive_s or more are DEAD now; returns their ids to kill.
        Provisioned environments are never reaped."""
        now = self._clock.now()
        doomed: list[EnvironmentRecord] = []
        for idle in self._idle_on_demand.values():
            for env_id in idle:
                rec = self._envs[env_id]
                if (
                    now - (rec.last_used_at if rec.last_used_at is not None else rec.created_at)
                    >= self.limits.keep_alive_s
                ):
                    doomed.append(rec)
        for rec in doomed:
            self._kill(rec, "idle past keep-alive")
        return [rec.env_id for rec in doomed]

    def next_reap_at(self) -> float | None:
        """When the next idle on-demand environment reaches its keep-alive, so the caller can sleep until then."""
        times = [
            (rec.last_used_at if rec.last_used_at is not None else rec.created_at) + self.limits.keep_alive_s
            for idle in self._idle_on_demand.values()
            for rec in (self._envs[e] for e in idle)
        ]
        return min(times) if times else None

    def init_deadline(self, env_id: str) -> float | None:
        """When an on-demand INIT hits the 10 s cap (None for provisioned: the cap does not apply to them)."""
        rec = self._live(env_id)
        if rec.pool is Pool.PROVISIONED:
            return None
        return rec.created_at + self.limits.init_cap_s

    # ------------------------------------------------------------------------------------------------------------
    # observation (metrics, GetAccountSettings)

    def concurrent_executions(self, function: str | None = None) -> int:
        """ConcurrentExecutions: on-demand INIT + BUSY plus provisioned BUSY, for one function or the account."""
        if function is not None:
            return self._function(function).executions
        return sum(f.executions for f in self._functions.values())

    def unreserved_concurrent_executions(self) -> int:
        """UnreservedConcurrentExecutions: ConcurrentExecutions of the functions without reserved concurrency."""
        return sum(f.executions for f in self._functions.values() if f.reserved is None)

    def claimed_account_concurrency(self) -> int:
        """ClaimedAccountConcurrency: unreserved executions + total reserved + provisioned of unreserved functions."""
        reserved = sum(f.reserved or 0 for f in self._functions.values())
        unreserved_pc = sum(f.provisioned_requested() for f in self._functions.values() if f.reserved is None)
        return self.unreserved_concurrent_executions() + reserved + unreserved_pc

    def provisioned_concurrent_executions(self, function: str, qualifier: str | None = None) -> int:
        """ProvisionedConcurrentExecutions: provisioned environments BUSY (retiring ones included)."""
        self._function(function)
        if qualifier is not None:
            return self._pc_busy.get((function, qualifier), 0)
        return sum(n for (f, _), n in self._pc_busy.items() if f == function)

    def provisioned_allocated(self, function: str, qualifier: str | None = None) -> int:
        """Provisioned environments that exist (INIT, IDLE, BUSY), not counting retiring ones."""
        self._function(function)
        if qualifier is not None:
            return self._pc_allocated.get((function, qualifier), 0)
        return sum(n for (f, _), n in self._pc_allocated.items() if f == function)

    def function_usage(self, function: str) -> int:
        """What counts against the function's reserved concurrency (and the account): on-demand INIT + BUSY,
        provisioned allocated and retiring provisioned still busy."""
        return self._function(function).usage

    def account_usage(self) -> int:
        return self._account_usage

    def unreserved_available(self) -> int:
        """GetAccountSettings' UnreservedConcurrentExecutions: account limit minus the sum of reserved."""
        return self.limits.account_concurrency - self._reserved_total

    def scaling_tokens(self, function: str) -> float:
        fn = self._function(function)
        now = self._clock.now()
        bucket = self._bucket(fn, now)
        bucket.refill(now)
        return bucket.tokens

    def environment(self, env_id: str) -> EnvironmentRecord:
        rec = self._envs.get(env_id) or self._dead.get(env_id)
        if rec is None:
            raise PolicyStateError(f"unknown environment {env_id}")
        return rec

    def has_idle(self, function: str, version: str, qualifier: str) -> bool:
        """Is an environment idle that `admit` would hand over (provisioned for the qualifier, or on demand of the
        version), limits permitting? A read from the idle indexes: changes nothing."""
        fn = self._functions.get(function)
        if fn is None:
            return False
        if fn.provisioned:
            config = fn.provisioned.get(qualifier)
            if config is not None and config.version == version and self._idle_provisioned.get((function, qualifier)):
                return True
        return bool(self._idle_on_demand.get((function, version)))

    def environments(self, function: str | None = None) -> list[EnvironmentRecord]:
        """Every environment not DEAD, oldest first."""
        return [rec for rec in self._envs.values() if function is None or rec.function == function]

    def dead_count(self) -> int:
        return self._dead_count

    def check_consistency(self) -> None:
        """Recount everything from the records and compare with the running counters; raise PolicyStateError on any
        difference. For tests and debugging: O(environments)."""
        usage: dict[str, int] = {name: 0 for name in self._functions}
        executions: dict[str, int] = {name: 0 for name in self._functions}
        allocated: dict[tuple[str, str], int] = {}
        ready: dict[tuple[str, str], int] = {}
        busy: dict[tuple[str, str], int] = {}
        idle_od: set[str] = set()
        idle_pc: set[str] = set()
        for env_id, rec in self._envs.items():
            if env_id != rec.env_id or rec.state is EnvState.DEAD or env_id in self._dead:
                raise PolicyStateError(f"{env_id} is both live and dead or misfiled")
            if rec.function not in self._functions:
                raise PolicyStateError(f"{env_id} belongs to unknown function {rec.function}")
            u, e, a, r, b = self._contribution(rec)
            usage[rec.function] += u
            executions[rec.function] += e
            if rec.pool is Pool.PROVISIONED:
                key = (rec.function, rec.qualifier or "")
                allocated[key] = allocated.get(key, 0) + a
                ready[key] = ready.get(key, 0) + r
                busy[key] = busy.get(key, 0) + b
            if rec.state is EnvState.IDLE:
                (idle_od if rec.pool is Pool.ON_DEMAND else idle_pc).add(env_id)
        for name, fn in self._functions.items():
            if (fn.usage, fn.executions) != (usage[name], executions[name]):
                raise PolicyStateError(
                    f"{name}: counters {fn.usage}/{fn.executions} != {usage[name]}/{executions[name]}"
                )
        totals = (
            sum(usage.values()),
            sum(usage[name] for name, fn in self._functions.items() if fn.reserved is None),
            sum(fn.reserved or 0 for fn in self._functions.values()),
        )
        if totals != (self._account_usage, self._unreserved_usage_total, self._reserved_total):
            raise PolicyStateError(
                f"running totals {(self._account_usage, self._unreserved_usage_total, self._reserved_total)} "
                f"!= {totals} (account usage, unreserved usage, reserved)"
            )
        for mine, real in ((self._pc_allocated, allocated), (self._pc_ready, ready), (self._pc_busy, busy)):
            if {k: v for k, v in mine.items() if v} != {k: v for k, v in real.items() if v}:
                raise PolicyStateError(f"provisioned counters {mine} != {real}")
        indexed_od = {e for idle in self._idle_on_demand.values() for e in idle}
        indexed_pc = {e for idle in self._idle_provisioned.values() for e in idle}
        if indexed_od != idle_od or indexed_pc != idle_pc:
            raise PolicyStateError("idle indexes do not match the IDLE records")
        for rec in self._dead.values():
            if rec.state is not EnvState.DEAD:
                raise PolicyStateError(f"{rec.env_id} filed as dead but is {rec.state.value}")

    # ------------------------------------------------------------------------------------------------------------
    # internals

    def _function(self, name: str) -> _Function:
        fn = self._functions.get(name)
        if fn is None:
            raise PolicyStateError(f"unknown function {name}")
        return fn

    def _live(self, env_id: str) -> EnvironmentRecord:
        rec = self._envs.get(env_id)
        if rec is None:
            state = "DEAD" if env_id in self._dead else "unknown"
            raise PolicyStateError(f"environment {env_id} is {state}")
        return rec

    def _bucket(self, fn: _Function, now: float) -> _Bucket:
        if fn.bucket is None:
            burst = float(self.limits.scale_burst)
            fn.bucket = _Bucket(burst, burst / self.limits.scale_period_s, burst, now)
        return fn.bucket

    def _new_id(self, function: str) -> str:
        return f"{function}-{next(self._ids):06d}"

    def _new_provisioned(self, config: _ProvisionedConfig) -> str:
        rec = EnvironmentRecord(
            env_id=self._new_id(config.function),
            function=config.function,
            version=config.version,
            pool=Pool.PROVISIONED,
            qualifier=config.qualifier,
            state=EnvState.INIT,
            created_at=self._clock.now(),
        )
        self._insert(rec)
        return rec.env_id

    def _provisioned_records(self, function: str, qualifier: str) -> list[EnvironmentRecord]:
        return [
            rec
            for rec in self._envs.values()
            if rec.pool is Pool.PROVISIONED and rec.function == function and rec.qualifier == qualifier
        ]

    def _retire(self, function: str, qualifier: str, which: Callable[[EnvironmentRecord], bool]) -> list[str]:
        """Retire the matching provisioned environments: idle and INIT ones die now (ids returned), busy ones are
        marked retiring and die on release."""
        killed: list[str] = []
        for rec in self._provisioned_records(function, qualifier):
            if rec.retiring or not which(rec):
                continue
            if rec.state is EnvState.BUSY:
                self._count(rec, -1)
                rec.retiring = True
                self._count(rec, +1)
            else:
                self._kill(rec, "provisioned concurrency reduced")
                killed.append(rec.env_id)
        return killed

    def _fail_provisioned(self, rec: EnvironmentRecord, reason: str) -> None:
        if rec.pool is not Pool.PROVISIONED or rec.retiring or rec.qualifier is None:
            return
        config = self._functions[rec.function].provisioned.get(rec.qualifier)
        if config is not None and config.version == rec.version:
            config.failure_reason = reason
            LOG.warning("provisioned concurrency %s:%s FAILED: %s", rec.function, rec.qualifier, reason)

    def _set_reserved_value(self, fn: _Function, value: int | None) -> None:
        """Change a function's reserved concurrency and the running totals that depend on it."""
        if (fn.reserved is None) != (value is None):
            self._unreserved_usage_total += fn.usage if value is None else -fn.usage
        self._reserved_total += (value or 0) - (fn.reserved or 0)
        fn.reserved = value

    def _reuse_answer(self, rec: EnvironmentRecord, kind: StartKind, spillover: bool) -> Admitted:
        answers = rec.reuse_answers
        if answers is None:
            answers = rec.reuse_answers = (Admitted(rec.env_id, kind, False), Admitted(rec.env_id, kind, True))
        return answers[spillover]

    def _insert(self, rec: EnvironmentRecord) -> None:
        self._envs[rec.env_id] = rec
        self._count(rec, +1)

    def _move(self, rec: EnvironmentRecord, new: EnvState) -> None:
        old = rec.state
        if not rec.retiring and ((old is _IDLE and new is _BUSY) or (old is _BUSY and new is _IDLE)):
            self._reuse_move(rec, new is _BUSY)
            return
        if new not in _TRANSITIONS[rec.state]:
            raise PolicyStateError(f"{rec.env_id}: illegal transition {rec.state.value} -> {new.value}")
        self._count(rec, -1)
        rec.state = new
        if new is EnvState.DEAD:
            del self._envs[rec.env_id]
            self._dead[rec.env_id] = rec
            self._dead_count += 1
            while len(self._dead) > DEAD_HISTORY:
                self._dead.popitem(last=False)
        else:
            self._count(rec, +1)

    def _reuse_move(self, rec: EnvironmentRecord, to_busy: bool) -> None:
        """IDLE <-> BUSY of a record that is not retiring: the hot path of every warm or provisioned call. The same
        counter changes as `_count(rec, -1)`, the state change and `_count(rec, +1)` (check_consistency verifies
        them), without the generic bookkeeping."""
        fn = self._functions[rec.function]
        step = 1 if to_busy else -1
        fn.executions += step
        if rec.pool is _PROVISIONED:
            key = (rec.function, rec.qualifier or "")
            self._pc_busy[key] = self._pc_busy.get(key, 0) + step
            index = self._idle_provisioned
        else:
            key = (rec.function, rec.version)
            fn.usage += step
            self._account_usage += step
            if fn.reserved is None:
                self._unreserved_usage_total += step
            index = self._idle_on_demand
        if to_busy:
            rec.state = _BUSY
            bucket = index[key]
            del bucket[rec.env_id]
            if not bucket:
                del index[key]
        else:
            rec.state = _IDLE
            existing = index.get(key)
            if existing is None:
                index[key] = {rec.env_id: None}
            else:
                existing[rec.env_id] = None

    def _kill(self, rec: EnvironmentRecord, reason: str) -> None:
        rec.died_at = self._clock.now()
        rec.death_reason = reason
        self._move(rec, EnvState.DEAD)
        LOG.debug("environment %s of %s is DEAD: %s", rec.env_id, rec.function, reason)

    @staticmethod
    def _contribution(rec: EnvironmentRecord) -> tuple[int, int, int, int, int]:
        """(usage, executions, provisioned allocated, provisioned ready, provisioned busy) of one live record."""
        busy = rec.state is EnvState.BUSY
        if rec.pool is Pool.ON_DEMAND:
            active = int(rec.state in (EnvState.INIT, EnvState.BUSY))
            return active, active, 0, 0, 0
        if rec.retiring:
            return int(busy), int(busy), 0, 0, int(busy)
        ready = int(rec.state in (EnvState.IDLE, EnvState.BUSY))
        return 1, int(busy), 1, ready, int(busy)

    def _count(self, rec: EnvironmentRecord, sign: int) -> None:
        """Add (+1) or remove (-1) one live record's share of every counter and idle index."""
        fn = self._functions[rec.function]
        usage, executions, allocated, ready, busy = self._contribution(rec)
        fn.usage += sign * usage
        self._account_usage += sign * usage
        if fn.reserved is None:
            self._unreserved_usage_total += sign * usage
        fn.executions += sign * executions
        if rec.pool is Pool.PROVISIONED:
            key = (rec.function, rec.qualifier or "")
            self._pc_allocated[key] = self._pc_allocated.get(key, 0) + sign * allocated
            self._pc_ready[key] = self._pc_ready.get(key, 0) + sign * ready
            self._pc_busy[key] = self._pc_busy.get(key, 0) + sign * busy
            index = self._idle_provisioned
            idle_key = key
        else:
            index = self._idle_on_demand
            idle_key = (rec.function, rec.version)
        if rec.state is EnvState.IDLE:
            if sign > 0:
                index.setdefault(idle_key, {})[rec.env_id] = None
            else:
                bucket = index[idle_key]
                del bucket[rec.env_id]
                if not bucket:
                    del index[idle_key]
