"""The state-machine interpreter: paths, intrinsics, Map concurrency, Retry with backoff, Catch, Choice."""

from __future__ import annotations

import pytest

from lambdalab.errors import UserError
from lambdalab.simulate.asl import Failed, StateMachineLoad, check_definition, get_path, resolve_template
from lambdalab.simulate.stack import StateMachine
from tests.unit.simulate.conftest import models, simulation, stack


def test_paths_intrinsics_and_the_map_context():
    doc = {"a": {"b": [10, {"c": "x"}]}, "n": "40"}
    assert get_path(doc, "$.a.b[1].c") == "x"
    context = {"Map": {"Item": {"Value": 7, "Index": 2}}}
    template = {
        "v.$": "$$.Map.Item.Value",
        "m.$": "States.StringToJson($.n)",
        "k": 1,
        "f.$": "States.Format('{}-{}', $.n, 3)",
    }
    assert resolve_template(template, doc, context) == {"v": 7, "m": 40, "k": 1, "f": "40-3"}
    with pytest.raises(Failed, match=r"States.Runtime"):
        get_path(doc, "$.missing")


def _machine(definition: dict) -> StateMachine:
    return StateMachine("M", "m", definition)


def _map_of(n_items: int, retry: list | None, max_concurrency: int = 0, catch: list | None = None) -> dict:
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "ConcurrencyTestFunction:live", "Payload.$": "$"},
        "End": True,
    }
    if retry:
        task["Retry"] = retry
    if catch:
        task["Catch"] = catch
    return {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": {"StartAt": "Call", "States": {"Call": task}},
                "End": True,
            }
        },
    }


def test_throttled_iterations_are_retried_with_backoff_and_the_execution_succeeds():
    # GIVEN reserved concurrency 1 and three parallel iterations that each take 1 s
    s = stack(ReservedConcurrency="1")
    sim = simulation(s, models("*.init=100ms", "*.duration=1s"))
    retry = [
        {"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 1, "BackoffRate": 2, "MaxAttempts": 6}
    ]
    load = StateMachineLoad(_machine(_map_of(3, retry)), {"items": [1, 2, 3]})
    load.start(sim, s)
    sim.run(sim.load_start)
    (record,) = load.records
    assert record.status == "SUCCEEDED"
    assert record.retries >= 2
    throttled = [a for a in record.attempts if a.throttle is not None]
    assert len(throttled) == record.retries
    assert len(record.attempts) - len(throttled) == 3


def test_without_retry_a_throttle_fails_the_map_unless_caught():
    s = stack(ReservedConcurrency="1")
    sim = simulation(s, models("*.init=100ms", "*.duration=1s"))
    failing = StateMachineLoad(_machine(_map_of(3, None)), {"items": [1, 2, 3]})
    failing.start(sim, s)
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Done"}]
    definition = _map_of(3, None, catch=catch)
    definition["States"]["Fan"]["ItemProcessor"]["States"]["Done"] = {"Type": "Succeed"}
    del definition["States"]["Fan"]["ItemProcessor"]["States"]["Call"]["End"]
    definition["States"]["Fan"]["ItemProcessor"]["States"]["Call"]["Next"] = "Done"
    caught = StateMachineLoad(_machine(definition), {"items": [1, 2, 3]})
    caught.start(sim, s)
    sim.run(sim.load_start)
    assert failing.records[0].status == "FAILED" and failing.records[0].error == "Lambda.TooManyRequestsException"
    assert caught.records[0].status == "SUCCEEDED"


def test_max_concurrency_limits_the_map_and_inline_never_runs_more_than_40():
    s = stack(ReservedConcurrency="-1")
    sim = simulation(s, models("*.init=100ms", "*.duration=1s"))
    three = StateMachineLoad(_machine(_map_of(9, None, max_concurrency=3)), {"items": list(range(9))})
    three.start(sim, s)
    sim.run(sim.load_start)
    assert three.records[0].end - three.records[0].start == pytest.approx(3 * 1.0 + 0.1)
    assert next(iter(sim.stats.values())).cold == 3


def test_unsupported_states_are_refused_by_name():
    with pytest.raises(UserError, match=r"'Call'.*only Lambda tasks"):
        check_definition(
            {
                "StartAt": "Call",
                "States": {"Call": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "End": True}},
            },
            "M",
        )
    with pytest.raises(UserError, match="type 'Dance'"):
        check_definition({"StartAt": "X", "States": {"X": {"Type": "Dance"}}}, "M")
