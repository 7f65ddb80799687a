"""The INIT CPU gate (FIFO, resuming INITs first, never above capacity) and the run-queue reading."""

from __future__ import annotations

import os

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lambdalab.awslambda.runtime.cpu import CpuGate, run_queue_delay_s


def test_tokens_go_in_request_order_and_never_above_capacity() -> None:
    gate = CpuGate(2)
    granted: list[str] = []
    for owner in "abcd":
        gate.request(owner, lambda o=owner: granted.append(o))
    assert granted == ["a", "b"] and gate.waiting == 2
    gate.release("a")
    assert granted == ["a", "b", "c"]
    gate.release("c")
    gate.release("b")
    assert granted == ["a", "b", "c", "d"]
    assert gate.stats.granted == 4 and gate.stats.queued == 2


def test_a_resuming_init_goes_ahead_of_new_ones() -> None:
    # GIVEN one token, held by a; b and c queued (new)
    gate = CpuGate(1)
    granted: list[str] = []
    for owner in "abc":
        gate.request(owner, lambda o=owner: granted.append(o))
    # WHEN a gives its token back to wait (a replayed import) and asks again, resuming
    gate.release("a")
    assert granted == ["a", "b"]
    gate.request("a", lambda: granted.append("a again"), resume=True)
    gate.release("b")
    # THEN a, which had begun, gets the token before c, which had not
    assert granted == ["a", "b", "a again"]
    gate.release("a")
    assert granted[-1] == "c"


def test_release_is_idempotent_and_withdraws_a_pending_request() -> None:
    gate = CpuGate(1)
    granted: list[str] = []
    gate.request("a", lambda: granted.append("a"))
    gate.request("b", lambda: granted.append("b"))
    gate.release("b")  # b gives up before its turn (its environment died)
    gate.release("b")
    gate.release("a")
    gate.release("a")
    assert granted == ["a"] and gate.holders == frozenset() and gate.waiting == 0


def test_a_grant_that_cannot_be_delivered_returns_the_token() -> None:
    gate = CpuGate(1)

    def broken() -> None:
        raise OSError("the child is gone")

    gate.request("a", lambda: None)
    gate.request("dead", broken)
    gate.request("c", lambda: None)
    gate.release("a")  # dead's grant fails: the token must reach c
    assert gate.holders == frozenset({"c"})


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        CpuGate(0)


def test_run_queue_delay_of_this_process_and_of_none() -> None:
    delay = run_queue_delay_s(os.getpid())
    assert delay is not None and delay >= 0.0
    assert run_queue_delay_s(2**22 + 12345) is None  # no such process


class GateMachine(RuleBasedStateMachine):
    """Random requests, resumptions and releases: never above capacity, no grant lost or doubled, resumers first."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 2
        self.gate = CpuGate(self.capacity)
        self.holding: set[str] = set()
        self.waiting: dict[str, bool] = {}  # owner -> resuming
        self.began: set[str] = set()

    def _grant(self, owner: str) -> None:
        assert owner not in self.holding, f"{owner} granted twice"
        if self.waiting:
            resumers = [o for o, r in self.waiting.items() if r]
            expected_first = resumers[0] if resumers else next(iter(self.waiting))
            assert owner in self.waiting
            assert owner == expected_first, f"{owner} granted before {expected_first}"
        self.waiting.pop(owner, None)
        self.holding.add(owner)
        self.began.add(owner)

    @rule(owner=st.sampled_from("abcdef"))
    def request(self, owner: str) -> None:
        if owner in self.holding or owner in self.waiting:
            return
        resume = owner in self.began
        self.waiting[owner] = resume
        self.gate.request(owner, lambda: self._grant(owner), resume=resume)

    @precondition(lambda self: self.holding or self.waiting)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        owner = data.draw(st.sampled_from(sorted(self.holding | set(self.waiting))))
        self.holding.discard(owner)
        self.waiting.pop(owner, None)
        self.gate.release(owner)

    @invariant()
    def never_above_capacity_and_never_idle_with_waiters(self) -> None:
        assert len(self.holding) <= self.capacity
        assert self.gate.holders == frozenset(self.holding)
        if len(self.holding) < self.capacity:
            assert not self.waiting, "a token is free while someone waits"


TestGateMachine = GateMachine.TestCase
