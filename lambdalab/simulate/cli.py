"""`lambdalab simulate`: a template, a load and function models in; the cold-start report, time series and costs out."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lambdalab import constants
from lambdalab.deploy.template import parse_parameter_overrides
from lambdalab.errors import UserError
from lambdalab.simulate.asl import StateMachineLoad
from lambdalab.simulate.costs import load_prices
from lambdalab.simulate.engine import Simulation, default_limits
from lambdalab.simulate.loads import ArtilleryLoad, InvokeLoad, SqsLoad, load_artillery
from lambdalab.simulate.models import DEFAULT_MODEL, ModelSet, apply_setting, load_model_file
from lambdalab.simulate.results import SimulationResult, build_result, render_page, render_terminal
from lambdalab.simulate.stack import SimStack, load_stack

LOG = logging.getLogger(__name__)
# samtranslator warns about its own unpublished usage metrics on every transform; a sweep reads the template 20 times
logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)

MAX_BINS = 1500


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="SAM template (default template.yaml)"
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters (over samconfig.toml)",
    )
    parser.add_argument("--samconfig", type=Path, default=None, help="samconfig.toml (default: next to the template)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="function models: a YAML/JSON model file, or a `lambdalab traces --json` report (measured); repeatable",
    )
    parser.add_argument(
        "--model-set",
        action="append",
        default=[],
        metavar="FUNCTION.FIELD=VALUE",
        help="one model field, e.g. ConcurrencyTestFunction.init=5s or '*.duration=lognormal(p50=80ms,p99=400ms)'",
    )


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    load = parser.add_argument_group("loads (at least one)")
    load.add_argument("--artillery", type=Path, metavar="FILE", help="an Artillery script (loadtests/*.yaml)")
    load.add_argument("--rate-factor", type=_positive, default=1.0, help="multiply the script's arrival rates")
    load.add_argument("--api", metavar="LOGICAL_ID", help="the REST API the script targets (default: any that matches)")
    load.add_argument("--state-machine", metavar="LOGICAL_ID", help="start an execution of this state machine")
    load.add_argument("--input", type=Path, metavar="FILE", help="the execution's input (JSON)")
    load.add_argument("--executions", type=_count, default=1, help="executions to start (default 1)")
    load.add_argument(
        "--execution-rate", type=_positive, default=None, help="executions per second (default: all at once)"
    )
    load.add_argument("--invoke", metavar="FUNCTION", help="invoke a function (logical id or name) directly")
    load.add_argument("--qualifier", default=None, help="the alias or version to invoke (default $LATEST)")
    load.add_argument(
        "--rate", type=_positive, default=None, help="invocations per second (with --duration or --count)"
    )
    load.add_argument("--duration", type=_positive, default=None, help="seconds of invocations at --rate")
    load.add_argument("--count", type=_count, default=None, help="invocations (all at once without --rate)")
    load.add_argument("--async", dest="asynchronous", action="store_true", help="InvocationType=Event")
    load.add_argument("--send", metavar="QUEUE", help="send messages to an SQS queue (logical id or name)")
    load.add_argument("--messages", type=_count, default=None, help="messages to send")
    load.add_argument("--message-rate", type=_positive, default=None, help="messages per second (default: all at once)")
    load.add_argument(
        "--message-batch",
        type=int,
        default=10,
        choices=range(1, 11),
        metavar="1-10",
        help="messages per SendMessageBatch",
    )
    load.add_argument(
        "--arrivals", choices=["uniform", "poisson"], default="uniform", help="arrival process (default uniform)"
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="random seed (the same seed gives the same run)")
    parser.add_argument("--account-concurrency", type=int, default=constants.ACCOUNT_CONCURRENCY)
    parser.add_argument(
        "--keep-alive", type=_positive, default=None, help="seconds an idle environment lives (default 600)"
    )
    parser.add_argument(
        "--bin", type=_positive, default=None, help="seconds per time-series bin (default: 1, or the run / 1500)"
    )
    parser.add_argument("--keep-invocations", type=int, default=10_000, help="invocation records kept for the timeline")
    parser.add_argument(
        "--prices", type=Path, default=None, help="price table JSON (default: the lab's us-east-1 table)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_template_arguments(parser)
    add_model_arguments(parser)
    add_load_arguments(parser)
    add_run_arguments(parser)
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON (lambdalab.traces/1 + simulation)"
    )
    parser.add_argument("--html", type=Path, default=None, help="write the report with time series as one HTML file")
    parser.add_argument("--save-json", type=Path, default=None, help="also write the JSON report to this file")


@dataclass
class Plan:
    """Everything one simulation needs, reusable by `tune` for each setting."""

    stack: SimStack
    models: ModelSet
    loads: list[Any]
    seed: int = 1
    account_concurrency: int = constants.ACCOUNT_CONCURRENCY
    keep_alive_s: float | None = None
    bin_s: float | None = None
    keep_invocations: int = 10_000
    description: dict[str, Any] = field(default_factory=dict)


def read_models(args: argparse.Namespace) -> ModelSet:
    models = ModelSet()
    for path in args.model:
        load_model_file(path, models)
    for setting in args.model_set:
        apply_setting(models, setting)
    return models


def build_loads(args: argparse.Namespace, stack: SimStack) -> list[Any]:
    loads: list[Any] = []
    poisson = args.arrivals == "poisson"
    if args.artillery is not None:
        script = load_artillery(args.artillery, rate_factor=args.rate_factor)
        loads.append(ArtilleryLoad(script, stack, api=args.api, poisson=poisson))
    if args.state_machine is not None:
        if args.state_machine not in stack.state_machines:
            known = ", ".join(sorted(stack.state_machines)) or "none"
            raise UserError(f"--state-machine {args.state_machine}: no such state machine (state machines: {known})")
        payload: Any = {}
        if args.input is not None:
            try:
                payload = json.loads(args.input.read_text(encoding="utf-8"))
            except OSError as exc:
                raise UserError(f"cannot read --input: {exc.strerror}", where=str(args.input)) from None
            except json.JSONDecodeError as exc:
                raise UserError(f"--input is not JSON: {exc.msg} (line {exc.lineno})", where=str(args.input)) from None
        loads.append(
            StateMachineLoad(stack.state_machines[args.state_machine], payload, args.executions, args.execution_rate)
        )
    if args.invoke is not None:
        function = stack.function(args.invoke)
        function.resolve(args.qualifier)
        if args.rate is not None and args.duration is None and args.count is None:
            raise UserError("--invoke with --rate needs --duration SECONDS or --count N")
        if args.rate is None and args.count is None:
            raise UserError("--invoke needs --rate RPS --duration SECONDS, or --count N (all at once)")
        if args.duration is not None and args.rate is None:
            raise UserError("--duration needs --rate")
        loads.append(
            InvokeLoad(function, args.qualifier, args.rate, args.duration, args.count, args.asynchronous, poisson)
        )
    if args.send is not None:
        stack.queue(args.send)
        if args.messages is None:
            raise UserError("--send needs --messages N")
        loads.append(SqsLoad(args.send, args.messages, args.message_rate, args.message_batch))
    if not loads:
        raise UserError(
            "no load: give --artillery FILE, --state-machine ID --input FILE, --invoke FUNCTION ..., "
            "or --send QUEUE --messages N"
        )
    return loads


def plan_from_args(args: argparse.Namespace, *, overrides: dict[str, str] | None = None) -> Plan:
    if args.account_concurrency < constants.UNRESERVED_MINIMUM:
        raise UserError(f"--account-concurrency must be at least {constants.UNRESERVED_MINIMUM}")
    if args.keep_invocations < 0:
        raise UserError("--keep-invocations cannot be negative")
    parameters = parse_parameter_overrides(args.parameter_overrides)
    parameters.update(overrides or {})
    stack = load_stack(args.template, parameter_overrides=parameters, samconfig_path=args.samconfig)
    models = read_models(args)
    loads = build_loads(args, stack)
    description = {
        "template": str(args.template),
        "parameters": {k: v for k, v in stack.parameters.items()},
        "seed": args.seed,
        "account_concurrency": args.account_concurrency,
        "template_warnings": stack.warnings,
        "model_notes": models.notes,
    }
    return Plan(
        stack,
        models,
        loads,
        seed=args.seed,
        account_concurrency=args.account_concurrency,
        keep_alive_s=args.keep_alive,
        bin_s=args.bin,
        keep_invocations=args.keep_invocations,
        description=description,
    )


def simulate(plan: Plan, prices_path: Path | None = None) -> SimulationResult:
    """Run one plan to the end of its longest load (plus what is still in flight) and build the result."""
    prices = load_prices(prices_path)
    length = max((load.length() for load in plan.loads), default=0.0)
    bin_s = plan.bin_s or max(1.0, math.ceil(length / MAX_BINS))
    sim = Simulation(
        plan.stack,
        plan.models,
        seed=plan.seed,
        limits=default_limits(plan.account_concurrency, plan.keep_alive_s),
        bin_s=bin_s,
        keep_invocations=plan.keep_invocations,
    )
    sim.prepare()
    for load in plan.loads:
        if isinstance(load, StateMachineLoad):
            load.start(sim, plan.stack)
        else:
            load.start(sim)
    started = time.perf_counter()
    sim.run(sim.load_start + length)
    elapsed = time.perf_counter() - started
    used = sorted({spec.logical_id for (name, _) in sim.stats for spec in [sim.spec_of(name)]})
    description = dict(plan.description)
    description["models"] = {logical: sim.model_of(plan.stack.function(logical).name).describe() for logical in used}
    description["wall_time_s"] = round(elapsed, 3)
    result = build_result(sim, loads=plan.loads, prices=prices, description=description)
    defaulted = [logical for logical in used if sim.model_of(plan.stack.function(logical).name) is DEFAULT_MODEL]
    if defaulted:
        result.report.warnings.append(
            f"no model for {', '.join(defaulted)}: INIT {DEFAULT_MODEL.init.describe()}, duration "
            f"{DEFAULT_MODEL.duration.describe()} assumed (give --model FILE or --model-set)"
        )
    return result


def run(args: argparse.Namespace, *, stdout: Any = None) -> int:
    out = stdout or sys.stdout
    plan = plan_from_args(args)
    result = simulate(plan, args.prices)
    body = result.to_json()
    text = json.dumps(body, default=str)
    if args.save_json is not None:
        write_text(args.save_json, text)
    if args.html is not None:
        write_text(args.html, render_page(result))
    if args.json:
        out.write(text + "\n")
    else:
        console = Console(file=out, width=160)
        render_terminal(result, console)
        if args.html is not None:
            console.print(f"report: {args.html}")
    return 0


def write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
