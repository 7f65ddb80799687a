"""`lambdalab tune`: sweep settings of the template over one load, on every core; outcomes, Pareto front, advice."""

from __future__ import annotations

import argparse
import copy
import html
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lambdalab.autoscaling.policy import PC_DIMENSION, PREDEFINED_PC_METRIC, function_of_resource
from lambdalab.errors import UserError
from lambdalab.simulate import cli as simulate_cli
from lambdalab.simulate.stack import SimStack

LOG = logging.getLogger(__name__)

KNOBS = {
    "pc.statistic": "Average | Maximum: the statistic of every provisioned-concurrency target-tracking policy "
    "(Average = the predefined LambdaProvisionedConcurrencyUtilization)",
    "pc.target": "target utilisation (0.1-0.9) of every provisioned-concurrency policy",
    "pc.min": "MinCapacity of every provisioned-concurrency scalable target (the alias starts there if lower)",
    "pc.max": "MaxCapacity of every provisioned-concurrency scalable target",
    "table.mode": "PROVISIONED | PAY_PER_REQUEST for every table (on-demand drops the table's scaling policies)",
    "table.min": "MinCapacity of every DynamoDB scalable target (the table starts there if lower)",
    "table.max": "MaxCapacity of every DynamoDB scalable target",
    "table.target": "target utilisation (20-90, percent) of every DynamoDB policy",
    "reserved:FUNCTION": "reserved concurrency of one function (logical id); none removes it",
    "provisioned:FUNCTION:QUALIFIER": "provisioned concurrency of one alias or version",
}


def epilog() -> str:
    lines = ["what can be swept (--sweep NAME=v1,v2,...; several --sweep give every combination):", ""]
    lines.append("  ANY TEMPLATE PARAMETER   e.g. ProductsReservedConcurrency=50,100 TableMinCapacity=5,50,200")
    for name, text in KNOBS.items():
        lines.append(f"  {name:<24} {text}")
    lines += [
        "",
        "example: lambdalab tune --artillery loadtests/flash-sale.yaml --rate-factor 10 --model products.yaml \\",
        "           --sweep TableBillingMode=PROVISIONED,PAY_PER_REQUEST --sweep TableMinCapacity=5,100,400 \\",
        "           --sweep ProductsReservedConcurrency=50,200",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    simulate_cli.add_template_arguments(parser)
    simulate_cli.add_model_arguments(parser)
    simulate_cli.add_load_arguments(parser)
    simulate_cli.add_run_arguments(parser)
    parser.add_argument(
        "--sweep", action="append", default=[], metavar="NAME=V1,V2,...", help="a setting and its values"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: the machine's cores)")
    parser.add_argument("--json", action="store_true", help="print the sweep as JSON")
    parser.add_argument("--save-json", type=Path, default=None, help="write the sweep as JSON to this file")
    parser.add_argument("--html", type=Path, default=None, help="write the sweep as an HTML page")


def parse_sweeps(items: Sequence[str], stack: SimStack) -> list[dict[str, str]]:
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        options = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name or not options:
            raise UserError(f"--sweep {item!r}: use NAME=V1,V2,... (see lambdalab tune --help)")
        known = name in stack.parameters or name in KNOBS or name.startswith(("reserved:", "provisioned:"))
        if not known:
            raise UserError(
                f"--sweep {name}: not a template parameter nor a knob; "
                f"parameters: {', '.join(sorted(stack.parameters))}; "
                f"knobs: {', '.join(KNOBS)}"
            )
        if name.startswith("reserved:"):
            stack.function(name.split(":", 1)[1])
        if name.startswith("provisioned:"):
            parts = name.split(":")
            if len(parts) != 3:
                raise UserError(f"--sweep {name}: use provisioned:FUNCTION:QUALIFIER")
            stack.function(parts[1]).resolve(parts[2])
        axes.append((name, options))
    if not axes:
        raise UserError("no --sweep given (see lambdalab tune --help for what can be swept)")
    names = [n for n, _ in axes]
    settings = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))]
    return settings


def apply_knobs(stack: SimStack, setting: Mapping[str, str]) -> None:
    """Change the read template as a knob says (template parameters were applied when it was read)."""
    for name, value in setting.items():
        try:
            if name == "pc.statistic":
                if value not in ("Average", "Maximum"):
                    raise UserError(f"pc.statistic={value}: Average or Maximum")
                for policy in stack.scaling:
                    if policy.dimension != PC_DIMENSION:
                        continue
                    function, qualifier = function_of_resource(policy.resource_id)
                    target = policy.config["TargetValue"]
                    if value == "Average":
                        policy.config = {
                            "TargetValue": target,
                            "PredefinedMetricSpecification": {"PredefinedMetricType": PREDEFINED_PC_METRIC},
                        }
                    else:
                        policy.config = {
                            "TargetValue": target,
                            "CustomizedMetricSpecification": {
                                "Namespace": "AWS/Lambda",
                                "MetricName": "ProvisionedConcurrencyUtilization",
                                "Statistic": "Maximum",
                                "Dimensions": [
                                    {"Name": "FunctionName", "Value": function},
                                    {"Name": "Resource", "Value": f"{function}:{qualifier}"},
                                ],
                            },
                        }
            elif name in ("pc.target", "table.target"):
                dimension_pc = name == "pc.target"
                for policy in stack.scaling:
                    if (policy.dimension == PC_DIMENSION) == dimension_pc:
                        policy.config = {**policy.config, "TargetValue": float(value)}
            elif name in ("pc.min", "pc.max", "table.min", "table.max"):
                is_pc = name.startswith("pc.")
                for policy in stack.scaling:
                    if (policy.dimension == PC_DIMENSION) != is_pc:
                        continue
                    if name.endswith(".min"):
                        policy.minimum = int(value)
                        policy.maximum = max(policy.maximum, policy.minimum)
                    else:
                        policy.maximum = int(value)
                        policy.minimum = min(policy.minimum, policy.maximum)
                    _clamp(stack, policy)
            elif name == "table.mode":
                if value not in ("PROVISIONED", "PAY_PER_REQUEST"):
                    raise UserError(f"table.mode={value}: PROVISIONED or PAY_PER_REQUEST")
                for table in stack.tables.values():
                    table.billing_mode = value
                if value == "PAY_PER_REQUEST":
                    stack.scaling = [p for p in stack.scaling if p.namespace != "dynamodb"]
            elif name.startswith("reserved:"):
                target = stack.function(name.split(":", 1)[1])
                target.reserved = None if value.lower() in ("none", "-1") else int(value)
            elif name.startswith("provisioned:"):
                _, logical, qualifier = name.split(":")
                stack.function(logical).provisioned[qualifier] = int(value)
        except ValueError:
            raise UserError(f"--sweep {name}={value}: not a number") from None


def _clamp(stack: SimStack, policy: Any) -> None:
    if policy.dimension == PC_DIMENSION:
        name, qualifier = function_of_resource(policy.resource_id)
        function = stack.function(name)
        current = function.provisioned.get(qualifier, policy.minimum)
        function.provisioned[qualifier] = max(policy.minimum, min(current, policy.maximum))
        return
    table_name = policy.resource_id.split("/")[1]
    table = stack.table(table_name)
    if policy.dimension.endswith("ReadCapacityUnits"):
        table.read = max(policy.minimum, min(table.read, policy.maximum))
    else:
        table.write = max(policy.minimum, min(table.write, policy.maximum))


@dataclass
class Row:
    setting: dict[str, str]
    outcomes: dict[str, Any]
    seconds: float
    pareto: bool = False
    refused: str | None = None  # AWS would refuse this setting (e.g. provisioned above reserved): why
    same_as: str = ""  # simulated once with this other setting: nothing the simulation reads differs

    @property
    def throttled(self) -> int:
        return int(self.outcomes["throttles"]) + int(self.outcomes["dynamodb_throttles"])


def _plan(args: argparse.Namespace, setting: Mapping[str, str]) -> simulate_cli.Plan:
    knobs = {k: v for k, v in setting.items() if k in KNOBS or k.startswith(("reserved:", "provisioned:"))}
    parameters = {k: v for k, v in setting.items() if k not in knobs}
    plan = simulate_cli.plan_from_args(args, overrides=parameters)
    apply_knobs(plan.stack, knobs)
    plan.keep_invocations = 0
    return plan


def _fingerprint(job: tuple[argparse.Namespace, dict[str, str]]) -> tuple[str | None, str | None]:
    """Phase 1, in the pool: read the template for this setting; (fingerprint, None) or (None, why refused)."""
    args, setting = job
    try:
        return _plan(args, setting).stack.fingerprint(), None
    except UserError as exc:
        return None, exc.message


def _one(job: tuple[argparse.Namespace, dict[str, str]]) -> Row:
    """Phase 2, in the pool: simulate one setting."""
    args, setting = job
    started = time.perf_counter()
    try:
        result = simulate_cli.simulate(_plan(args, setting), args.prices)
    except UserError as exc:  # an impossible combination, refused as AWS would: the sweep goes on
        return Row(setting, {}, time.perf_counter() - started, refused=exc.message)
    return Row(setting, result.outcomes.to_json(), time.perf_counter() - started)


def _sweep(jobs: list[tuple[argparse.Namespace, dict[str, str]]], workers: int) -> list[Row]:
    """Read every setting's template (phase 1), simulate each distinct configuration once (phase 2): settings that
    change nothing the simulation reads (a table's minimum capacity on an on-demand table) share one run."""
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs))) if workers > 1 and len(jobs) > 1 else None
    try:
        mapper = pool.map if pool is not None else map
        prints = list(mapper(_fingerprint, jobs))
        unique: dict[str, int] = {}
        for index, (fingerprint, _) in enumerate(prints):
            if fingerprint is not None:
                unique.setdefault(fingerprint, index)
        simulated = dict(zip(unique.values(), mapper(_one, [jobs[i] for i in unique.values()]), strict=True))
    finally:
        if pool is not None:
            pool.shutdown()
    rows = []
    for index, (fingerprint, refused) in enumerate(prints):
        setting = jobs[index][1]
        if fingerprint is None:
            rows.append(Row(setting, {}, 0.0, refused=refused))
            continue
        first = simulated[unique[fingerprint]]
        same = "" if unique[fingerprint] == index else _label(jobs[unique[fingerprint]][1])
        rows.append(
            Row(setting, dict(first.outcomes), first.seconds if not same else 0.0, refused=first.refused, same_as=same)
        )
    return rows


_CRITERIA = ("cold_starts", "throttled", "spillover", "p99_s", "cost")


def _value(row: Row, key: str) -> float:
    if key == "throttled":
        return float(row.throttled)
    value = row.outcomes.get(key)
    return float("inf") if value is None else float(value)


def mark_pareto(rows: list[Row]) -> None:
    """A row is on the Pareto front when no other row is at least as good on every criterion and better on one."""
    rows = [r for r in rows if r.refused is None]
    for row in rows:
        mine = [_value(row, k) for k in _CRITERIA]
        row.pareto = not any(
            all(o <= m for o, m in zip(theirs, mine, strict=True))
            and any(o < m for o, m in zip(theirs, mine, strict=True))
            for other in rows
            if other is not row
            for theirs in [[_value(other, k) for k in _CRITERIA]]
        )


def recommend(rows: list[Row]) -> str:
    rows = [r for r in rows if r.refused is None]
    if not rows:
        return "Every setting was refused (see the table); nothing to recommend."
    clean = [r for r in rows if r.throttled == 0]
    if clean:
        best = min(clean, key=lambda r: (r.outcomes["cost"], _value(r, "p99_s")))
        p99 = best.outcomes["p99_s"]
        return (
            f"The cheapest setting with no throttling is {_label(best.setting)}: ${best.outcomes['cost']:,.4f} for the "
            f"run (${best.outcomes['cost_per_month']:,.2f} a month if repeated), p99 "
            f"{'-' if p99 is None else f'{p99 * 1000:,.0f} ms'}, {best.outcomes['cold_starts']:,} cold starts."
        )
    best = min(rows, key=lambda r: (r.throttled, r.outcomes["cost"]))
    return (
        f"No setting avoids throttling; the fewest throttles ({best.throttled:,}) come with {_label(best.setting)} "
        f"at ${best.outcomes['cost']:,.4f}."
    )


def _label(setting: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items())


def run(args: argparse.Namespace, *, stdout: Any = None) -> int:
    out = stdout or sys.stdout
    started = time.perf_counter()
    probe = simulate_cli.plan_from_args(args)  # checks the template, models and load once, with clear errors
    settings = parse_sweeps(args.sweep, probe.stack)
    for setting in settings:  # knob values are checked before any process starts
        apply_knobs(copy.deepcopy(probe.stack), {k: v for k, v in setting.items() if k not in probe.stack.parameters})
    workers = args.workers or os.cpu_count() or 1
    jobs = [(args, setting) for setting in settings]
    rows = _sweep(jobs, workers)
    mark_pareto(rows)
    advice = recommend(rows)
    elapsed = time.perf_counter() - started
    body = {
        "schema": "lambdalab.tune/1",
        "template": str(args.template),
        "load": _load_label(args),
        "criteria": list(_CRITERIA),
        "settings": [
            {
                "setting": r.setting,
                "outcomes": r.outcomes or None,
                "pareto": r.pareto,
                "refused": r.refused,
                "same_as": r.same_as or None,
                "seconds": round(r.seconds, 3),
            }
            for r in rows
        ],
        "recommendation": advice,
        "wall_time_s": round(elapsed, 2),
        "workers": workers,
    }
    text = json.dumps(body, default=str)
    if args.save_json is not None:
        simulate_cli.write_text(args.save_json, text)
    if args.html is not None:
        simulate_cli.write_text(args.html, render_page(body))
    if args.json:
        out.write(text + "\n")
        return 0
    console = Console(file=out, width=170)
    table = Table(
        title=f"lambdalab tune: {len(rows)} settings of {_load_label(args)} ({elapsed:.1f} s, {workers} workers)"
    )
    for column in ("", "setting", "cold", "throttles", "DDB throttles", "spillover", "p99", "cost (run)", "cost/month"):
        table.add_column(column, justify="left" if column in ("", "setting") else "right")
    ranked = sorted((r for r in rows if r.refused is None), key=lambda r: (r.throttled, r.outcomes["cost"]))
    for r in ranked:
        o = r.outcomes
        table.add_row(
            "★" if r.pareto else "",
            _label(r.setting),
            f"{o['cold_starts']:,}",
            f"{o['throttles']:,}",
            f"{o['dynamodb_throttles']:,}",
            f"{o['spillover']:,}",
            "-" if o["p99_s"] is None else f"{o['p99_s'] * 1000:,.0f} ms",
            f"${o['cost']:,.4f}",
            f"${o['cost_per_month']:,.2f}",
        )
    console.print(table)
    console.print(
        "★ = on the Pareto front (no other setting is as good on cold starts, throttles, spillover, p99 and cost)"
    )
    console.print(advice)
    return 0


def _load_label(args: argparse.Namespace) -> str:
    if args.artillery:
        return f"{args.artillery}" + (f" x{args.rate_factor:g}" if args.rate_factor != 1 else "")
    if args.state_machine:
        return f"state machine {args.state_machine}"
    if args.invoke:
        return f"invoke {args.invoke}"
    return f"SQS {args.send}"


def render_page(body: Mapping[str, Any]) -> str:
    rows = []
    for entry in sorted(body["settings"], key=lambda e: (e["outcomes"] is None, (e["outcomes"] or {}).get("cost", 0))):
        o = entry["outcomes"]
        if o is None:
            rows.append(f"<tr><td>✗</td><td>{html.escape(_label(entry['setting']))}</td>"
                        f"<td colspan=\"7\">refused: {html.escape(str(entry['refused']))}</td></tr>")  # fmt: skip
            continue
        cells = [
            "★" if entry["pareto"] else "",
            _label(entry["setting"]),
            f"{o['cold_starts']:,}",
            f"{o['throttles']:,}",
            f"{o['dynamodb_throttles']:,}",
            f"{o['spillover']:,}",
            "-" if o["p99_s"] is None else f"{o['p99_s'] * 1000:,.0f} ms",
            f"${o['cost']:,.4f}",
            f"${o['cost_per_month']:,.2f}",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>lambdalab tune</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d232a}} table{{border-collapse:collapse}}
th,td{{padding:4px 10px;border-bottom:1px solid #e3e7ea;text-align:right}}
td:nth-child(2),th:nth-child(2){{text-align:left}}
th{{background:#f5f7f8}} .advice{{background:#eef7f1;border-left:4px solid #2f9e6e;padding:8px 12px}}</style></head>
<body><h1>lambdalab tune</h1>
<div>{html.escape(str(body["template"]))}, {html.escape(str(body["load"]))}: {len(body["settings"])}
settings in {body["wall_time_s"]} s</div><p class="advice">{html.escape(body["recommendation"])}</p>
<table><tr><th>Pareto</th><th>setting</th><th>cold starts</th><th>throttles</th><th>DynamoDB throttles</th>
<th>spillover</th>
<th>p99</th><th>cost (run)</th><th>cost / month</th></tr>{"".join(rows)}</table>
<p>★: no other setting is at least as good on cold starts, throttles, spillover, p99 and cost, and better on one.</p>
</body></html>
"""
