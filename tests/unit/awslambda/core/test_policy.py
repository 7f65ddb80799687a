"""Tests of the concurrency policy on a virtual clock: every admission rule, the settings' errors, and invariants."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lambdalab.awslambda.core.policy import (
    Admitted,
    ConcurrencyPolicy,
    EnvState,
    Limits,
    PolicyError,
    PolicyStateError,
    Pool,
    StartKind,
    Throttled,
    ThrottleReason,
)
from lambdalab.clock import VirtualClock


def make(limits: Limits | None = None, *functions: str) -> tuple[ConcurrencyPolicy, VirtualClock]:
    clock = VirtualClock()
    policy = ConcurrencyPolicy(clock, limits or Limits())
    for name in functions or ("fn",):
        policy.add_function(name)
    return policy, clock


def admitted(result: Admitted | Throttled) -> Admitted:
    assert isinstance(result, Admitted), result
    return result


def throttled(result: Admitted | Throttled) -> Throttled:
    assert isinstance(result, Throttled), result
    return result


def cold_and_busy(
    policy: ConcurrencyPolicy, function: str = "fn", version: str = "$LATEST", qualifier: str = "$LATEST"
):
    """Admit one invocation that must start cold, and finish its INIT: the environment is then BUSY."""
    got = admitted(policy.admit(function, version, qualifier))
    assert got.kind is StartKind.COLD
    policy.init_finished(got.env_id)
    return got.env_id


def warm_up_provisioned(
    policy: ConcurrencyPolicy, function: str, qualifier: str, version: str, count: int
) -> list[str]:
    change = policy.set_provisioned(function, qualifier, version, count)
    for env_id in change.create:
        policy.init_finished(env_id)
    return change.create


# --- admission: warm, cold, reserved, account ---------------------------------------------------------------------


def test_a_released_environment_is_reused_warm_and_a_busy_one_is_not():
    policy, _ = make()
    first = cold_and_busy(policy)
    # WHEN a second request arrives while the first runs
    second = admitted(policy.admit("fn", "$LATEST", "$LATEST"))
    # THEN it needs a new environment
    assert second.kind is StartKind.COLD and second.env_id != first
    assert policy.release(first) is True
    third = admitted(policy.admit("fn", "$LATEST", "$LATEST"))
    assert (third.kind, third.env_id, third.spillover) == (StartKind.WARM, first, False)
    assert policy.environment(first).invocations == 1


def test_warm_reuse_is_per_version_and_most_recently_used_first():
    policy, clock = make()
    a = cold_and_busy(policy, version="1", qualifier="1")
    b = cold_and_busy(policy, version="1", qualifier="1")
    policy.release(a)
    clock.advance(1)
    policy.release(b)
    # a request for another version cannot use version 1's environments
    assert admitted(policy.admit("fn", "2", "2")).kind is StartKind.COLD
    # the most recently used (b) is taken first, so a can age out
    assert admitted(policy.admit("fn", "1", "1")).env_id == b
    assert admitted(policy.admit("fn", "1", "1")).env_id == a


def test_reserved_concurrency_caps_the_function_with_the_reserved_reason():
    policy, _ = make(None, "fn", "other")
    policy.set_reserved("fn", 2)
    envs = [cold_and_busy(policy) for _ in range(2)]
    got = throttled(policy.admit("fn", "$LATEST", "$LATEST"))
    assert got.reason is ThrottleReason.RESERVED
    assert got.reason.value == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert got.retry_after_s == 1.0
    # another function is unaffected
    assert isinstance(policy.admit("other", "$LATEST", "$LATEST"), Admitted)
    # INIT counts too: a request in cold start holds its concurrency
    policy.release(envs[0])
    assert admitted(policy.admit("fn", "$LATEST", "$LATEST")).kind is StartKind.WARM
    assert throttled(policy.admit("fn", "$LATEST", "$LATEST")).reason is ThrottleReason.RESERVED


def test_reserved_zero_throttles_every_invocation():
    policy, _ = make()
    policy.set_reserved("fn", 0)
    assert throttled(policy.admit("fn", "$LATEST", "$LATEST")).reason is ThrottleReason.RESERVED
    policy.set_reserved("fn", None)
    assert policy.reserved("fn") is None
    assert isinstance(policy.admit("fn", "$LATEST", "$LATEST"), Admitted)


def test_unreserved_functions_share_what_reserved_ones_leave_and_throttle_with_the_account_reason():
    policy, _ = make(Limits(account_concurrency=10, unreserved_minimum=2), "big", "a", "b")
    policy.set_reserved("big", 6)
    assert policy.unreserved_available() == 4
    for name in ("a", "b", "a", "b"):
        cold_and_busy(policy, name)
    got = throttled(policy.admit("a", "$LATEST", "$LATEST"))
    assert got.reason is ThrottleReason.ACCOUNT and got.reason.value == "ConcurrentInvocationLimitExceeded"
    # the reserved function still has all of its 6
    for _ in range(6):
        cold_and_busy(policy, "big")
    assert throttled(policy.admit("big", "$LATEST", "$LATEST")).reason is ThrottleReason.RESERVED
    assert policy.concurrent_executions() == 10
    assert policy.unreserved_concurrent_executions() == 4


def test_provisioned_concurrency_of_unreserved_functions_counts_against_the_unreserved_pool():
    policy, _ = make(Limits(account_concurrency=10, unreserved_minimum=2), "pc", "od")
    warm_up_provisioned(policy, "pc", "live", "1", 3)
    for _ in range(7):
        cold_and_busy(policy, "od")
    assert throttled(policy.admit("od", "$LATEST", "$LATEST")).reason is ThrottleReason.ACCOUNT
    # but the provisioned environments are already counted: they still serve
    assert admitted(policy.admit("pc", "1", "live")).kind is StartKind.PROVISIONED


# --- provisioned concurrency -----------------------------------------------------------------------------------------


def test_provisioned_environments_serve_first_then_calls_spill_over_to_on_demand():
    policy, _ = make()
    created = warm_up_provisioned(policy, "fn", "live", "1", 2)
    assert all(policy.environment(e).pool is Pool.PROVISIONED for e in created)
    first = admitted(policy.admit("fn", "1", "live"))
    second = admitted(policy.admit("fn", "1", "live"))
    assert {first.env_id, second.env_id} == set(created)
    assert first.kind is second.kind is StartKind.PROVISIONED and not first.spillover
    spill = admitted(policy.admit("fn", "1", "live"))
    assert (spill.kind, spill.spillover) == (StartKind.COLD, True)
    assert policy.environment(spill.env_id).pool is Pool.ON_DEMAND
    # calling the version (not the alias that has the provisioned concurrency) is plain on demand: no spillover
    assert admitted(policy.admit("fn", "1", "1")).spillover is False
    assert policy.provisioned_concurrent_executions("fn", "live") == 2
    assert policy.concurrent_executions("fn") == 4


def test_provisioned_environments_in_init_are_not_used_and_the_call_spills_over():
    policy, _ = make()
    change = policy.set_provisioned("fn", "live", "1", 1)
    got = admitted(policy.admit("fn", "1", "live"))
    assert got.env_id not in change.create and got.spillover and got.kind is StartKind.COLD


def test_provisioned_status_goes_from_in_progress_to_ready():
    policy, clock = make()
    change = policy.set_provisioned("fn", "live", "1", 3)
    assert len(change.create) == 3 and change.retire == []
    status = policy.provisioned_status("fn", "live")
    assert status is not None
    assert (status.requested, status.allocated, status.available, status.status) == (3, 3, 0, "IN_PROGRESS")
    clock.advance(0.5)
    policy.init_finished(change.create[0])
    policy.init_finished(change.create[1])
    assert policy.provisioned_status("fn", "live").available == 2
    assert policy.provisioned_status("fn", "live").status == "IN_PROGRESS"
    policy.init_finished(change.create[2])
    status = policy.provisioned_status("fn", "live")
    assert (status.available, status.status, status.status_reason) == (3, "READY", None)
    assert policy.environment(change.create[2]).ready_at == 0.5
    assert policy.provisioned_status("fn", "other") is None


def test_a_provisioned_environment_that_fails_init_marks_the_config_failed_until_it_is_set_again():
    policy, _ = make()
    change = policy.set_provisioned("fn", "live", "1", 2)
    policy.init_finished(change.create[0])
    policy.init_failed(change.create[1], "Runtime.ImportModuleError")
    status = policy.provisioned_status("fn", "live")
    assert (status.status, status.status_reason, status.allocated) == ("FAILED", "Runtime.ImportModuleError", 1)
    again = policy.set_provisioned("fn", "live", "1", 2)
    assert len(again.create) == 1
    assert policy.provisioned_status("fn", "live").status == "IN_PROGRESS"


def test_reducing_provisioned_concurrency_retires_idle_environments_first_and_busy_ones_on_release():
    policy, _ = make()
    envs = warm_up_provisioned(policy, "fn", "live", "1", 3)
    busy = [admitted(policy.admit("fn", "1", "live")).env_id for _ in range(2)]
    (idle,) = [e for e in envs if e not in busy]
    change = policy.set_provisioned("fn", "live", "1", 1)
    assert change.create == [] and change.retire == [idle]
    assert policy.environment(idle).state is EnvState.DEAD
    retiring = [e for e in busy if policy.environment(e).retiring]
    assert len(retiring) == 1
    assert policy.provisioned_allocated("fn", "live") == 1  # the retiring one no longer counts as allocated ...
    assert policy.function_usage("fn") == 2  # ... but holds its concurrency until its request ends
    assert policy.release(retiring[0]) is False  # the caller must kill it now
    assert policy.environment(retiring[0]).state is EnvState.DEAD
    (kept,) = [e for e in busy if e != retiring[0]]
    assert policy.release(kept) is True
    assert policy.function_usage("fn") == 1
    assert policy.provisioned_status("fn", "live").status == "READY"


def test_growing_provisioned_concurrency_creates_only_the_difference():
    policy, _ = make()
    warm_up_provisioned(policy, "fn", "live", "1", 2)
    change = policy.set_provisioned("fn", "live", "1", 5)
    assert len(change.create) == 3 and change.retire == []
    assert policy.provisioned_allocated("fn") == 5


def test_moving_an_alias_replaces_its_provisioned_environments_with_the_new_versions():
    policy, _ = make()
    old = warm_up_provisioned(policy, "fn", "live", "1", 2)
    change = policy.set_provisioned("fn", "live", "2", 2)
    assert sorted(change.retire) == sorted(old) and len(change.create) == 2
    assert {policy.environment(e).version for e in change.create} == {"2"}
    for env_id in change.create:
        policy.init_finished(env_id)
    assert admitted(policy.admit("fn", "2", "live")).kind is StartKind.PROVISIONED


def test_an_alias_and_the_version_it_points_to_cannot_both_have_provisioned_concurrency():
    policy, _ = make()
    policy.set_provisioned("fn", "live", "1", 1)
    with pytest.raises(PolicyError) as error:
        policy.set_provisioned("fn", "1", "1", 1)
    assert error.value.code == "ResourceConflictException"
    policy.set_provisioned("fn", "2", "2", 1)
    with pytest.raises(PolicyError, match="already Provisioned version"):
        policy.set_provisioned("fn", "blue", "2", 1)
    assert policy.provisioned_qualifiers("fn") == ["live", "2"]


def test_delete_provisioned_returns_the_environments_to_kill():
    policy, _ = make()
    envs = warm_up_provisioned(policy, "fn", "live", "1", 2)
    assert sorted(policy.delete_provisioned("fn", "live")) == sorted(envs)
    assert policy.provisioned_status("fn", "live") is None
    assert admitted(policy.admit("fn", "1", "live")).spillover is False


def test_a_crashed_provisioned_environment_is_replaced_and_a_crashed_on_demand_one_frees_its_concurrency():
    policy, _ = make()
    policy.set_reserved("fn", 2)
    envs = warm_up_provisioned(policy, "fn", "live", "1", 1)
    busy = admitted(policy.admit("fn", "1", "live")).env_id
    replacement = policy.discard(busy, "Runtime.ExitError")
    assert len(replacement) == 1 and replacement[0] not in envs
    assert policy.environment(replacement[0]).state is EnvState.INIT
    assert policy.environment(replacement[0]).pool is Pool.PROVISIONED
    od = cold_and_busy(policy, version="1", qualifier="1")
    assert throttled(policy.admit("fn", "1", "1")).reason is ThrottleReason.RESERVED
    assert policy.discard(od, "timeout") == []
    assert isinstance(policy.admit("fn", "1", "1"), Admitted)


def test_provisioned_environments_are_never_reaped_and_idle_on_demand_ones_are_after_keep_alive():
    policy, clock = make(Limits(keep_alive_s=600.0))
    pc = warm_up_provisioned(policy, "fn", "live", "1", 1)
    od = cold_and_busy(policy)
    clock.advance(10)
    policy.release(od)
    assert policy.next_reap_at() == 610.0
    clock.set(609.9)
    assert policy.reap_idle() == []
    clock.set(610.0)
    assert policy.reap_idle() == [od]
    assert policy.environment(od).state is EnvState.DEAD
    clock.advance(100_000)
    assert policy.reap_idle() == []
    assert policy.environment(pc[0]).state is EnvState.IDLE
    assert policy.next_reap_at() is None


# --- the scaling-rate bucket ----------------------------------------------------------------------------------------


def test_scaling_rate_allows_1000_new_environments_then_100_per_second_and_never_accumulates_more():
    policy, clock = make(Limits(account_concurrency=10_000))
    for _ in range(1000):
        assert admitted(policy.admit("fn", "$LATEST", "$LATEST")).kind is StartKind.COLD
    got = throttled(policy.admit("fn", "$LATEST", "$LATEST"))
    assert got.reason is ThrottleReason.SCALING_RATE
    assert got.reason.value == "FunctionInvocationRateLimitExceeded"
    assert got.retry_after_s == pytest.approx(0.01)
    clock.advance(1.0)
    for _ in range(100):
        assert admitted(policy.admit("fn", "$LATEST", "$LATEST")).kind is StartKind.COLD
    assert throttled(policy.admit("fn", "$LATEST", "$LATEST")).reason is ThrottleReason.SCALING_RATE
    # after a long idle the bucket holds 1,000, not more
    clock.advance(3600)
    assert policy.scaling_tokens("fn") == 1000
    colds = 0
    while isinstance(policy.admit("fn", "$LATEST", "$LATEST"), Admitted):
        colds += 1
    assert colds == 1000


def test_warm_starts_and_provisioned_environments_take_no_scaling_tokens():
    policy, clock = make(Limits(scale_burst=2, scale_period_s=10.0))
    warm_up_provisioned(policy, "fn", "live", "1", 3)
    env = cold_and_busy(policy)
    for _ in range(5):
        policy.release(env)
        assert admitted(policy.admit("fn", "$LATEST", "$LATEST")).kind is StartKind.WARM
    assert policy.scaling_tokens("fn") == 1
    cold_and_busy(policy)
    got = throttled(policy.admit("fn", "$LATEST", "$LATEST"))
    assert got.reason is ThrottleReason.SCALING_RATE and got.retry_after_s == pytest.approx(5.0)
    # the scaling limit is per function
    policy.add_function("g")
    assert isinstance(policy.admit("g", "$LATEST", "$LATEST"), Admitted)
    clock.advance(5.0)
    assert isinstance(policy.admit("fn", "$LATEST", "$LATEST"), Admitted)


# --- settings and their AWS errors ---------------------------------------------------------------------------------


def test_reserved_concurrency_must_leave_the_unreserved_minimum():
    policy, _ = make(None, "a", "b")
    policy.set_reserved("a", 500)
    policy.set_reserved("b", 400)  # 900 reserved, 100 left: allowed
    with pytest.raises(PolicyError) as error:
        policy.set_reserved("b", 401)
    assert error.value.code == "InvalidParameterValueException"
    assert error.value.message == (
        "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
        "below its minimum value of [100]."
    )
    assert policy.reserved("b") == 400  # unchanged
    policy.set_reserved("a", 100)  # replacing its own value is not double counted
    policy.set_reserved("b", 800)


def test_reserved_concurrency_cannot_be_negative_nor_below_the_functions_provisioned_concurrency():
    policy, _ = make()
    with pytest.raises(PolicyError) as error:
        policy.set_reserved("fn", -1)
    assert error.value.code == "ValidationException"
    policy.set_provisioned("fn", "live", "1", 5)
    with pytest.raises(PolicyError, match="provisioned concurrency"):
        policy.set_reserved("fn", 4)
    policy.set_reserved("fn", 5)


def test_reserved_concurrency_counts_the_provisioned_concurrency_of_unreserved_functions():
    policy, _ = make(None, "pc", "r")
    policy.set_provisioned("pc", "live", "1", 300)
    with pytest.raises(PolicyError, match="below its minimum value of \\[100\\]"):
        policy.set_reserved("r", 601)
    policy.set_reserved("r", 600)


def test_provisioned_concurrency_cannot_exceed_reserved_concurrency():
    policy, _ = make()
    policy.set_reserved("fn", 10)
    policy.set_provisioned("fn", "live", "1", 6)
    with pytest.raises(PolicyError) as error:
        policy.set_provisioned("fn", "blue", "2", 5)
    assert error.value.message == (
        "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function"
    )
    policy.set_provisioned("fn", "blue", "2", 4)
    policy.set_provisioned("fn", "live", "1", 2)  # replacing its own count is not double counted
    policy.set_provisioned("fn", "blue", "2", 8)


def test_provisioned_concurrency_of_an_unreserved_function_must_leave_the_unreserved_minimum():
    policy, _ = make(None, "fn", "r")
    policy.set_reserved("r", 400)
    with pytest.raises(PolicyError) as error:
        policy.set_provisioned("fn", "live", "1", 501)
    assert error.value.message == (
        "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
        "below its minimum value of [100]."
    )
    policy.set_provisioned("fn", "live", "1", 500)


@pytest.mark.parametrize(("qualifier", "version", "count", "code"), [
    ("live", "1", 0, "ValidationException"),
    ("$LATEST", "$LATEST", 1, "InvalidParameterValueException"),
    ("live", "$LATEST", 1, "InvalidParameterValueException"),
])  # fmt: skip
def test_provisioned_concurrency_needs_a_positive_count_on_a_published_version(qualifier, version, count, code):
    policy, _ = make()
    with pytest.raises(PolicyError) as error:
        policy.set_provisioned("fn", qualifier, version, count)
    assert error.value.code == code
    assert policy.provisioned_allocated("fn") == 0


def test_lowering_reserved_below_current_use_throttles_new_calls_until_use_drops():
    policy, _ = make()
    envs = [cold_and_busy(policy) for _ in range(3)]
    policy.set_reserved("fn", 1)
    assert throttled(policy.admit("fn", "$LATEST", "$LATEST")).reason is ThrottleReason.RESERVED
    policy.release(envs[0])
    policy.release(envs[1])
    assert throttled(policy.admit("fn", "$LATEST", "$LATEST")).reason is ThrottleReason.RESERVED
    policy.release(envs[2])
    assert admitted(policy.admit("fn", "$LATEST", "$LATEST")).kind is StartKind.WARM


# --- lifecycle and observation ---------------------------------------------------------------------------------------


def test_illegal_transitions_and_unknown_ids_raise():
    policy, _ = make()
    got = admitted(policy.admit("fn", "$LATEST", "$LATEST"))
    with pytest.raises(PolicyStateError):
        policy.release(got.env_id)  # still in INIT
    policy.init_finished(got.env_id)
    with pytest.raises(PolicyStateError):
        policy.init_finished(got.env_id)
    policy.release(got.env_id)
    with pytest.raises(PolicyStateError):
        policy.release(got.env_id)  # IDLE
    with pytest.raises(PolicyStateError):
        policy.release("nope")
    with pytest.raises(PolicyStateError):
        policy.admit("missing", "$LATEST", "$LATEST")
    with pytest.raises(PolicyStateError):
        policy.add_function("fn")


def test_removing_a_function_kills_its_environments_and_late_reports_are_harmless():
    policy, _ = make(None, "fn", "other")
    busy = cold_and_busy(policy)
    idle = cold_and_busy(policy)
    policy.release(idle)
    pc = warm_up_provisioned(policy, "fn", "live", "1", 1)
    keep = cold_and_busy(policy, "other")
    assert sorted(policy.remove_function("fn")) == sorted([busy, idle, *pc])
    assert policy.release(busy) is False  # the request ended after the function was deleted
    assert policy.discard(busy) == []
    assert [r.env_id for r in policy.environments()] == [keep]
    assert not policy.has_function("fn")
    policy.check_consistency()


def test_removing_a_reserved_function_gives_its_reservation_back_to_the_unreserved_pool():
    policy, _ = make(None, "fn", "other")
    policy.set_reserved("fn", 300)
    cold_and_busy(policy)
    cold_and_busy(policy, "other")
    assert policy.unreserved_available() == 700
    policy.remove_function("fn")
    assert policy.unreserved_available() == 1000
    assert policy.account_usage() == 1
    policy.check_consistency()


def test_switching_reserved_on_and_off_while_running_keeps_the_pools_exact():
    # GIVEN two unreserved functions sharing the account of 200 (unreserved minimum 100)
    policy, _ = make(Limits(account_concurrency=200, unreserved_minimum=100), "fn", "other")
    for _ in range(3):
        cold_and_busy(policy)
    # WHEN fn's 3 running requests move into a reserved pool of 3, then back to the shared pool
    policy.set_reserved("fn", 3)
    policy.check_consistency()
    assert throttled(policy.admit("fn", "$LATEST", "$LATEST")).reason is ThrottleReason.RESERVED
    for _ in range(197):
        cold_and_busy(policy, "other")
    # THEN other has the 197 the reservation leaves, and fn's return to the shared pool leaves no room
    assert throttled(policy.admit("other", "$LATEST", "$LATEST")).reason is ThrottleReason.ACCOUNT
    policy.set_reserved("fn", None)
    policy.check_consistency()
    assert throttled(policy.admit("fn", "$LATEST", "$LATEST")).reason is ThrottleReason.ACCOUNT


def test_concurrent_executions_counts_cold_starts_in_init_and_busy_provisioned_but_not_idle_ones():
    policy, _ = make(None, "fn", "r")
    warm_up_provisioned(policy, "fn", "live", "1", 3)
    admitted(policy.admit("fn", "1", "live"))  # provisioned, busy
    admitted(policy.admit("fn", "$LATEST", "$LATEST"))  # cold, still in INIT
    assert policy.concurrent_executions("fn") == 2
    assert policy.provisioned_concurrent_executions("fn") == 1
    assert policy.provisioned_allocated("fn", "live") == 3
    assert policy.function_usage("fn") == 4  # what counts against reserved: 3 allocated + 1 on demand
    policy.set_reserved("r", 50)
    cold_and_busy(policy, "r")
    assert policy.concurrent_executions() == 3
    assert policy.unreserved_concurrent_executions() == 2
    assert policy.claimed_account_concurrency() == 2 + 50 + 3
    assert policy.unreserved_available() == 950


def test_on_demand_init_is_capped_and_provisioned_init_is_not():
    policy, clock = make()
    clock.advance(3)
    cold = admitted(policy.admit("fn", "$LATEST", "$LATEST")).env_id
    assert policy.init_deadline(cold) == 13.0
    pc = policy.set_provisioned("fn", "live", "1", 1).create[0]
    assert policy.init_deadline(pc) is None


# --- properties: random sequences of everything ----------------------------------------------------------------------

FUNCTIONS = ("f0", "f1", "f2")
SMALL = Limits(account_concurrency=16, unreserved_minimum=4, scale_burst=6, scale_period_s=2.0, keep_alive_s=5.0)


class PolicyMachine(RuleBasedStateMachine):
    """Drives the policy the way the service does and checks it never breaks a limit or loses an environment."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = VirtualClock()
        self.policy = ConcurrencyPolicy(self.clock, SMALL)
        for name in FUNCTIONS:
            self.policy.add_function(name)
        self.alias_version = dict.fromkeys(FUNCTIONS, "1")
        self.alive: set[str] = set()  # what the "service" believes it has spawned and not yet killed
        self.colds = dict.fromkeys(FUNCTIONS, 0)
        # After a settings change usage may sit above a limit (running requests finish); from then on it may only
        # go down until it is under the limit again. These ceilings track that.
        self.ceiling: dict[str, float] = {}
        self._reset_ceilings()

    # limits and usages the invariants compare
    def _limit(self, fn: str) -> float:
        reserved = self.policy.reserved(fn)
        return math.inf if reserved is None else reserved

    def _unreserved_usage(self) -> int:
        return sum(self.policy.function_usage(f) for f in FUNCTIONS if self.policy.reserved(f) is None)

    def _measures(self) -> dict[str, tuple[float, int]]:
        out: dict[str, tuple[float, int]] = {f: (self._limit(f), self.policy.function_usage(f)) for f in FUNCTIONS}
        out["account"] = (SMALL.account_concurrency, self.policy.account_usage())
        out["unreserved"] = (self.policy.unreserved_available(), self._unreserved_usage())
        return out

    def _reset_ceilings(self) -> None:
        self.ceiling = {k: max(limit, usage) for k, (limit, usage) in self._measures().items()}

    def _envs(self, state: EnvState, pool: Pool | None = None) -> list[str]:
        return sorted(r.env_id for r in self.policy.environments() if r.state is state and pool in (None, r.pool))

    def _spawned(self, ids: list[str]) -> None:
        assert not self.alive.intersection(ids)
        self.alive.update(ids)

    def _killed(self, ids: list[str]) -> None:
        assert self.alive.issuperset(ids), "asked to kill an environment that was never spawned or already killed"
        self.alive.difference_update(ids)

    # --- rules ---
    @initialize(reserved=st.integers(1, 6), provisioned=st.integers(1, 4), ready=st.booleans())
    def configure_a_reserved_and_a_provisioned_function(self, reserved: int, provisioned: int, ready: bool) -> None:
        # so that every run has both pools to exercise from its first step
        self.policy.set_reserved("f0", reserved)
        change = self.policy.set_provisioned("f1", "live", "1", provisioned)
        self._spawned(change.create)
        if ready:
            for env_id in change.create:
                self.policy.init_finished(env_id)
        self._reset_ceilings()

    @rule(fn=st.sampled_from(FUNCTIONS), qualifier=st.sampled_from(["live", "1", "$LATEST"]), init_now=st.booleans())
    def admit(self, fn: str, qualifier: str, init_now: bool) -> None:
        version = {"live": self.alias_version[fn], "1": "1", "$LATEST": "$LATEST"}[qualifier]
        got = self.policy.admit(fn, version, qualifier)
        if isinstance(got, Throttled):
            assert got.retry_after_s > 0
            return
        rec = self.policy.environment(got.env_id)
        assert rec.state in (EnvState.BUSY, EnvState.INIT) and rec.function == fn and rec.version == version
        if got.kind is StartKind.COLD:
            self._spawned([got.env_id])
            self.colds[fn] += 1
            assert rec.state is EnvState.INIT and rec.pool is Pool.ON_DEMAND
        if got.kind is not StartKind.PROVISIONED:
            # an on-demand admission never takes a function, the unreserved pool or the account over its limit
            limit, usage = self._measures()[fn]
            assert usage <= limit
            if self.policy.reserved(fn) is None:
                assert self._unreserved_usage() <= self.policy.unreserved_available()
            assert self.policy.account_usage() <= SMALL.account_concurrency
        else:
            assert rec.pool is Pool.PROVISIONED and rec.qualifier == qualifier
        if init_now and rec.state is EnvState.INIT:  # the usual case: INIT is quick
            self.policy.init_finished(got.env_id)

    @rule(fn=st.sampled_from(FUNCTIONS), qualifier=st.sampled_from(["live", "1", "$LATEST"]))
    def quick_request(self, fn: str, qualifier: str) -> None:
        """A whole short request: admitted, run and released in one step."""
        self.admit(fn, qualifier, init_now=True)
        busy = [r for r in self.policy.environments(fn) if r.state is EnvState.BUSY]
        if busy:
            env_id = max(busy, key=lambda r: (r.last_used_at or 0, r.env_id)).env_id
            if not self.policy.release(env_id):
                self._killed([env_id])

    @precondition(lambda self: self._envs(EnvState.INIT))
    @rule(data=st.data(), fail=st.booleans())
    def finish_init(self, data: st.DataObject, fail: bool) -> None:
        env_id = data.draw(st.sampled_from(self._envs(EnvState.INIT)))
        if fail:
            self.policy.init_failed(env_id, "Runtime.ImportModuleError")
            self._killed([env_id])
        else:
            self.policy.init_finished(env_id)

    @precondition(lambda self: self._envs(EnvState.BUSY))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        env_id = data.draw(st.sampled_from(self._envs(EnvState.BUSY)))
        if not self.policy.release(env_id):
            self._killed([env_id])

    @precondition(lambda self: self.policy.environments())
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        env_id = data.draw(st.sampled_from(sorted(r.env_id for r in self.policy.environments())))
        self._killed([env_id])
        self._spawned(self.policy.discard(env_id, "crash"))

    @rule()
    def reap(self) -> None:
        idle_pc = set(self._envs(EnvState.IDLE, Pool.PROVISIONED))
        reaped = self.policy.reap_idle()
        for env_id in reaped:
            assert self.policy.environment(env_id).pool is Pool.ON_DEMAND
        assert idle_pc == set(self._envs(EnvState.IDLE, Pool.PROVISIONED)), "a provisioned environment was reaped"
        self._killed(reaped)

    @rule(seconds=st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0, 6.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(fn=st.sampled_from(FUNCTIONS), value=st.none() | st.integers(0, 14))
    def set_reserved(self, fn: str, value: int | None) -> None:
        with contextlib.suppress(PolicyError):
            self.policy.set_reserved(fn, value)
        self._reset_ceilings()

    @rule(fn=st.sampled_from(FUNCTIONS), qualifier=st.sampled_from(["live", "1"]), count=st.integers(1, 8))
    def set_provisioned(self, fn: str, qualifier: str, count: int) -> None:
        version = self.alias_version[fn] if qualifier == "live" else "1"
        try:
            change = self.policy.set_provisioned(fn, qualifier, version, count)
        except PolicyError:
            return
        self._killed(change.retire)
        self._spawned(change.create)
        self._reset_ceilings()

    @rule(fn=st.sampled_from(FUNCTIONS), qualifier=st.sampled_from(["live", "1"]))
    def delete_provisioned(self, fn: str, qualifier: str) -> None:
        if qualifier in self.policy.provisioned_qualifiers(fn):
            self._killed(self.policy.delete_provisioned(fn, qualifier))
            self._reset_ceilings()

    @rule(fn=st.sampled_from(FUNCTIONS))
    def move_alias(self, fn: str) -> None:
        self.alias_version[fn] = "2" if self.alias_version[fn] == "1" else "1"
        status = self.policy.provisioned_status(fn, "live")
        if status is not None:  # the service re-applies the alias's provisioned concurrency to the new version
            try:
                change = self.policy.set_provisioned(fn, "live", self.alias_version[fn], status.requested)
            except PolicyError as error:  # the new version has its own provisioned concurrency
                assert error.code == "ResourceConflictException"
                return
            self._killed(change.retire)
            self._spawned(change.create)
            self._reset_ceilings()

    # --- invariants ---
    @invariant()
    def records_are_consistent_and_match_what_was_spawned(self) -> None:
        self.policy.check_consistency()
        live = {r.env_id for r in self.policy.environments()}
        assert live == self.alive
        for rec in self.policy.environments():
            assert rec.state is not EnvState.DEAD

    @invariant()
    def no_limit_is_exceeded_except_by_what_was_running_when_a_setting_changed(self) -> None:
        for key, (limit, usage) in self._measures().items():
            assert usage <= self.ceiling[key], f"{key}: usage {usage} above {self.ceiling[key]} (limit {limit})"
            self.ceiling[key] = max(limit, min(self.ceiling[key], usage))

    @invariant()
    def reserved_and_provisioned_leave_the_unreserved_minimum(self) -> None:
        reserved = sum(self.policy.reserved(f) or 0 for f in FUNCTIONS)
        unreserved_pc = sum(self.policy.provisioned_allocated(f) for f in FUNCTIONS if self.policy.reserved(f) is None)
        assert reserved + unreserved_pc <= SMALL.account_concurrency - SMALL.unreserved_minimum
        for f in FUNCTIONS:
            reserved_f = self.policy.reserved(f)
            if reserved_f is not None:
                assert self.policy.provisioned_allocated(f) <= reserved_f

    @invariant()
    def cold_starts_respect_the_scaling_rate(self) -> None:
        rate = SMALL.scale_burst / SMALL.scale_period_s
        for f in FUNCTIONS:
            assert self.colds[f] <= SMALL.scale_burst + rate * self.clock.now() + 1e-9


TestPolicyMachine = PolicyMachine.TestCase
TestPolicyMachine.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
