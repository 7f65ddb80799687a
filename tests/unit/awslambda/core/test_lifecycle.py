"""The sans-IO invocation lifecycle on a virtual clock: which commands each event gives, every decision the policy's."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lambdalab.awslambda.core.asyncq import Action, AsyncEvent, AsyncQueue
from lambdalab.awslambda.core.lifecycle import (
    Answer,
    Attempt,
    Dispose,
    Kill,
    Lifecycle,
    Outcome,
    Reject,
    Run,
    Spawn,
    provisioned_init_limit,
)
from lambdalab.awslambda.core.policy import ConcurrencyPolicy, EnvState, Limits, StartKind, ThrottleReason
from lambdalab.clock import VirtualClock


def make(limits: Limits | None = None, *, queue: bool = False) -> tuple[Lifecycle, VirtualClock]:
    clock = VirtualClock()
    policy = ConcurrencyPolicy(clock, limits or Limits())
    policy.add_function("fn")
    async_queue = AsyncQueue(clock) if queue else None
    return Lifecycle(policy, clock, queue=async_queue, timeout_of=lambda f, v: 30.0), clock


def attempt(clock: VirtualClock, n: int = 1, qualifier: str = "$LATEST", version: str = "$LATEST") -> Attempt:
    return Attempt(n, "fn", version, qualifier, timeout_s=30.0, received_at=clock.now())


def test_a_cold_start_spawns_with_the_init_cap_then_runs_and_the_next_call_is_warm():
    life, clock = make()
    first = life.invoke(attempt(clock, 1))
    assert isinstance(first, Spawn) and first.init_type == "on-demand" and first.init_deadline == 10.0
    clock.advance(2.0)
    run = life.init_done(first.env_id)
    assert isinstance(run, Run) and run.env_id == first.env_id and run.deadline == 32.0 and not run.reinit
    clock.advance(1.0)
    (answer,) = life.run_done(first.env_id, Outcome.SUCCESS)
    assert isinstance(answer, Answer) and answer.attempt.outcome is Outcome.SUCCESS
    assert answer.attempt.kind is StartKind.COLD
    second = life.invoke(attempt(clock, 2))
    assert isinstance(second, Run) and second.env_id == first.env_id and second.attempt.kind is StartKind.WARM


def test_reserved_concurrency_rejects_with_the_policys_reason():
    life, clock = make()
    life.policy.set_reserved("fn", 1)
    assert isinstance(life.invoke(attempt(clock, 1)), Spawn)
    rejected = life.invoke(attempt(clock, 2))
    assert isinstance(rejected, Reject)
    assert rejected.decision.reason is ThrottleReason.RESERVED and rejected.attempt.outcome is Outcome.THROTTLED


def test_an_init_past_the_cap_is_retried_inside_the_invoke_under_the_function_timeout():
    life, clock = make()
    spawn = life.invoke(attempt(clock))
    assert isinstance(spawn, Spawn)
    clock.set(spawn.init_deadline)
    (run,) = life.init_timed_out(spawn.env_id)
    assert isinstance(run, Run) and run.reinit and run.deadline == 40.0 and run.attempt.init_retried
    assert life.policy.environment(spawn.env_id).state is EnvState.BUSY


def test_a_timeout_discards_the_environment_and_a_provisioned_one_is_replaced():
    life, clock = make()
    commands = life.set_provisioned("fn", "live", "1", 1)
    (spawn,) = commands
    assert isinstance(spawn, Spawn) and spawn.init_type == "provisioned-concurrency"
    assert spawn.init_deadline == provisioned_init_limit(30.0) == 130.0
    assert life.init_done(spawn.env_id) is None
    run = life.invoke(attempt(clock, qualifier="live", version="1"))
    assert isinstance(run, Run) and run.attempt.kind is StartKind.PROVISIONED
    answer, kill, replacement = life.run_done(spawn.env_id, Outcome.TIMEOUT)
    assert isinstance(answer, Answer) and answer.attempt.outcome is Outcome.TIMEOUT
    assert isinstance(kill, Kill) and kill.env_id == spawn.env_id
    assert isinstance(replacement, Spawn) and replacement.init_type == "provisioned-concurrency"


def test_a_provisioned_init_timeout_fails_the_config_and_an_on_demand_init_error_answers():
    life, clock = make()
    (spawn,) = life.set_provisioned("fn", "live", "1", 1)
    (kill,) = life.init_timed_out(spawn.env_id)
    assert isinstance(kill, Kill)
    status = life.policy.provisioned_status("fn", "live")
    assert status is not None and status.status == "FAILED" and "130.00 seconds" in (status.status_reason or "")
    cold = life.invoke(attempt(clock))
    assert isinstance(cold, Spawn)
    answer, kill = life.init_failed(cold.env_id, "Runtime.ImportModuleError")
    assert isinstance(answer, Answer) and answer.attempt.outcome is Outcome.INIT_ERROR and isinstance(kill, Kill)


def test_reducing_provisioned_concurrency_retires_a_busy_environment_when_its_call_ends():
    life, clock = make()
    (spawn,) = life.set_provisioned("fn", "live", "1", 1)
    life.init_done(spawn.env_id)
    run = life.invoke(attempt(clock, qualifier="live", version="1"))
    assert isinstance(run, Run)
    life.policy.set_reserved("fn", 10)
    assert life.set_provisioned("fn", "live", "1", 1) == []  # unchanged
    life.delete_provisioned("fn", "live")
    answer, kill = life.run_done(run.env_id, Outcome.SUCCESS)
    assert isinstance(answer, Answer) and isinstance(kill, Kill) and kill.reason == "retired"


def test_idle_environments_are_reaped_after_keep_alive():
    life, clock = make(Limits(keep_alive_s=60.0))
    spawn = life.invoke(attempt(clock))
    life.init_done(spawn.env_id)
    life.run_done(spawn.env_id, Outcome.SUCCESS)
    assert life.next_reap_at() == 60.0
    clock.set(60.0)
    (kill,) = life.reap()
    assert isinstance(kill, Kill) and kill.env_id == spawn.env_id


def test_async_attempts_get_the_queues_disposition_and_reserved_zero_fails_at_once():
    life, clock = make(queue=True)
    life.accept_async(AsyncEvent("e1", "fn", None, b"{}"))
    (spawn,) = life.dispatch_async(lambda e: attempt(clock, 1))
    assert isinstance(spawn, Spawn)
    life.init_done(spawn.env_id)
    _answer, dispose = life.run_done(spawn.env_id, Outcome.FUNCTION_ERROR)
    assert isinstance(dispose, Dispose) and dispose.disposition.action is Action.REQUEUED
    assert dispose.disposition.next_attempt_at == 60.0  # function errors: retried a minute later
    life.policy.set_reserved("fn", 0)
    clock.set(60.0)
    reject, dispose = life.dispatch_async(lambda e: attempt(clock, 2))
    assert isinstance(reject, Reject)
    assert isinstance(dispose, Dispose) and dispose.disposition.action is Action.DISCARDED
    assert life.queue is not None and life.queue.counts().discarded == 1


class LifecycleMachine(RuleBasedStateMachine):
    """Random events in a legal order: every admitted attempt is answered exactly once and nothing exceeds reserved."""

    def __init__(self) -> None:
        super().__init__()
        self.life, self.clock = make(Limits(account_concurrency=200, unreserved_minimum=100, keep_alive_s=5.0))
        self.life.policy.set_reserved("fn", 4)
        self.initing: list[str] = []
        self.running: list[str] = []
        self.sent = 0
        self.answered: set[int] = set()
        self.rejected = 0

    def _apply(self, commands: object) -> None:
        items = commands if isinstance(commands, (list, tuple)) else [commands]
        for command in items:
            if command is None:
                continue
            if isinstance(command, Spawn):
                self.initing.append(command.env_id)
            elif isinstance(command, Run):
                self.running.append(command.env_id)
            elif isinstance(command, Kill):
                for pending in (self.initing, self.running):
                    if command.env_id in pending:
                        pending.remove(command.env_id)
            elif isinstance(command, Answer):
                n = command.attempt.request_id
                assert n not in self.answered, f"attempt {n} answered twice"
                self.answered.add(int(n))
            elif isinstance(command, Reject):
                self.rejected += 1

    @rule(qualifier=st.sampled_from(["$LATEST", "live"]))
    def invoke(self, qualifier: str) -> None:
        self.sent += 1
        version = "1" if qualifier == "live" else "$LATEST"
        new = Attempt(self.sent, "fn", version, qualifier, timeout_s=30.0, received_at=self.clock.now())
        self._apply(self.life.invoke(new))

    @rule(count=st.integers(1, 3))
    def provision(self, count: int) -> None:
        self._apply(self.life.set_provisioned("fn", "live", "1", count))

    @precondition(lambda self: self.initing)
    @rule(data=st.data(), how=st.sampled_from(["done", "failed", "timed out"]))
    def finish_init(self, data: st.DataObject, how: str) -> None:
        env_id = data.draw(st.sampled_from(self.initing))
        self.initing.remove(env_id)
        if how == "done":
            self._apply(self.life.init_done(env_id))
        elif how == "failed":
            self._apply(self.life.init_failed(env_id, "boom"))
        else:
            self._apply(self.life.init_timed_out(env_id))

    @precondition(lambda self: self.running)
    @rule(data=st.data(), outcome=st.sampled_from(list(Outcome)[:4]))
    def finish_run(self, data: st.DataObject, outcome: Outcome) -> None:
        env_id = data.draw(st.sampled_from(self.running))
        self.running.remove(env_id)
        self._apply(self.life.run_done(env_id, outcome))

    @rule(seconds=st.sampled_from([0.5, 3.0, 10.0]))
    def advance_and_reap(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._apply(self.life.reap())

    @invariant()
    def nothing_lost_and_reserved_respected(self) -> None:
        self.life.policy.check_consistency()
        assert self.sent == len(self.answered) + self.rejected + self.life.in_flight()
        # reserved 4 caps on-demand admissions; provisioned environments (at most 3) may be created above it
        assert self.life.policy.function_usage("fn") <= 4 + 3


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_an_unknown_environment_is_a_caller_bug():
    life, _ = make()
    with pytest.raises(KeyError):
        life.run_done("nope", Outcome.SUCCESS)
