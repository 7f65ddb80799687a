"""A concurrency throttle that this machine caused (INITs held up by it — the fork, the CPU gate, the run queue — that
on AWS would be over) waits instead of answering 429; one that AWS would give stands; a call waits for an environment
AWS would have free instead of starting one more INIT. Pure: a stand-in host, no processes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from lambdalab.awslambda.core.localwait import LocalWait
from lambdalab.awslambda.core.policy import Admitted, StartKind, Throttled, ThrottleReason
from lambdalab.awslambda.service.service import UNHURRIED_FORK_S, LambdaService, ServiceConfig, _Attempt
from lambdalab.clock import Clocks


@dataclass
class Spec:
    function_name: str
    version: str = "$LATEST"
    init_type: str = "on-demand"


@dataclass
class Env:
    """What the service reads of an environment: whose it is, whether it queues for a CPU, how long its INIT ran."""

    spec: Spec
    queued: bool  # waiting for this machine: its INIT's local wait so far is all of its elapsed time
    elapsed_s: float
    waited_s: float | None = None  # or this much (None: as `queued` says)
    in_init: bool = True

    def init_waited_s(self, now: float) -> float | None:
        if not self.in_init:
            return None
        if self.waited_s is not None:
            return self.waited_s
        return self.elapsed_s if self.queued else 0.0

    def init_elapsed_s(self, now: float) -> float:
        return self.elapsed_s


@dataclass
class Host:
    environments: dict[str, Env] = field(default_factory=dict)


def service(host: Host) -> LambdaService:
    return LambdaService(host, ServiceConfig(), clocks=Clocks.wall())  # type: ignore[arg-type]


class Function:
    name = "f"


class Version:
    version = "$LATEST"


def attempt_of_f() -> _Attempt:
    return _Attempt("r1", Function, "$LATEST", Version, "RequestResponse", 0.0, None)  # type: ignore[arg-type]


RESERVED = Throttled(ThrottleReason.RESERVED, 1.0)
ACCOUNT = Throttled(ThrottleReason.ACCOUNT, 1.0)
RATE = Throttled(ThrottleReason.SCALING_RATE, 1.0)


def test_an_init_late_for_its_own_reasons_leaves_the_throttle_lambdas() -> None:
    # GIVEN an INIT of f running for 5 s (f's take 0.3 s here) that waited 1 s for this machine: without the wait it
    # would still run (AWS would be running it too)
    env = Env(Spec("f"), queued=False, elapsed_s=5.0, waited_s=1.0)
    lam = service(Host(environments={"e1": env}))
    lam._note_init("f", 0.3)
    assert not lam._held_by_this_machine(RESERVED, "f")
    # AND once it has waited for longer than it is late, it is this machine's doing
    env.waited_s = 4.8
    assert lam._held_by_this_machine(RESERVED, "f")


def test_an_init_that_never_waited_for_this_machine_or_is_over_leaves_the_throttle_lambdas() -> None:
    # GIVEN an INIT of f 5 ms late (f's take 0.3 s) that waited for this machine no longer than an unhurried fork takes
    env = Env(Spec("f"), queued=False, elapsed_s=0.305, waited_s=UNHURRIED_FORK_S)
    host = Host(environments={"e1": env})
    lam = service(host)
    lam._note_init("f", 0.3)
    # THEN the throttle is Lambda's
    assert not lam._held_by_this_machine(RESERVED, "f")
    # AND so it is once an INIT that did wait for this machine is over
    env.waited_s, env.in_init = 4.9, False
    assert not lam._held_by_this_machine(RESERVED, "f")


def test_an_init_held_up_off_the_cpu_gate_counts() -> None:
    # GIVEN an INIT of f that is 0.7 s late and waited 0.8 s for this machine in all, none of it at the CPU gate (its
    # fork and the run queue of a CPU shared with a storm's other INITs, before it asks for a token)
    host = Host(environments={"e1": Env(Spec("f"), queued=False, elapsed_s=1.0, waited_s=0.8)})
    lam = service(host)
    lam._note_init("f", 0.3)
    # THEN on AWS it would be over: the concurrency it holds is this machine's doing
    assert lam._held_by_this_machine(RESERVED, "f")


def test_an_init_queued_longer_than_the_function_takes_alone_holds_the_concurrency() -> None:
    host = Host(environments={"e1": Env(Spec("f"), queued=True, elapsed_s=1.0)})
    lam = service(host)
    for init in (0.25, 0.3, 0.35):
        lam._note_init("f", init)
    assert lam._held_by_this_machine(RESERVED, "f")
    assert lam._held_by_this_machine(ACCOUNT, "g")  # the account's concurrency counts every function's
    assert not lam._held_by_this_machine(RESERVED, "g")  # g's reserved pool does not hold f's environments
    assert not lam._held_by_this_machine(RATE, "f")  # the scaling rate is not a matter of CPU


def test_an_init_younger_than_its_usual_length_would_still_be_running_on_aws() -> None:
    host = Host(environments={"e1": Env(Spec("f"), queued=True, elapsed_s=0.1)})
    lam = service(host)
    lam._note_init("f", 0.3)
    assert not lam._held_by_this_machine(RESERVED, "f")


def test_a_function_never_seen_to_init_gives_no_yardstick() -> None:
    host = Host(environments={"e1": Env(Spec("f"), queued=True, elapsed_s=30.0)})
    assert not service(host)._held_by_this_machine(RESERVED, "f")


def test_the_yardstick_is_the_median_of_recent_inits() -> None:
    lam = service(Host())
    for init in (0.1, 5.0, 0.2, 0.3, 0.2):
        lam._note_init("f", init)
    assert lam._usual_init_s["f"] == 0.2


async def test_a_held_throttle_waits_until_a_call_ends_then_is_decided_again() -> None:
    host = Host(environments={"e1": Env(Spec("f"), queued=True, elapsed_s=1.0)})
    lam = service(host)
    lam._loop = asyncio.get_running_loop()
    lam._note_init("f", 0.3)
    admitted = Admitted(env_id="e2", kind=StartKind.WARM, spillover=False)
    answers = iter([admitted])
    lam.policy.admit = lambda *_: next(answers)  # type: ignore[method-assign]
    job = attempt_of_f()
    job.local_wait = LocalWait()  # API Gateway's reading of the request's local waits
    task = asyncio.create_task(lam._admit_after_local_backlog(job, RESERVED))
    await asyncio.sleep(0.01)
    assert not task.done()  # waiting, not throttled
    assert job.local_wait.seconds(lam.clock.now()) > 0  # the wait under way already counts
    lam.waiting.call_ended("f")  # a call ended
    assert await asyncio.wait_for(task, 1.0) is admitted
    assert job.admission_wait_s > 0
    assert job.local_wait.seconds(lam.clock.now() + 5) == pytest.approx(job.admission_wait_s)  # over: stays put


async def test_once_nothing_is_held_up_the_throttle_stands() -> None:
    env = Env(Spec("f"), queued=True, elapsed_s=1.0)
    host = Host(environments={"e1": env})
    lam = service(host)
    lam._loop = asyncio.get_running_loop()
    lam._note_init("f", 0.3)
    lam.policy.admit = lambda *_: RESERVED  # type: ignore[method-assign]
    job = attempt_of_f()
    task = asyncio.create_task(lam._admit_after_local_backlog(job, RESERVED))
    await asyncio.sleep(0.01)
    assert not task.done()
    env.in_init = False  # its INIT is over: nothing is held up any more
    assert await asyncio.wait_for(task, 1.0) is RESERVED  # the next poll decides: Lambda's throttle


def cold_start_of_f(lam: LambdaService, host: Host, env: Env) -> Admitted:
    """An on-demand INIT of f in the policy's records, its environment `env` in the host's."""
    lam.policy.add_function("f")
    cold = lam.policy.admit("f", "$LATEST", "$LATEST")
    assert isinstance(cold, Admitted) and cold.kind is StartKind.COLD
    host.environments[cold.env_id] = env
    return cold


def test_a_call_waits_for_an_environment_aws_would_have_free_instead_of_one_more_init() -> None:
    # GIVEN an on-demand INIT of f held up by this machine for longer than f's INITs take here
    host = Host()
    lam = service(host)
    lam._note_init("f", 0.3)
    env = Env(Spec("f"), queued=True, elapsed_s=1.0)
    cold_start_of_f(lam, host, env)
    # THEN a new call of f waits for it (on AWS it would be free by now) ...
    assert lam._lagging("f", "$LATEST", "$LATEST")
    # ... but not a call of another version, nor one of another function
    assert not lam._lagging("f", "2", "2")
    assert not lam._lagging("g", "$LATEST", "$LATEST")
    # AND not when it waited for this machine less than it is late (on AWS it would still be running), nor once
    # it is over
    env.waited_s = 0.6
    assert not lam._lagging("f", "$LATEST", "$LATEST")
    env.waited_s, env.in_init = None, False
    assert not lam._lagging("f", "$LATEST", "$LATEST")
    env.in_init = True
    assert lam._lagging("f", "$LATEST", "$LATEST")


def test_a_provisioned_init_held_up_does_not_hold_on_demand_calls() -> None:
    # GIVEN f's alias "live" on version 1 with one provisioned environment, its INIT held up by this machine
    host = Host()
    lam = service(host)
    lam._note_init("f", 0.3)
    lam.policy.add_function("f")
    (provisioned,) = lam.policy.set_provisioned("f", "live", "1", 1).create
    host.environments[provisioned] = Env(Spec("f", version="1", init_type="provisioned-concurrency"), True, 1.0)
    # THEN a call of the alias does not wait for it: on AWS that call spills over to an on-demand environment too
    assert not lam._lagging("f", "1", "live")


def test_an_idle_environment_is_taken_at_once() -> None:
    host = Host()
    lam = service(host)
    lam._note_init("f", 0.3)
    cold_start_of_f(lam, host, Env(Spec("f"), queued=True, elapsed_s=1.0))
    assert lam._lagging("f", "$LATEST", "$LATEST")
    admitted = lam.policy.admit("f", "$LATEST", "$LATEST")  # a second environment of f, which becomes idle
    assert isinstance(admitted, Admitted)
    lam.policy.init_finished(admitted.env_id)
    lam.policy.release(admitted.env_id)
    assert not lam._lagging("f", "$LATEST", "$LATEST")  # the policy hands it over


async def test_a_lagging_wait_ends_when_a_call_ends_and_counts_as_local() -> None:
    env = Env(Spec("f"), queued=True, elapsed_s=1.0)
    host = Host()
    lam = service(host)
    lam._loop = asyncio.get_running_loop()
    lam._note_init("f", 0.3)
    cold_start_of_f(lam, host, env)
    job = attempt_of_f()
    task = asyncio.create_task(lam._wait_while_lagging(job))
    await asyncio.sleep(0.01)
    assert not task.done()
    env.in_init = False  # its INIT is over: the call goes on (to a warm environment or a new one)
    lam.waiting.call_ended("f")
    await asyncio.wait_for(task, 1.0)
    assert job.admission_wait_s > 0
