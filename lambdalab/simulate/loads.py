"""Loads for the simulator: direct invokes at a rate, SQS sends, and Artillery scenarios through the API's routes.

Artillery (loadtests/*.yaml): `config.phases` (duration with arrivalRate, optional rampTo, or arrivalCount, or
pause), `scenarios` with `weight`, each a `flow` of steps run in order by one virtual user: `get`/`post`/`put`/
`patch`/`delete` with `url` (and `capture`), `think` (seconds), `loop` (with `count`). Arrivals are evenly spaced
within a phase, as Artillery spaces them (a ramp accelerates linearly); `--arrivals poisson` draws them instead.
A step's URL is matched to the template's REST API routes as API Gateway matches them (lambdalab.apigateway.routes)
and invokes the integration's function and alias. A step with `capture` that gets no 2xx answer ends its virtual
user (Artillery: "Failed capture or match"), as does any error answer under the default settings.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import math
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lambdalab.apigateway.routes import resource_for
from lambdalab.awslambda.core.outcome import Outcome
from lambdalab.errors import UserError
from lambdalab.simulate.engine import SimAttempt, Simulation
from lambdalab.simulate.stack import Function, SimStack

LOG = logging.getLogger(__name__)

INTEGRATION_TIMEOUT_S = 29.0  # API Gateway's integration timeout: 504 past it
_TEMPLATE = re.compile(r"\{\{\s*[^}]*\}\}")


def arrival_times(
    start: float, duration: float, rate: float, ramp_to: float | None, rng: random.Random | None
) -> Iterator[float]:
    """Arrival times of one phase: `rate` per second (ramping linearly to `ramp_to`), evenly spaced, or a Poisson
    process with the same rate when `rng` is given."""
    if duration <= 0:
        return
    r0 = rate
    r1 = rate if ramp_to is None else ramp_to
    if rng is not None:
        t = 0.0
        peak = max(r0, r1)
        if peak <= 0:
            return
        while True:  # thinning: a Poisson process at the peak rate, kept with probability rate(t) / peak
            t += rng.expovariate(peak)
            if t >= duration:
                return
            if rng.random() * peak <= r0 + (r1 - r0) * t / duration:
                yield start + t
    total = (r0 + r1) / 2 * duration
    n = math.floor(total + 1e-9)
    slope = (r1 - r0) / duration
    for i in range(n):
        # N(t) = r0 t + slope t^2 / 2 = i  →  t
        t = i / r0 if abs(slope) < 1e-12 else (-r0 + math.sqrt(max(0.0, r0 * r0 + 2 * slope * i))) / slope
        yield start + t


@dataclass
class InvokeLoad:
    """`--invoke FUNCTION --rate RPS --duration S` (or `--count N`, all at once when no rate)."""

    function: Function
    qualifier: str | None
    rate: float | None
    duration: float | None
    count: int | None
    asynchronous: bool
    poisson: bool
    answers: dict[tuple[Any, Any, int], int] = field(default_factory=dict)  # (outcome, throttle, status) → count

    def length(self) -> float:
        if self.duration is not None:
            return self.duration
        if self.count is not None and self.rate:
            return self.count / self.rate
        return 0.0

    def start(self, sim: Simulation) -> None:
        rng = sim.rng if self.poisson else None
        begin = sim.load_start
        if self.rate is None or self.rate <= 0:
            times: Iterator[float] = iter([begin] * (self.count or 0))
        else:
            duration = self.duration if self.duration is not None else (self.count or 0) / self.rate
            times = arrival_times(begin, duration, self.rate, None, rng)
            if self.count is not None:
                times = (t for i, t in zip(range(self.count), times, strict=False))
        qualifier = self.qualifier or "$LATEST"
        if self.asynchronous:
            fire: Callable[[], Any] = functools.partial(sim.call_async, self.function, qualifier)
        elif self.count is not None and self.count <= 100_000:
            fire = functools.partial(sim.call, self.function, qualifier, self._done)
        else:  # long runs: the answers are read from the simulation's counters, no callback per call
            self._sim = sim
            fire = functools.partial(sim.call, self.function, qualifier, None)
        if not sim.stream(times, fire):
            self._feed(sim, times, fire)

    def _done(self, attempt: SimAttempt) -> None:
        key = (attempt.outcome, attempt.throttle, attempt.status)
        answers = self.answers
        answers[key] = answers.get(key, 0) + 1

    _sim: Simulation | None = None

    @property
    def statuses(self) -> dict[str, int]:
        """What the Invoke API answered: "200 OK", "200 FunctionError (...)", "429 <reason>"."""
        out: dict[str, int] = {}
        if self._sim is not None:
            as_invoked, _ = self.function.resolve(self.qualifier)
            stats = self._sim.stats.get((self.function.name, as_invoked))
            if stats is not None:
                errors = sum(stats.outcomes.values())
                out["200 OK"] = stats.invocations - errors
                for name, n in stats.outcomes.items():
                    out[f"200 FunctionError ({name})"] = n
                for reason, n in stats.throttles.items():
                    out[f"429 {reason}"] = n
            return out
        for (outcome, throttle, status), n in self.answers.items():
            if throttle is not None:
                text = f"429 {throttle.reason.value}"
            elif outcome is Outcome.SUCCESS:
                text = "200 OK" if status == 200 else f"200 (function status {status})"
            else:
                text = f"200 FunctionError ({outcome.value if outcome else '?'})"
            out[text] = out.get(text, 0) + n
        return out

    @staticmethod
    def _feed(sim: Simulation, times: Iterator[float], fire: Callable[[], Any]) -> None:
        """Schedule arrivals one at a time (the next when the current one fires), so memory stays flat."""

        def arrive(it: Iterator[float]) -> None:
            fire()
            nxt = next(it, None)
            if nxt is not None:
                sim.schedule(nxt, arrive, it)

        first = next(times, None)
        if first is not None:
            sim.schedule(first, arrive, times)


@dataclass
class SqsLoad:
    """`--send QUEUE --count N [--rate MSG/S] [--batch B]`: N messages in SendMessageBatch calls of B."""

    queue: str
    count: int
    rate: float | None
    batch: int

    def length(self) -> float:
        return self.count / self.rate if self.rate else 0.0

    def start(self, sim: Simulation) -> None:
        calls = math.ceil(self.count / self.batch)
        sizes = [self.batch] * (calls - 1) + [self.count - self.batch * (calls - 1)]
        interval = self.batch / self.rate if self.rate else 0.0
        for i, size in enumerate(sizes):
            sim.schedule(sim.load_start + i * interval, lambda n: sim.send_messages(self.queue, n), size)


# --- Artillery --------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    duration: float
    rate: float
    ramp_to: float | None
    count: int | None = None
    pause: bool = False


@dataclass
class Step:
    kind: str  # "request" | "think" | "loop"
    method: str = ""
    url: str = ""
    capture: bool = False
    seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)
    count: int = 1


@dataclass
class Scenario:
    name: str
    weight: float
    flow: list[Step]


@dataclass
class ArtilleryScript:
    path: Path
    phases: list[Phase]
    scenarios: list[Scenario]
    timeout_s: float


def _number(value: Any, where: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool):
        raise UserError(f"{value!r} is not a number", where=where)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{value!r} is not a number", where=where) from None
    if not math.isfinite(number) or number < minimum:
        raise UserError(f"{value!r} must be at least {minimum:g}", where=where)
    return number


def _steps(raw: Any, where: str) -> list[Step]:
    if not isinstance(raw, list):
        raise UserError("a flow must be a list of steps", where=where)
    steps = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(item, Mapping) or len(item) < 1:
            raise UserError("a step must be a mapping such as {get: {url: /path}}", where=here)
        if "loop" in item:
            steps.append(
                Step(
                    "loop",
                    steps=_steps(item["loop"], f"{here}.loop"),
                    count=int(_number(item.get("count", 1), f"{here}.count", minimum=1)),
                )
            )
            continue
        (verb, body), *_ = item.items()
        if verb == "think":
            steps.append(Step("think", seconds=_number(body, here)))
        elif verb in ("get", "post", "put", "patch", "delete", "head", "options"):
            if not isinstance(body, Mapping) or not isinstance(body.get("url"), str):
                raise UserError(f"a {verb} step needs a url", where=here)
            steps.append(Step("request", method=verb.upper(), url=body["url"], capture=bool(body.get("capture"))))
        else:
            raise UserError(f"step {verb!r} is not simulated (get/post/put/patch/delete, think, loop)", where=here)
    return steps


def load_artillery(path: Path, *, rate_factor: float = 1.0) -> ArtilleryScript:
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the Artillery script: {exc.strerror}", where=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"not YAML: {getattr(exc, 'problem', exc)}", where=f"{path}{line}") from None
    if not isinstance(body, Mapping) or not isinstance(body.get("config"), Mapping):
        raise UserError("an Artillery script needs config.phases and scenarios", where=str(path))
    config = body["config"]
    phases = []
    for i, raw in enumerate(config.get("phases") or []):
        where = f"{path}: config.phases[{i}]"
        if not isinstance(raw, Mapping):
            raise UserError("a phase must be a mapping", where=where)
        name = str(raw.get("name", f"phase {i + 1}"))
        if "pause" in raw:
            phases.append(Phase(name, _number(raw["pause"], where), 0.0, None, pause=True))
            continue
        if "duration" not in raw:
            raise UserError("a phase needs duration (with arrivalRate or arrivalCount) or pause", where=where)
        duration = _number(raw["duration"], f"{where}.duration")
        if "arrivalCount" in raw:
            count = int(_number(raw["arrivalCount"], f"{where}.arrivalCount") * rate_factor)
            phases.append(Phase(name, duration, count / duration if duration else 0.0, None, count=count))
            continue
        if "arrivalRate" not in raw:
            raise UserError("a phase needs arrivalRate or arrivalCount", where=where)
        rate = _number(raw["arrivalRate"], f"{where}.arrivalRate") * rate_factor
        ramp = raw.get("rampTo")
        phases.append(
            Phase(name, duration, rate, None if ramp is None else _number(ramp, f"{where}.rampTo") * rate_factor)
        )
    if not phases:
        raise UserError("config.phases is empty", where=str(path))
    scenarios = []
    for i, raw in enumerate(body.get("scenarios") or []):
        where = f"{path}: scenarios[{i}]"
        if not isinstance(raw, Mapping) or "flow" not in raw:
            raise UserError("a scenario needs a flow", where=where)
        scenarios.append(
            Scenario(
                str(raw.get("name", f"scenario {i + 1}")),
                _number(raw.get("weight", 1), f"{where}.weight"),
                _steps(raw["flow"], f"{where}.flow"),
            )
        )
    if not scenarios or sum(s.weight for s in scenarios) <= 0:
        raise UserError("no scenario with a weight above 0", where=str(path))
    timeout = _number((config.get("http") or {}).get("timeout", 120), f"{path}: config.http.timeout")
    return ArtilleryScript(path, phases, scenarios, timeout)


@dataclass
class RouteStats:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


class ArtilleryLoad:
    """Virtual users arriving by the script's phases, each running one weighted scenario's flow."""

    def __init__(
        self, script: ArtilleryScript, stack: SimStack, *, api: str | None = None, poisson: bool = False
    ) -> None:
        self.script = script
        self.poisson = poisson
        self.apis = [stack.apis[api]] if api else list(stack.apis.values())
        if api and api not in stack.apis:
            raise UserError(
                f"--api {api}: no REST API of that logical id (APIs: {', '.join(sorted(stack.apis)) or 'none'})"
            )
        if not self.apis:
            raise UserError(
                "the template has no REST API (AWS::Serverless::Api, or Events of Type Api) for the Artillery flows"
            )
        self.stack = stack
        self.routes: dict[tuple[str, str], tuple[Function, str] | None] = {}
        self.by_route: dict[str, RouteStats] = {}
        self.users = 0
        self.users_completed = 0
        self.users_failed = 0
        self.phase_log: list[tuple[str, float, float]] = []
        self._check_routes()

    def length(self) -> float:
        return sum(p.duration for p in self.script.phases)

    def _check_routes(self) -> None:
        def walk(steps: list[Step]) -> None:
            for step in steps:
                if step.kind == "loop":
                    walk(step.steps)
                elif step.kind == "request":
                    self.route(step.method, step.url)

        for scenario in self.script.scenarios:
            walk(scenario.flow)

    def route(self, method: str, url: str) -> tuple[Function, str] | None:
        """The function and qualifier a request reaches; None: API Gateway answers 403 (no such route)."""
        path = _TEMPLATE.sub("x", url.split("?", 1)[0])
        key = (method, path)
        if key in self.routes:
            return self.routes[key]
        found: tuple[Function, str] | None = None
        for api in self.apis:
            match = resource_for(api.resources, path)
            if match is None:
                continue
            resource, _ = match
            chosen = resource.methods.get(method) or resource.methods.get("ANY")
            if chosen is None or chosen.integration is None:
                continue
            arn = chosen.integration.function_arn({})
            if arn is None:
                raise UserError(f"{method} {resource.path}: the integration is not a Lambda proxy; not simulated")
            found = self.stack.function_of_arn(arn)
            break
        self.routes[key] = found
        return found

    def start(self, sim: Simulation) -> None:
        rng = sim.rng if self.poisson else None
        t = sim.load_start
        scenarios = self.script.scenarios
        flows = [self._compile(_flatten(scenario.flow)) for scenario in scenarios]
        total = sum(s.weight for s in scenarios)
        cumulative = list(itertools.accumulate(s.weight / total for s in scenarios))
        draw = sim.rng.random

        def times() -> Iterator[float]:
            nonlocal t
            for phase in self.script.phases:
                self.phase_log.append((phase.name, t - sim.load_start, phase.duration))
                if not phase.pause:
                    if phase.count is not None:
                        step = phase.duration / phase.count if phase.count else 0.0
                        yield from (t + i * step for i in range(phase.count))
                    else:
                        yield from arrival_times(t, phase.duration, phase.rate, phase.ramp_to, rng)
                t += phase.duration

        def arrive(it: Iterator[float]) -> None:
            self.users += 1
            sim.active_work += 1
            flow = flows[0] if len(flows) == 1 else flows[min(bisect.bisect(cumulative, draw()), len(flows) - 1)]
            self._run_steps(sim, flow, 0)
            nxt = next(it, None)
            if nxt is not None:
                sim.schedule(nxt, arrive, it)

        it = times()
        first = next(it, None)
        if first is not None:
            sim.schedule(first, arrive, it)

    def _compile(self, steps: list[Step]) -> list[_Compiled]:
        """Each step's route, label and statistics resolved once, not per virtual user."""
        out = []
        for step in steps:
            if step.kind == "think":
                out.append(_Compiled(step.seconds, None, None))
                continue
            route = self.route(step.method, step.url)
            label = f"{step.method} {_TEMPLATE.sub('{…}', step.url.split('?', 1)[0])}"
            out.append(_Compiled(None, route, self.by_route.setdefault(label, RouteStats())))
        return out

    def _run_steps(self, sim: Simulation, steps: list[_Compiled], index: int) -> None:
        if index < len(steps) and steps[index].think is not None:
            sim.schedule(sim.clock.t + (steps[index].think or 0.0), lambda i: self._run_steps(sim, steps, i), index + 1)
            return
        if index >= len(steps):
            self.users_completed += 1
            sim.active_work -= 1
            return
        step = steps[index]
        stats = step.stats
        assert stats is not None
        stats.requests += 1
        sent = sim.clock.t
        route = step.route
        if route is None:
            stats.statuses[403] = stats.statuses.get(403, 0) + 1
            self.users_failed += 1
            sim.active_work -= 1
            return
        function, qualifier = route
        timeout = self.script.timeout_s

        def done(attempt: SimAttempt) -> None:
            status = _api_status(attempt)
            latency = sim.clock.t - sent
            if latency > INTEGRATION_TIMEOUT_S and status < 500:
                status = 504
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if len(stats.latencies) < 2_000_000:
                stats.latencies.append(min(latency, INTEGRATION_TIMEOUT_S))
            if status >= 400 or latency > timeout:
                self.users_failed += 1  # Artillery ends the virtual user on an error (a failed capture included)
                sim.active_work -= 1
                return
            self._run_steps(sim, steps, index + 1)

        sim.call(function, qualifier, done, source="api")


@dataclass
class _Compiled:
    think: float | None
    route: tuple[Function, str] | None
    stats: RouteStats | None


def _flatten(steps: list[Step]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        if step.kind == "loop":
            for _ in range(step.count):
                out.extend(_flatten(step.steps))
        else:
            out.append(step)
    return out


def _api_status(attempt: SimAttempt) -> int:
    """What API Gateway answers for a Lambda proxy integration (as the local cloud's apigateway/proxy.py does): a
    throttled invoke 500, a function error or timeout 502, the function's own status otherwise."""
    outcome = attempt.outcome
    if outcome is Outcome.THROTTLED:
        return 500
    if outcome is Outcome.SUCCESS:
        return attempt.status
    return 502
