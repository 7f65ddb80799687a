"""State machines on the simulator's clock: the subset of Amazon States Language a load generator needs.

The local cloud runs definitions in moto's interpreter, which runs Map iterations in threads on the wall clock; the
simulator needs virtual time, so it interprets the definition itself. Supported: Pass, Task (Lambda: the
`arn:aws:states:::lambda:invoke` integration or a function ARN as Resource), Map (INLINE: at most 40 iterations at
once, the rule the local cloud's patch applies, lambdalab.stepfunctions.patches.inline_workers; DISTRIBUTED: up to
10,000 child executions; MaxConcurrency / MaxConcurrencyPath), Parallel, Wait (Seconds, SecondsPath), Choice (the
comparison operators on paths), Succeed, Fail; InputPath, Parameters / ItemSelector (with `.$` paths, the context
object `$$.Map.Item.Value` / `Index`, and the intrinsics States.StringToJson, JsonToString, Format, Array,
ArrayLength, MathAdd), ResultSelector, ResultPath, OutputPath; Retry (ErrorEquals, IntervalSeconds, BackoffRate,
MaxAttempts, MaxDelaySeconds, JitterStrategy FULL) and Catch. Lambda errors surface as on AWS:
`Lambda.TooManyRequestsException` for a throttle, the function's error otherwise (`Exception` for an unhandled
error, `Sandbox.Timedout` for a timeout). Anything else is refused by name before the run starts.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.errors import UserError
from lambdalab.simulate.engine import SimAttempt, Simulation
from lambdalab.simulate.stack import SimStack, StateMachine
from lambdalab.stepfunctions.patches import inline_workers

LOG = logging.getLogger(__name__)

DISTRIBUTED_MAX_CONCURRENCY = 10_000  # "up to 10,000 parallel child workflow executions" [Distributed Map]
_LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
_STATES = {"Pass", "Task", "Map", "Parallel", "Wait", "Choice", "Succeed", "Fail"}
_ERRORS = {
    Outcome.THROTTLED: "Lambda.TooManyRequestsException",
    Outcome.FUNCTION_ERROR: "Exception",
    Outcome.TIMEOUT: "Sandbox.Timedout",
    Outcome.CRASH: "Runtime.ExitError",
    Outcome.INIT_ERROR: "Runtime.Unknown",
}


class Failed(Exception):
    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.cause = cause


# --- JSONPath (the subset ASL uses) ------------------------------------------------------------------------------

_PATH_PART = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\['([^']+)'\]")


def get_path(document: Any, path: str, context: Mapping[str, Any] | None = None) -> Any:
    if path.startswith("$$"):
        document, path = context or {}, path[1:]
    if not path.startswith("$"):
        raise Failed("States.Runtime", f"{path!r} is not a JSONPath")
    value = document
    for match in _PATH_PART.finditer(path, 1):
        key, index, quoted = match.groups()
        try:
            value = value[int(index)] if index is not None else value[key if key is not None else quoted]
        except (KeyError, IndexError, TypeError):
            raise Failed("States.Runtime", f"the JSONPath {path} could not be found in the input") from None
    return value


def set_path(document: Any, path: str | None, value: Any) -> Any:
    """ResultPath: null discards the result, $ replaces the input, $.a.b sets a field."""
    if path is None:
        return document
    if path == "$":
        return value
    out = json.loads(json.dumps(document)) if isinstance(document, dict) else {}
    target = out
    parts = [m.group(1) or m.group(3) for m in _PATH_PART.finditer(path, 1)]
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return out


_INTRINSIC = re.compile(r"^States\.([A-Za-z]+)\((.*)\)$", re.S)


def _split_args(text: str) -> list[str]:
    args, depth, quote, current = [], 0, False, ""
    for ch in text:
        if ch == "'" and not current.endswith("\\"):
            quote = not quote
        if not quote and ch == "(":
            depth += 1
        if not quote and ch == ")":
            depth -= 1
        if ch == "," and not quote and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        args.append(current.strip())
    return args


def _argument(text: str, document: Any, context: Mapping[str, Any]) -> Any:
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("\\'", "'")
    if text.startswith("$"):
        return get_path(document, text, context)
    if text.startswith("States."):
        return _intrinsic(text, document, context)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise Failed("States.Runtime", f"cannot read intrinsic argument {text!r}") from None


def _intrinsic(text: str, document: Any, context: Mapping[str, Any]) -> Any:
    match = _INTRINSIC.match(text.strip())
    if match is None:
        raise Failed("States.Runtime", f"{text!r} is not an intrinsic function")
    name = match.group(1)
    args = [_argument(a, document, context) for a in _split_args(match.group(2))]
    if name == "StringToJson":
        return json.loads(args[0])
    if name == "JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if name == "Format":
        template, rest = str(args[0]), list(args[1:])
        return re.sub(r"\{\}", lambda m: str(rest.pop(0)) if rest else "{}", template)
    if name == "Array":
        return list(args)
    if name == "ArrayLength":
        return len(args[0])
    if name == "MathAdd":
        return args[0] + args[1]
    if name == "UUID":
        return str(uuid.uuid4())
    raise Failed("States.Runtime", f"intrinsic States.{name} is not simulated")


def resolve_template(template: Any, document: Any, context: Mapping[str, Any]) -> Any:
    """Parameters / ItemSelector / ResultSelector: keys ending in `.$` take a path or an intrinsic."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                out[key[:-2]] = (
                    _intrinsic(value, document, context)
                    if value.startswith("States.")
                    else get_path(document, value, context)
                )
            else:
                out[key] = resolve_template(value, document, context)
        return out
    if isinstance(template, list):
        return [resolve_template(v, document, context) for v in template]
    return template


# --- the interpreter ---------------------------------------------------------------------------------------------

Effect = tuple[Any, ...]
Machine = Generator[Effect, Any, Any]


@dataclass
class ExecutionRecord:
    machine: str
    name: str
    start: float
    end: float | None = None
    status: str = "RUNNING"
    error: str | None = None
    attempts: list[SimAttempt] = field(default_factory=list)
    retries: int = 0
    transitions: int = 0


def check_definition(definition: Mapping[str, Any], where: str) -> None:
    """Refuse what is not simulated before the run starts, naming the state."""
    states = definition.get("States")
    if not isinstance(states, Mapping) or definition.get("StartAt") not in states:
        raise UserError("a state machine needs StartAt naming one of its States", where=where)
    for name, state in states.items():
        kind = state.get("Type") if isinstance(state, Mapping) else None
        if kind not in _STATES:
            raise UserError(
                f"state {name!r}: type {kind!r} is not simulated ({', '.join(sorted(_STATES))})", where=where
            )
        if kind == "Task":
            resource = str(state.get("Resource", ""))
            if resource != _LAMBDA_INVOKE and ":lambda:" not in resource and ":function:" not in resource:
                raise UserError(f"state {name!r}: only Lambda tasks are simulated, not {resource}", where=where)
        if kind == "Map":
            body = state.get("ItemProcessor") or state.get("Iterator")
            if not isinstance(body, Mapping):
                raise UserError(f"state {name!r}: a Map needs ItemProcessor (or Iterator)", where=where)
            if "ItemReader" in state:
                raise UserError(f"state {name!r}: ItemReader (items from S3) is not simulated", where=where)
            check_definition(body, f"{where}: {name}")
        if kind == "Parallel":
            for i, branch in enumerate(state.get("Branches") or []):
                check_definition(branch, f"{where}: {name}.Branches[{i}]")


class Interpreter:
    def __init__(self, sim: Simulation, stack: SimStack) -> None:
        self.sim = sim
        self.stack = stack

    def run_states(
        self, definition: Mapping[str, Any], data: Any, record: ExecutionRecord, context: dict[str, Any]
    ) -> Machine:
        states = definition["States"]
        name = definition["StartAt"]
        while True:
            state = states[name]
            record.transitions += 1
            kind = state["Type"]
            if kind == "Succeed":
                return _output(state, _input(state, data, context), context)
            if kind == "Fail":
                raise Failed(str(state.get("Error", "States.Fail")), str(state.get("Cause", "")))
            if kind == "Choice":
                effective = _input(state, data, context)
                chosen = next((r["Next"] for r in state.get("Choices") or [] if _choice(r, effective, context)), None)
                name = chosen or state.get("Default")
                if name is None:
                    raise Failed("States.NoChoiceMatched", "no Choice rule matched and there is no Default")
                data = _output(state, effective, context)
                continue
            try:
                data = yield from self._state(state, data, record, context)
            except Failed as failure:
                catcher = next(
                    (c for c in state.get("Catch") or [] if _matches(c.get("ErrorEquals") or [], failure.error)), None
                )
                if catcher is None:
                    raise
                error = {"Error": failure.error, "Cause": failure.cause}
                data = set_path(data, catcher.get("ResultPath", "$"), error)
                name = catcher["Next"]
                continue
            if state.get("End"):
                return data
            name = state["Next"]

    def _state(self, state: Mapping[str, Any], data: Any, record: ExecutionRecord, context: dict[str, Any]) -> Machine:
        kind = state["Type"]
        effective = _input(state, data, context)
        if kind == "Pass":
            result = state["Result"] if "Result" in state else _parameters(state, effective, context)
            return _finish(state, data, result, context)
        if kind == "Wait":
            seconds = state.get("Seconds")
            if seconds is None and "SecondsPath" in state:
                seconds = get_path(effective, state["SecondsPath"], context)
            yield ("sleep", float(seconds or 0))
            return _output(state, effective, context)
        if kind == "Task":
            result = yield from self._task(state, effective, record, context)
            return _finish(state, data, result, context)
        if kind == "Map":
            result = yield from self._map(state, effective, record, context)
            return _finish(state, data, result, context)
        if kind == "Parallel":
            branches = state.get("Branches") or []
            makers = [lambda b=b: self.run_states(b, effective, record, context) for b in branches]
            result = yield ("fork", makers, len(makers))
            return _finish(state, data, result, context)
        raise Failed("States.Runtime", f"state type {kind} is not simulated")

    def _task(
        self, state: Mapping[str, Any], effective: Any, record: ExecutionRecord, context: dict[str, Any]
    ) -> Machine:
        resource = str(state["Resource"])
        parameters = _parameters(state, effective, context)
        target = str((parameters or {}).get("FunctionName", "")) if resource.startswith(_LAMBDA_INVOKE) else resource
        function, qualifier = self.stack.function_of_arn(target)
        retriers = [dict(r) for r in state.get("Retry") or []]
        counts = [0] * len(retriers)
        while True:
            attempt: SimAttempt = yield ("invoke", function, qualifier)
            record.attempts.append(attempt)
            if attempt.outcome is Outcome.SUCCESS:
                payload: Any = {}
                if resource.startswith(_LAMBDA_INVOKE):
                    return {"ExecutedVersion": attempt.version, "Payload": payload, "StatusCode": 200}
                return payload
            error = _ERRORS.get(attempt.outcome or Outcome.CRASH, "States.TaskFailed")
            index = next((i for i, r in enumerate(retriers) if _matches(r.get("ErrorEquals") or [], error)), None)
            if index is None:
                raise Failed(error, f"the Lambda invocation failed: {attempt.outcome}")
            retrier = retriers[index]
            if counts[index] >= int(retrier.get("MaxAttempts", 3)):
                raise Failed(error, f"retries exhausted ({counts[index]})")
            delay = float(retrier.get("IntervalSeconds", 1)) * float(retrier.get("BackoffRate", 2.0)) ** counts[index]
            if "MaxDelaySeconds" in retrier:
                delay = min(delay, float(retrier["MaxDelaySeconds"]))
            if str(retrier.get("JitterStrategy", "NONE")) == "FULL":
                delay = self.sim.rng.uniform(0.0, delay)
            counts[index] += 1
            record.retries += 1
            yield ("sleep", delay)

    def _iteration(
        self, body: Mapping[str, Any], value: Any, record: ExecutionRecord, context: dict[str, Any]
    ) -> Callable[[], Machine]:
        return lambda: self.run_states(body, value, record, context)

    def _map(
        self, state: Mapping[str, Any], effective: Any, record: ExecutionRecord, context: dict[str, Any]
    ) -> Machine:
        items = get_path(effective, state.get("ItemsPath", "$"), context)
        if not isinstance(items, list):
            raise Failed("States.Runtime", "the Map's ItemsPath does not select an array")
        body = state.get("ItemProcessor") or state.get("Iterator") or {}
        mode = str(((body.get("ProcessorConfig") or {}).get("Mode")) or "INLINE")
        if "MaxConcurrencyPath" in state:
            declared = int(get_path(effective, state["MaxConcurrencyPath"], context))
        else:
            declared = int(state.get("MaxConcurrency", 0))
        if mode == "DISTRIBUTED":
            workers = declared if declared > 0 else DISTRIBUTED_MAX_CONCURRENCY
            workers = min(workers, DISTRIBUTED_MAX_CONCURRENCY)
        else:
            workers = inline_workers(declared)
        selector = state.get("ItemSelector", state.get("Parameters"))
        makers: list[Callable[[], Machine]] = []
        for index, item in enumerate(items):
            item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
            value = resolve_template(selector, effective, item_context) if selector is not None else item
            makers.append(self._iteration(body, value, record, item_context))
        result = yield ("fork", makers, max(1, workers))
        return result


def _matches(errors: list[str], error: str) -> bool:
    return error in errors or "States.ALL" in errors or ("States.TaskFailed" in errors and error != "States.Timeout")


def _input(state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> Any:
    path = state.get("InputPath", "$")
    return {} if path is None else get_path(data, path, context)


def _parameters(state: Mapping[str, Any], effective: Any, context: Mapping[str, Any]) -> Any:
    if "Parameters" in state and state["Type"] != "Map":
        return resolve_template(state["Parameters"], effective, context)
    return effective


def _output(state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> Any:
    path = state.get("OutputPath", "$")
    return {} if path is None else get_path(data, path, context)


def _finish(state: Mapping[str, Any], data: Any, result: Any, context: Mapping[str, Any]) -> Any:
    if "ResultSelector" in state:
        result = resolve_template(state["ResultSelector"], result, context)
    combined = set_path(data, state.get("ResultPath", "$"), result)
    return _output(state, combined, context)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "StringEquals": lambda a, b: a == b,
    "NumericEquals": lambda a, b: a == b,
    "NumericLessThan": lambda a, b: a < b,
    "NumericGreaterThan": lambda a, b: a > b,
    "NumericLessThanEquals": lambda a, b: a <= b,
    "NumericGreaterThanEquals": lambda a, b: a >= b,
    "BooleanEquals": lambda a, b: a == b,
}


def _choice(rule: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> bool:
    if "And" in rule:
        return all(_choice(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(_choice(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not _choice(rule["Not"], data, context)
    try:
        value = get_path(data, rule["Variable"], context)
    except Failed:
        return "IsPresent" in rule and not rule["IsPresent"]
    if "IsPresent" in rule:
        return bool(rule["IsPresent"])
    for op, compare in _COMPARE.items():
        if op in rule:
            return compare(value, rule[op])
        if f"{op}Path" in rule:
            return compare(value, get_path(data, rule[f"{op}Path"], context))
    raise Failed("States.Runtime", f"Choice rule {dict(rule)} is not simulated")


# --- driving generators on the event loop ------------------------------------------------------------------------


class _Process:
    """Runs one generator on the simulation: an effect is answered by an event, then the generator resumes."""

    def __init__(self, sim: Simulation, machine: Machine, done: Callable[[Any, Failed | None], None]) -> None:
        self.sim = sim
        self.machine = machine
        self.done = done
        self.cancelled = False

    def step(self, value: Any = None, failure: Failed | None = None) -> None:
        if self.cancelled:
            return
        try:
            effect = self.machine.throw(failure) if failure is not None else self.machine.send(value)
        except StopIteration as stop:
            self.done(stop.value, None)
            return
        except Failed as failed:
            self.done(None, failed)
            return
        kind = effect[0]
        if kind == "invoke":
            _, function, qualifier = effect
            self.sim.call(function, qualifier, self.step, source="stepfunctions")
        elif kind == "sleep":
            self.sim.schedule(self.sim.clock.t + effect[1], lambda _: self.step(None), None)
        elif kind == "fork":
            _Fork(self, effect[1], effect[2]).start()
        else:
            raise AssertionError(f"unknown effect {kind}")


class _Fork:
    """Map iterations or Parallel branches: at most `width` at once; the first failure fails the whole state."""

    def __init__(self, parent: _Process, makers: list[Callable[[], Machine]], width: int) -> None:
        self.parent = parent
        self.makers = makers
        self.width = width
        self.next = 0
        self.running = 0
        self.results: list[Any] = [None] * len(makers)
        self.children: list[_Process] = []
        self.failed = False

    def start(self) -> None:
        if not self.makers:
            self.parent.step([])
            return
        while self.running < self.width and self.next < len(self.makers):
            self._launch()

    def _launch(self) -> None:
        index = self.next
        self.next += 1
        self.running += 1
        child = _Process(
            self.parent.sim, self.makers[index](), lambda value, failure: self._finished(index, value, failure)
        )
        self.children.append(child)
        child.step(None)

    def _finished(self, index: int, value: Any, failure: Failed | None) -> None:
        self.running -= 1
        if self.failed:
            return
        if failure is not None:
            self.failed = True
            for child in self.children:
                child.cancelled = True
            self.parent.step(None, failure)
            return
        self.results[index] = value
        if self.next < len(self.makers):
            self._launch()
        elif self.running == 0:
            self.parent.step(self.results)


@dataclass
class StateMachineLoad:
    """`--state-machine LOGICAL_ID --input FILE [--executions N] [--rate R]`."""

    machine: StateMachine
    payload: Any
    executions: int = 1
    rate: float | None = None
    records: list[ExecutionRecord] = field(default_factory=list)

    def length(self) -> float:
        return (self.executions - 1) / self.rate if self.rate else 0.0

    def start(self, sim: Simulation, stack: SimStack) -> None:
        check_definition(self.machine.definition, f"state machine {self.machine.logical_id}")
        interpreter = Interpreter(sim, stack)
        for n in range(self.executions):
            at = sim.load_start + (n / self.rate if self.rate else 0.0)
            sim.schedule(at, lambda i: self._start_one(sim, interpreter, i), n)

    def _start_one(self, sim: Simulation, interpreter: Interpreter, n: int) -> None:
        record = ExecutionRecord(self.machine.name, f"sim-{n + 1}", sim.clock.t)
        self.records.append(record)
        sim.active_work += 1
        context: dict[str, Any] = {"Execution": {"Name": record.name, "Input": self.payload}}
        machine = interpreter.run_states(self.machine.definition, self.payload, record, context)

        def done(value: Any, failure: Failed | None) -> None:
            sim.active_work -= 1
            record.end = sim.clock.t
            record.status = "FAILED" if failure is not None else "SUCCEEDED"
            record.error = failure.error if failure is not None else None

        _Process(sim, machine, done).step(None)
