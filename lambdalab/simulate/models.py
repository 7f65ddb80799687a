"""Function models: how long INIT and each invocation take (fixed or a distribution), errors, DynamoDB use.

Declared in a model file (YAML or JSON), on the command line (`--model-set FUNCTION.init=5s`), or measured: a
`lambdalab traces --json` report (schema lambdalab.traces/1, of a local run or of AWS X-Ray) gives each function an
empirical INIT and duration distribution from its invocations, or a lognormal one from its p50 and p99.

Spec grammar (seconds unless a unit is given: `ms`, `s`, `m`): `3`, `120ms`, `fixed(3s)`,
`lognormal(p50=120ms, p99=900ms)`, `uniform(100ms, 200ms)`, `empirical(0.1, 0.12, 0.5)`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import yaml

from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)

# z of the 99th percentile of the standard normal distribution
_Z99 = 2.3263478740408408
# botocore's legacy retry mode for DynamoDB (botocore/data/_retry.json, "dynamodb"): 10 attempts, exponential delay
# of 50 ms growing by 2 — what the Python runtime's boto3 does unless AWS_RETRY_MODE says otherwise.
DYNAMODB_RETRIES = 9
DYNAMODB_BACKOFF_S = 0.05

Sampler = Callable[[], float]


class Distribution:
    """A non-negative duration distribution in seconds."""

    name = "distribution"

    def sampler(self, rng: random.Random) -> Sampler:
        raise NotImplementedError

    def median(self) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Fixed(Distribution):
    value: float

    def sampler(self, rng: random.Random) -> Sampler:
        value = self.value
        return lambda: value

    def median(self) -> float:
        return self.value

    def describe(self) -> str:
        return _fmt(self.value)


@dataclass(frozen=True)
class LogNormal(Distribution):
    """Lognormal with the given median and 99th percentile (p99 ≥ p50 > 0)."""

    p50: float
    p99: float

    def sampler(self, rng: random.Random) -> Sampler:
        # Inverse-CDF sampling from a table of the distribution's quantiles, linearly interpolated: one C-level
        # random() per draw instead of random.gauss (pure Python, a tenth of a warm call's cost). The table has
        # 8,192 intervals; the tails beyond the 1/16,384 and 16,383/16,384 quantiles are clipped to them.
        table = _lognormal_table(self.p50, self.p99)
        draw, size = rng.random, _TABLE_SIZE

        def sample() -> float:
            u = draw() * size
            i = int(u)
            low = table[i]
            return low + (table[i + 1] - low) * (u - i)

        return sample

    def median(self) -> float:
        return self.p50

    def describe(self) -> str:
        return f"lognormal(p50={_fmt(self.p50)}, p99={_fmt(self.p99)})"


@dataclass(frozen=True)
class Uniform(Distribution):
    low: float
    high: float

    def sampler(self, rng: random.Random) -> Sampler:
        low, span, draw = self.low, self.high - self.low, rng.random
        return lambda: low + span * draw()

    def median(self) -> float:
        return (self.low + self.high) / 2

    def describe(self) -> str:
        return f"uniform({_fmt(self.low)}, {_fmt(self.high)})"


@dataclass(frozen=True)
class Empirical(Distribution):
    """Resampled from measured values (each equally likely)."""

    samples: tuple[float, ...]
    source: str = ""

    def sampler(self, rng: random.Random) -> Sampler:
        values, n, draw = self.samples, len(self.samples), rng.random
        return lambda: values[int(draw() * n)]

    def median(self) -> float:
        ordered = sorted(self.samples)
        return ordered[len(ordered) // 2]

    def describe(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"empirical({len(self.samples)} samples{where}, median {_fmt(self.median())})"


_TABLE_SIZE = 8192


def _lognormal_table(p50: float, p99: float) -> list[float]:
    mu = math.log(p50)
    sigma = (math.log(p99) - mu) / _Z99
    normal = NormalDist()
    edge = 0.5 / _TABLE_SIZE
    points = [min(max(i / _TABLE_SIZE, edge), 1.0 - edge) for i in range(_TABLE_SIZE + 1)]
    return [math.exp(mu + sigma * normal.inv_cdf(p)) for p in points]


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*(ms|s|m)?\s*$")
_CALL = re.compile(r"^\s*([a-z]+)\s*\((.*)\)\s*$", re.S)


def parse_seconds(text: Any, *, what: str) -> float:
    if isinstance(text, bool):
        raise UserError(f"{what}: {text!r} is not a duration")
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _NUMBER.match(str(text))
        if not match:
            raise UserError(f"{what}: {text!r} is not a duration (e.g. 3, 120ms, 2.5s)")
        value = float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{what}: {text!r} must be a finite duration of at least 0")
    return value


def parse_distribution(spec: Any, *, what: str) -> Distribution:
    """A spec string, a number of seconds, or a mapping {distribution: lognormal, p50, p99} / {samples: [...]}."""
    if isinstance(spec, Mapping):
        return _from_mapping(spec, what)
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return Fixed(parse_seconds(spec, what=what))
    text = str(spec)
    call = _CALL.match(text)
    if call is None:
        return Fixed(parse_seconds(text, what=what))
    name, inner = call.group(1), call.group(2)
    args = [a.strip() for a in inner.split(",") if a.strip()]
    named = dict(a.split("=", 1) for a in args if "=" in a)
    plain = [a for a in args if "=" not in a]
    return _build(name, named, plain, what, text)


def _from_mapping(spec: Mapping[str, Any], what: str) -> Distribution:
    if "samples" in spec:
        return _build("empirical", {}, list(spec["samples"] or []), what, str(dict(spec)))
    kind = str(spec.get("distribution", "fixed"))
    named = {k: v for k, v in spec.items() if k != "distribution"}
    plain = [named.pop("value")] if "value" in named else []
    return _build(kind, named, plain, what, str(dict(spec)))


def _build(name: str, named: Mapping[str, Any], plain: Sequence[Any], what: str, text: str) -> Distribution:
    try:
        if name == "fixed":
            (value,) = plain or [named["value"]]
            return Fixed(parse_seconds(value, what=what))
        if name == "lognormal":
            p50 = parse_seconds(named["p50"], what=f"{what} p50")
            p99 = parse_seconds(named["p99"], what=f"{what} p99")
            if p50 <= 0 or p99 < p50:
                raise UserError(f"{what}: lognormal needs 0 < p50 <= p99, got {text}")
            return LogNormal(p50, p99) if p99 > p50 else Fixed(p50)
        if name == "uniform":
            low, high = (parse_seconds(v, what=what) for v in (plain or [named["low"], named["high"]]))
            if high < low:
                raise UserError(f"{what}: uniform needs low <= high, got {text}")
            return Uniform(low, high)
        if name == "empirical":
            samples = tuple(parse_seconds(v, what=what) for v in plain)
            if not samples:
                raise UserError(f"{what}: empirical needs at least one sample")
            return Empirical(samples)
    except (KeyError, ValueError, TypeError):
        raise UserError(f"{what}: cannot read {text!r} (e.g. lognormal(p50=120ms, p99=900ms))") from None
    raise UserError(f"{what}: unknown distribution {name!r} (fixed, lognormal, uniform, empirical)")


@dataclass(frozen=True)
class DynamoCall:
    """One DynamoDB request a function makes per invocation, in capacity units (what the meter charges)."""

    table: str  # the table's logical id or name
    read: float = 0.0
    write: float = 0.0
    index: str | None = None
    retries: int = DYNAMODB_RETRIES
    backoff_s: float = DYNAMODB_BACKOFF_S


@dataclass(frozen=True)
class FunctionModel:
    init: Distribution = field(default_factory=lambda: Fixed(0.2))
    duration: Distribution = field(default_factory=lambda: Fixed(0.1))
    errors: float = 0.0  # share of invocations that end in a function error
    init_errors: float = 0.0  # share of INITs that fail
    status: int = 200  # the HTTP status an API call gets on success
    throttled_status: int = 503  # ... when a DynamoDB call stays throttled after the SDK's retries
    dynamodb: tuple[DynamoCall, ...] = ()
    source: str = "default"

    def describe(self) -> str:
        text = f"INIT {self.init.describe()}, duration {self.duration.describe()}"
        if self.errors:
            text += f", errors {self.errors:.1%}"
        if self.dynamodb:
            text += ", DynamoDB " + "; ".join(
                f"{c.table} {c.read:g} RCU/{c.write:g} WCU per call" for c in self.dynamodb
            )
        return f"{text} ({self.source})"


DEFAULT_MODEL = FunctionModel()

_FIELDS = {"init", "duration", "errors", "init_errors", "status", "throttled_status", "dynamodb"}


@dataclass
class ModelSet:
    """Models by function key (a logical id or physical name; "*" for every function without its own)."""

    models: dict[str, FunctionModel] = field(default_factory=dict)
    measured: list[dict[str, Any]] = field(default_factory=list)  # functions[] of traces reports
    notes: list[str] = field(default_factory=list)

    def for_function(self, logical_id: str, name: str) -> FunctionModel:
        for key in (logical_id, name):
            if key in self.models:
                return self.models[key]
        measured = self._measured(logical_id, name)
        if measured is not None:
            return measured
        return self.models.get("*", DEFAULT_MODEL)

    def _measured(self, logical_id: str, name: str) -> FunctionModel | None:
        for entry in self.measured:
            measured_name = str(entry.get("function", ""))
            if measured_name in (name, logical_id) or f"-{logical_id}-" in f"{measured_name}-":
                model = entry["model"]
                assert isinstance(model, FunctionModel)
                base = self.models.get("*")
                if base is not None and base.dynamodb and not model.dynamodb:
                    model = replace(model, dynamodb=base.dynamodb)
                return model
        return None


def _model_from_mapping(body: Mapping[str, Any], *, where: str, base: FunctionModel) -> FunctionModel:
    if not isinstance(body, Mapping):
        raise UserError("a function model must be a mapping (init, duration, errors, dynamodb ...)", where=where)
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise UserError(
            f"unknown model field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}", where=where
        )
    changes: dict[str, Any] = {"source": where}
    if "init" in body:
        changes["init"] = parse_distribution(body["init"], what=f"{where}.init")
    if "duration" in body:
        changes["duration"] = parse_distribution(body["duration"], what=f"{where}.duration")
    for key in ("errors", "init_errors"):
        if key in body:
            changes[key] = _share(body[key], f"{where}.{key}")
    for key in ("status", "throttled_status"):
        if key in body:
            changes[key] = _int(body[key], f"{where}.{key}", 100, 599)
    if "dynamodb" in body:
        calls = body["dynamodb"] or []
        if not isinstance(calls, list):
            raise UserError("dynamodb must be a list of {table, read, write}", where=f"{where}.dynamodb")
        changes["dynamodb"] = tuple(_dynamo_call(c, f"{where}.dynamodb[{i}]") for i, c in enumerate(calls))
    return replace(base, **changes)


def _dynamo_call(body: Any, where: str) -> DynamoCall:
    if not isinstance(body, Mapping) or "table" not in body:
        raise UserError("a DynamoDB call needs table (and read and/or write units)", where=where)
    unknown = sorted(set(body) - {"table", "read", "write", "index", "retries", "backoff"})
    if unknown:
        raise UserError(
            f"unknown field(s) {', '.join(unknown)} (table, read, write, index, retries, backoff)", where=where
        )
    try:
        read, write = float(body.get("read", 0)), float(body.get("write", 0))
    except (TypeError, ValueError):
        raise UserError("read and write are capacity units (numbers)", where=where) from None
    if read < 0 or write < 0 or (read == 0 and write == 0):
        raise UserError("a DynamoDB call needs read or write units above 0", where=where)
    return DynamoCall(
        table=str(body["table"]),
        read=read,
        write=write,
        index=str(body["index"]) if body.get("index") else None,
        retries=_int(body.get("retries", DYNAMODB_RETRIES), f"{where}.retries", 0, 100),
        backoff_s=parse_seconds(body.get("backoff", DYNAMODB_BACKOFF_S), what=f"{where}.backoff"),
    )


def _share(value: Any, where: str) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {value!r} is not a number between 0 and 1") from None
    if not 0.0 <= share <= 1.0:
        raise UserError(f"{where}: {value!r} is not between 0 and 1")
    return share


def _int(value: Any, where: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {value!r} is not an integer") from None
    if not low <= number <= high:
        raise UserError(f"{where}: {number} is not between {low} and {high}")
    return number


def load_model_file(path: Path, models: ModelSet | None = None) -> ModelSet:
    """A model file (YAML/JSON: `functions:` by logical id or name, optional `traces:` file) or a traces report."""
    models = models or ModelSet()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read model file: {exc.strerror}", where=str(path)) from None
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"model file is neither JSON nor YAML: {getattr(exc, 'problem', exc)}", where=f"{path}{line}"
        ) from None
    if not isinstance(body, Mapping):
        raise UserError(
            "a model file must be a mapping with `functions:` (or a lambdalab traces --json report)", where=str(path)
        )
    if body.get("schema") == "lambdalab.traces/1":
        return _add_measured(models, body, str(path))
    unknown = sorted(set(body) - {"functions", "traces"})
    if unknown:
        raise UserError(f"unknown top-level key(s) {', '.join(unknown)} (functions, traces)", where=str(path))
    if body.get("traces"):
        traces_path = (path.parent / str(body["traces"])).resolve()
        load_model_file(traces_path, models)
    functions = body.get("functions") or {}
    if not isinstance(functions, Mapping):
        raise UserError("functions must map a function (logical id or name, or *) to its model", where=str(path))
    default = models.models.get("*", DEFAULT_MODEL)
    if "*" in functions:
        default = _model_from_mapping(functions["*"], where=f"{path}: functions.*", base=default)
        models.models["*"] = default
    for key, entry in functions.items():
        if key == "*":
            continue
        models.models[str(key)] = _model_from_mapping(entry, where=f"{path}: functions.{key}", base=default)
    return models


def _quantile_model(stats: Mapping[str, Any] | None) -> Distribution | None:
    if not isinstance(stats, Mapping) or not stats.get("count"):
        return None
    p50, p99 = stats.get("p50"), stats.get("p99")
    if not isinstance(p50, int | float) or p50 <= 0:
        return None
    if not isinstance(p99, int | float) or p99 <= p50:
        return Fixed(float(p50))
    return LogNormal(float(p50), float(p99))


def _add_measured(models: ModelSet, report: Mapping[str, Any], where: str) -> ModelSet:
    """Each function of a traces report: empirical distributions from its invocations when it lists at least 5,
    else lognormal from the p50 and p99 it reports."""
    invocations = report.get("invocations") or []
    by_function: dict[str, dict[str, list[float]]] = {}
    for item in invocations if isinstance(invocations, list) else []:
        if not isinstance(item, Mapping) or item.get("throttled"):
            continue
        samples = by_function.setdefault(str(item.get("function")), {"init": [], "duration": []})
        if item.get("start_kind") == "cold" and isinstance(item.get("init_duration_s"), int | float):
            samples["init"].append(float(item["init_duration_s"]))
        if isinstance(item.get("duration_s"), int | float):
            samples["duration"].append(float(item["duration_s"]))
    seen: dict[str, dict[str, Any]] = {}
    for entry in report.get("functions") or []:
        if not isinstance(entry, Mapping):
            continue
        name = str(entry.get("function"))
        if name in seen:
            continue  # several qualifiers of one function: one model (the code is the same)
        samples = by_function.get(name, {"init": [], "duration": []})
        init = (
            Empirical(tuple(samples["init"]), where)
            if len(samples["init"]) >= 5
            else _quantile_model(entry.get("init_s"))
        )
        duration = (
            Empirical(tuple(samples["duration"]), where)
            if len(samples["duration"]) >= 5
            else _quantile_model(entry.get("duration_s"))
        )
        model = replace(
            DEFAULT_MODEL,
            init=init or DEFAULT_MODEL.init,
            duration=duration or DEFAULT_MODEL.duration,
            source=f"measured: {where}",
        )
        if init is None:
            models.notes.append(f"{name}: the measured run has no cold start; INIT stays {model.init.describe()}")
        seen[name] = {"function": name, "model": model}
    if not seen:
        raise UserError("the traces report has no functions to model", where=where)
    models.measured.extend(seen.values())
    return models


def apply_setting(models: ModelSet, setting: str) -> None:
    """`FUNCTION.FIELD=VALUE` from the command line (FUNCTION a logical id, a name or *)."""
    key, sep, value = setting.partition("=")
    function, dot, name = key.rpartition(".")
    if not sep or not dot or not function:
        raise UserError(f"--model-set {setting!r}: use FUNCTION.FIELD=VALUE, e.g. ConcurrencyTestFunction.init=5s")
    if name not in _FIELDS - {"dynamodb"}:
        raise UserError(
            f"--model-set {setting!r}: unknown field {name!r}; known: {', '.join(sorted(_FIELDS - {'dynamodb'}))}"
        )
    base = models.models.get(function) or models.models.get("*", DEFAULT_MODEL)
    where = f"--model-set {function}"
    parsed: Any = value
    if name in ("errors", "init_errors", "status", "throttled_status"):
        parsed = json.loads(value) if re.fullmatch(r"-?\d+(\.\d+)?", value) else value
    models.models[function] = _model_from_mapping({name: parsed}, where=where, base=base)
