"""`lambdalab demo`: the classic experiment on the local cloud — the base and the provisioned state machines side by
side, cold starts versus provisioned concurrency, in under two minutes."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lambdalab import constants
from lambdalab.clock import Clock
from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)

DEFAULT_INPUT = Path("events/sample-test-input.json")
DEFAULT_TEMPLATE = Path("template.yaml")
BASE = "base"
PROVISIONED = "provisioned"
# Stack outputs the demo needs: (function name, state machine ARN, alias ARN) per machine.
OUTPUT_KEYS = {
    BASE: ("ConcurrencyTestFunctionName", "BaseStateMachineArn", "ConcurrencyTestFunctionAliasArn"),
    PROVISIONED: (
        "ProvisionedConcurrencyTestFunctionName",
        "ProvisionedStateMachineArn",
        "ProvisionedConcurrencyTestFunctionAliasArn",
    ),
}


@dataclass(frozen=True)
class DemoConfig:
    template: Path = DEFAULT_TEMPLATE
    input_path: Path = DEFAULT_INPUT
    items: int | None = None  # None: every entry of the input file
    cold_start_sleep: float | None = None  # None: the template's default (5 s)
    execution_sleep: float | None = None  # None: each entry's own "sleep" (3 s in the sample)
    provisioned_concurrency: int | None = None  # None: one per item, so no provisioned call ever spills over
    run_root: Path = Path(constants.DEFAULT_RUN_ROOT)
    ready_timeout_s: float = 90.0
    execution_timeout_s: float = 90.0


@dataclass(frozen=True)
class MachineSummary:
    """One machine's calls, from the run records (ground truth, not the state machine's output)."""

    machine: str
    function: str
    execution_status: str
    execution_s: float | None
    calls: int
    cold_starts: int
    provisioned_starts: int
    warm_starts: int
    throttles: int
    environments: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    cold_p50_s: float | None
    warm_p50_s: float | None  # warm and provisioned calls: those that ran no INIT in the request's path

    @property
    def cold_start_gap_s(self) -> float | None:
        if self.cold_p50_s is None or self.warm_p50_s is None:
            return None
        return self.cold_p50_s - self.warm_p50_s


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def call_seconds(record: Mapping[str, Any]) -> float | None:
    """What the caller waited: request received → response sent, so a cold call includes its INIT."""
    end = record.get("responded_at") or record.get("invoke_end")
    start = record.get("received_at")
    if end is None or start is None:
        return None
    return float(end) - float(start)


def summarise(
    machine: str,
    function: str,
    records: Sequence[Mapping[str, Any]],
    execution_status: str = "SUCCEEDED",
    execution_s: float | None = None,
) -> MachineSummary:
    """The figures of one machine from the invocation records of its function."""
    mine = [r for r in records if r.get("function_name") == function]
    ran = [r for r in mine if r.get("start_kind") is not None]
    kinds = [r["start_kind"] for r in ran]
    durations = [d for d in (call_seconds(r) for r in ran) if d is not None]
    cold = [d for r in ran if r["start_kind"] == "cold" and (d := call_seconds(r)) is not None]
    not_cold = [d for r in ran if r["start_kind"] != "cold" and (d := call_seconds(r)) is not None]
    return MachineSummary(
        machine=machine,
        function=function,
        execution_status=execution_status,
        execution_s=execution_s,
        calls=len(ran),
        cold_starts=kinds.count("cold"),
        provisioned_starts=kinds.count("provisioned"),
        warm_starts=kinds.count("warm"),
        throttles=len(mine) - len(ran),
        environments=len({r.get("environment_id") for r in ran}),
        p50_s=percentile(durations, 50),
        p95_s=percentile(durations, 95),
        max_s=max(durations) if durations else None,
        cold_p50_s=percentile(cold, 50),
        warm_p50_s=percentile(not_cold, 50),
    )


def conclusion(base: MachineSummary, provisioned: MachineSummary) -> str:
    """One line a person understands at a glance."""
    if base.execution_status != "SUCCEEDED" or provisioned.execution_status != "SUCCEEDED":
        return (
            f"An execution did not succeed (base {base.execution_status}, provisioned "
            f"{provisioned.execution_status}): see the run directory."
        )
    if base.cold_starts and not provisioned.cold_starts and base.p95_s and provisioned.p95_s:
        gap = base.cold_start_gap_s
        cost = f"; each cold start cost {gap:.1f} s" if gap is not None else ""
        return (
            f"Provisioned concurrency removed all {base.cold_starts} cold starts: p95 {provisioned.p95_s:.1f} s "
            f"instead of {base.p95_s:.1f} s{cost}."
        )
    return (
        f"Cold starts: base {base.cold_starts}, provisioned {provisioned.cold_starts} "
        f"(provisioned environments used: {provisioned.provisioned_starts})."
    )


def load_entries(config: DemoConfig) -> list[dict[str, Any]]:
    """The Map's input entries: the input file's, cut or repeated to `items`, with `execution_sleep` if given."""
    try:
        document = json.loads(config.input_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"input file {config.input_path} not found (pass --input PATH)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"input file {config.input_path} is not valid JSON: {exc}") from None
    entries = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"input file {config.input_path} needs a non-empty array 'entries' of objects")
    count = config.items if config.items is not None else len(entries)
    chosen = [dict(entries[i % len(entries)]) for i in range(count)]
    for number, entry in enumerate(chosen, start=1):
        entry["item"] = number
        if config.execution_sleep is not None:
            entry["sleep"] = config.execution_sleep
    return chosen


def parameter_overrides(config: DemoConfig, items: int) -> dict[str, str]:
    overrides = {"ProvisionedConcurrency": str(config.provisioned_concurrency or items)}
    if config.cold_start_sleep is not None:
        overrides["ColdStartSleep"] = f"{config.cold_start_sleep:g}"
    if config.execution_sleep is not None:
        overrides["ExecutionSleep"] = f"{config.execution_sleep:g}"
    return overrides


# --- running it -----------------------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    run_dir: Path
    report_path: Path | None
    summary_path: Path
    base: MachineSummary
    provisioned: MachineSummary
    conclusion: str
    timings: dict[str, float]
    interpreters: list[str] = field(default_factory=list)  # "python3.13 → Python 3.13.1 (/path)", one per runtime


async def run_demo(config: DemoConfig, out: Any = None) -> DemoResult:
    """Start the local cloud on this loop, run both machines, summarise, write the report, stop everything."""
    from rich.console import Console

    from lambdalab.server import CloudConfig, LocalCloud, collector_paused_while_starting

    console = out or Console(stderr=True)
    _cancel_on_signals()
    entries = load_entries(config)
    if not config.template.is_file():
        raise UserError(f"template {config.template} not found (run from the project root, or pass --template)")
    overrides = parameter_overrides(config, len(entries))
    cloud = LocalCloud(
        CloudConfig(port=0, template=config.template, parameter_overrides=overrides, run_root=config.run_root)
    )
    # The demo runs the local cloud in this process: its timings, waits and the records' cut-off use the cloud's own
    # two clocks, made by LocalCloud (the composition root); the demo reads no clock of its own.
    clock, epoch = cloud.clocks.monotonic, cloud.clocks.epoch
    began = clock.now()
    timings: dict[str, float] = {}
    console.print(f"[bold]lambdalab demo[/]: starting the local cloud with {config.template} ({_describe(overrides)})")
    deploy_log = logging.getLogger("lambdalab.deploy")
    quiet = deploy_log.getEffectiveLevel() >= logging.WARNING  # unless --log-level INFO/DEBUG asked for everything
    if quiet:
        deploy_log.setLevel(logging.ERROR)  # the deploy's warnings are printed below as dim notes instead
    try:
        with collector_paused_while_starting():
            await cloud.start()
        if quiet:
            for warning in cloud.warnings:
                console.print(f"note: {warning}", style="dim", soft_wrap=True, highlight=False, markup=False)
        timings["deploy_s"] = clock.now() - began
        assert cloud.run_dir is not None
        stack = next(iter(cloud.stacks.values()))
        names = {machine: [stack.outputs[key].value for key in keys] for machine, keys in OUTPUT_KEYS.items()}
        console.print(f"deployed in {timings['deploy_s']:.1f} s; waiting for provisioned concurrency to be READY")
        interpreters = await asyncio.to_thread(_interpreters, cloud.url, [values[0] for values in names.values()])
        mark = clock.now()
        await _wait_provisioned_ready(cloud.url, names[PROVISIONED][2], config.ready_timeout_s, clock)
        timings["provisioned_ready_s"] = clock.now() - mark
        console.print(
            f"provisioned concurrency {overrides['ProvisionedConcurrency']} READY in "
            f"{timings['provisioned_ready_s']:.1f} s; running both state machines with {len(entries)} items"
        )
        mark = clock.now()
        since = epoch.now()  # the records' received_at are stamped with the same epoch clock
        outcomes = await _run_executions(
            cloud.url,
            {machine: values[1] for machine, values in names.items()},
            json.dumps({"entries": entries}),
            config.execution_timeout_s,
            clock=clock,
        )
        timings["executions_s"] = clock.now() - mark
        records = await _wait_records(
            cloud.run_dir, {values[0] for values in names.values()}, since, len(entries), 10.0, clock=clock
        )
        summaries = {
            machine: summarise(machine, names[machine][0], records, *outcomes[machine])
            for machine in (BASE, PROVISIONED)
        }
        line = conclusion(summaries[BASE], summaries[PROVISIONED])
        report_path = _write_report(cloud.run_dir, [values[0] for values in names.values()])
        summary_path = cloud.run_dir / "demo.json"
        result = DemoResult(
            cloud.run_dir,
            report_path,
            summary_path,
            summaries[BASE],
            summaries[PROVISIONED],
            line,
            timings,
            interpreters,
        )
    except asyncio.CancelledError:
        # stopping mid-run tears provisioned environments down under the policy, which logs each one: not news here
        logging.getLogger("lambdalab.awslambda").setLevel(logging.ERROR)
        raise
    finally:
        await cloud.stop()
    result.timings["total_s"] = clock.now() - began
    summary_path.write_text(json.dumps(_result_json(result), indent=2) + "\n", encoding="utf-8")
    return result


def _cancel_on_signals() -> None:
    """Ctrl-C or SIGTERM cancels the demo's task, so its `finally` stops the cloud and every environment (a process
    started in the background by a shell would otherwise ignore SIGINT)."""
    task = asyncio.current_task()
    if task is None:
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, task.cancel)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread, or no signals here
            LOG.debug("cannot handle signal %s here", sig)


def _interpreters(url: str, functions: Sequence[str]) -> list[str]:
    """Which interpreter ran each runtime of the demo's functions: the environment host, in this process, starts
    every environment of a runtime on `find_interpreter(runtime)`, so this is what served them."""
    from lambdalab.awslambda.runtime.interpreters import find_interpreter

    lam = _client("lambda", url)
    runtimes = sorted({lam.get_function_configuration(FunctionName=name)["Runtime"] for name in functions})
    lines = []
    for runtime in runtimes:
        found = find_interpreter(runtime)
        version = ".".join(str(part) for part in found.version)
        fallback = f" (a fallback: {runtime} is not installed here)" if found.fallback else ""
        lines.append(f"{runtime} functions ran on Python {version} ({found.executable}){fallback}")
    return lines


def _describe(overrides: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


def _client(service: str, url: str) -> Any:
    from botocore.config import Config

    from lambdalab.awsclients import local_session

    return local_session().client(
        service, endpoint_url=url, config=Config(retries={"total_max_attempts": 1}, read_timeout=60)
    )


async def _wait_provisioned_ready(url: str, alias_arn: str, timeout_s: float, clock: Clock) -> None:
    """Poll GetProvisionedConcurrencyConfig until READY (bounded). Every wait in the demo is an asyncio sleep
    around one short blocking call, so Ctrl-C cancels it at once and the cloud is still stopped."""
    function, _, qualifier = alias_arn.rpartition(":")
    lam = await asyncio.to_thread(_client, "lambda", url)
    deadline = clock.now() + timeout_s
    status = "?"
    while clock.now() < deadline:
        config = await asyncio.to_thread(
            lam.get_provisioned_concurrency_config, FunctionName=function, Qualifier=qualifier
        )
        status = config["Status"]
        if status == "READY":
            return
        if status == "FAILED":
            raise UserError(f"provisioned concurrency on {alias_arn} FAILED: {config.get('StatusReason', '')}")
        await asyncio.sleep(0.25)
    raise UserError(
        f"provisioned concurrency on {alias_arn} was still {status} after {timeout_s:g} s "
        "(lower it with --provisioned-concurrency, or raise --ready-timeout)"
    )


async def _run_executions(
    url: str, machines: Mapping[str, str], payload: str, timeout_s: float, *, clock: Clock
) -> dict[str, tuple[str, float | None]]:
    """Start every machine at once; wait (bounded) for all; (status, execution seconds) per machine."""
    sfn = await asyncio.to_thread(_client, "stepfunctions", url)
    started = {}
    for machine, arn in machines.items():
        response = await asyncio.to_thread(sfn.start_execution, stateMachineArn=arn, input=payload)
        started[machine] = response["executionArn"]
    deadline = clock.now() + timeout_s
    done: dict[str, tuple[str, float | None]] = {}
    while len(done) < len(started):
        if clock.now() > deadline:
            running = ", ".join(sorted(set(started) - set(done)))
            raise UserError(f"executions still RUNNING after {timeout_s:g} s: {running} (raise --execution-timeout)")
        for machine, arn in started.items():
            if machine in done:
                continue
            described = await asyncio.to_thread(sfn.describe_execution, executionArn=arn)
            if described["status"] != "RUNNING":
                stop = described.get("stopDate")
                seconds = (stop - described["startDate"]).total_seconds() if stop else None
                done[machine] = (described["status"], seconds)
        await asyncio.sleep(0.25)
    return done


async def _wait_records(
    run_dir: Path, functions: set[str], since: float, per_function: int, timeout_s: float, *, clock: Clock
) -> list[dict[str, Any]]:
    """The run's invocation records since `since`, once each function has `per_function` of them (bounded)."""
    deadline = clock.now() + timeout_s
    records: list[dict[str, Any]] = []
    while True:
        records = await asyncio.to_thread(_read_records, run_dir, since)
        counts = {f: sum(1 for r in records if r.get("function_name") == f and r.get("start_kind")) for f in functions}
        if all(n >= per_function for n in counts.values()):
            return records
        if clock.now() > deadline:
            LOG.warning("after %.0f s the run directory has %s invocation records", timeout_s, counts)
            return records
        await asyncio.sleep(0.1)


def _read_records(run_dir: Path, since: float) -> list[dict[str, Any]]:
    path = run_dir / "invocations.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if float(record.get("received_at") or 0) >= since:
                records.append(record)
    return records


def _write_report(run_dir: Path, functions: list[str]) -> Path | None:
    """The HTML report of the run directory: each environment's INIT and invocations over time."""
    from lambdalab.traces.html import write_html
    from lambdalab.traces.reader import read_run_dir
    from lambdalab.traces.report import Source, from_invocations

    run = read_run_dir(run_dir)
    report = from_invocations(
        run.invocations,
        Source("run-dir", str(run_dir)),
        environment_events=run.environment_events,
        functions=functions,
        problems=run.problems,
    )
    path = run_dir / "report.html"
    write_html(report, path)
    return path


def _result_json(result: DemoResult) -> dict[str, Any]:
    return {
        "run_dir": str(result.run_dir),
        "report": str(result.report_path) if result.report_path else None,
        "machines": {
            s.machine: {**asdict(s), "cold_start_gap_s": s.cold_start_gap_s} for s in (result.base, result.provisioned)
        },
        "conclusion": result.conclusion,
        "interpreters": result.interpreters,
        "timings": result.timings,
    }


# --- output ---------------------------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def render(result: DemoResult, console: Any) -> None:
    from rich.table import Table

    table = Table(
        title="Cold starts vs provisioned concurrency",
        caption="duration = one call, request received → response sent (a cold call includes its INIT)",
    )
    table.add_column("")
    table.add_column("base (on demand)", justify="right")
    table.add_column("provisioned", justify="right")
    base, prov = result.base, result.provisioned
    rows = [
        ("execution", f"{base.execution_status} {_seconds(base.execution_s)}", f"{prov.execution_status} "
         f"{_seconds(prov.execution_s)}"),
        ("calls", str(base.calls), str(prov.calls)),
        ("cold starts (INIT in the call)", str(base.cold_starts), str(prov.cold_starts)),
        ("provisioned / warm starts", f"{base.provisioned_starts} / {base.warm_starts}",
         f"{prov.provisioned_starts} / {prov.warm_starts}"),
        ("throttled calls", str(base.throttles), str(prov.throttles)),
        ("environments used", str(base.environments), str(prov.environments)),
        ("p50 duration", _seconds(base.p50_s), _seconds(prov.p50_s)),
        ("p95 duration", _seconds(base.p95_s), _seconds(prov.p95_s)),
        ("max duration", _seconds(base.max_s), _seconds(prov.max_s)),
        ("cold p50 / warm p50", f"{_seconds(base.cold_p50_s)} / {_seconds(base.warm_p50_s)}",
         f"{_seconds(prov.cold_p50_s)} / {_seconds(prov.warm_p50_s)}"),
        ("cold-start gap", _seconds(base.cold_start_gap_s), _seconds(prov.cold_start_gap_s)),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"[bold]{result.conclusion}[/]")
    for line in result.interpreters:
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    # soft_wrap: a path is printed whole on one line, whatever the terminal's width, so it can be copied (or parsed)
    console.print(f"run directory: {result.run_dir}", soft_wrap=True, highlight=False)
    if result.report_path is not None:
        console.print(f"report: {result.report_path}", soft_wrap=True, highlight=False)
    console.print(f"summary: {result.summary_path}", soft_wrap=True, highlight=False)
    console.print(f"finished in {result.timings.get('total_s', 0):.1f} s; the local cloud is stopped")


# --- command line ---------------------------------------------------------------------------------------------------


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (default template.yaml)")
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT, help=f"Map input (default {DEFAULT_INPUT})")
    parser.add_argument("--items", type=_positive_int, default=None, help="entries to run (default: all in --input)")
    parser.add_argument("--cold-start-sleep", type=_non_negative, default=None, help="INIT sleep, s (template: 5)")
    parser.add_argument("--execution-sleep", type=_non_negative, default=None, help="handler sleep, s (input: 3)")
    parser.add_argument(
        "--provisioned-concurrency", type=_positive_int, default=None, help="on the provisioned alias (default: items)"
    )
    parser.add_argument("--run-root", type=Path, default=Path(constants.DEFAULT_RUN_ROOT), help="run directories")
    parser.add_argument("--ready-timeout", type=_non_negative, default=90.0, help="wait for provisioned READY, s")
    parser.add_argument("--execution-timeout", type=_non_negative, default=90.0, help="wait for the executions, s")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    config = DemoConfig(
        template=args.template,
        input_path=args.input,
        items=args.items,
        cold_start_sleep=args.cold_start_sleep,
        execution_sleep=args.execution_sleep,
        provisioned_concurrency=args.provisioned_concurrency,
        run_root=args.run_root,
        ready_timeout_s=args.ready_timeout,
        execution_timeout_s=args.execution_timeout,
    )
    console = Console()
    try:
        result = _run(run_demo(config, console))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("interrupted; the local cloud and its environments are stopped")
        return 130
    render(result, console)
    ok = result.base.execution_status == "SUCCEEDED" and result.provisioned.execution_status == "SUCCEEDED"
    return 0 if ok else 1


def _run(main: Coroutine[Any, Any, DemoResult]) -> DemoResult:
    """On uvloop where it installs, like `lambdalab up`."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; platforms without a wheel fall back
        return asyncio.run(main)
    return uvloop.run(main)
