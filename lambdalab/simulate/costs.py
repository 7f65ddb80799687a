"""The cost of a simulated run from a price table (lambdalab/simulate/prices/us-east-1.json, or the user's own).

Lambda: requests; on-demand GB-seconds of duration plus INIT of on-demand cold starts (billed since 1 August 2025,
"AWS Lambda standardizes billing for INIT Phase"), each invocation rounded up to 1 ms; provisioned concurrency by
configured GB-seconds (the configured count over time, each configuration's span rounded up to 5 minutes) and its
lower duration price for invocations it served. DynamoDB: provisioned capacity by unit-hours (the capacity over
time, target tracking's changes included), on-demand by request units consumed. API Gateway REST requests, SQS
requests, Step Functions Standard state transitions. No free tier, no Savings Plans.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalab.errors import UserError

LOG = logging.getLogger(__name__)

DEFAULT_PRICES = Path(__file__).parent / "prices" / "us-east-1.json"
MONTH_HOURS = 730.0
_REQUIRED = {
    "lambda": (
        "requests_per_million",
        "duration_gb_second",
        "provisioned_concurrency_gb_second",
        "provisioned_duration_gb_second",
    ),
    "dynamodb": (
        "write_capacity_unit_hour",
        "read_capacity_unit_hour",
        "write_request_units_per_million",
        "read_request_units_per_million",
    ),
}


@dataclass(frozen=True)
class PriceTable:
    body: dict[str, Any]
    path: Path

    @property
    def label(self) -> str:
        return f"{self.body.get('region', '?')} prices of {self.body.get('date', '?')} ({self.path.name})"

    def get(self, section: str, key: str, default: float = 0.0) -> Any:
        return (self.body.get(section) or {}).get(key, default)

    def by_arch(self, section: str, key: str, arch: str) -> float:
        value = self.get(section, key)
        if isinstance(value, Mapping):
            return float(value.get(arch, value.get("x86_64", 0.0)))
        return float(value)


def load_prices(path: Path | None = None) -> PriceTable:
    path = path or DEFAULT_PRICES
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the price table: {exc.strerror}", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"the price table is not JSON: {exc.msg} (line {exc.lineno})", where=str(path)) from None
    if not isinstance(body, dict):
        raise UserError("the price table must be a JSON object", where=str(path))
    for section, keys in _REQUIRED.items():
        missing = [k for k in keys if k not in (body.get(section) or {})]
        if missing:
            raise UserError(f"the price table lacks {section}.{', '.join(missing)}", where=str(path))
    return PriceTable(body, path)


@dataclass
class CostLine:
    service: str
    item: str
    quantity: float
    unit: str
    cost: float


@dataclass
class CostEstimate:
    lines: list[CostLine] = field(default_factory=list)
    window_s: float = 0.0
    prices: str = ""

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)

    def per_month(self) -> float:
        """The run's cost if its load repeated for a 730-hour month."""
        return self.total * MONTH_HOURS * 3600.0 / self.window_s if self.window_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "prices": self.prices,
            "window_s": self.window_s,
            "total": self.total,
            "per_month_if_repeated": self.per_month(),
            "lines": [line.__dict__ for line in self.lines],
        }


def integrate(changes: list[tuple[float, float]], start: float, end: float, *, increment_s: float = 0.0) -> float:
    """Value-seconds of a step function given as (time, new value) changes, from `start` to `end`; with
    `increment_s`, each constant span is rounded up to that many seconds (provisioned concurrency: 5 minutes)."""
    total = 0.0
    ordered = sorted(changes)
    for i, (t, value) in enumerate(ordered):
        span_start = max(t, start)
        span_end = min(ordered[i + 1][0] if i + 1 < len(ordered) else end, end)
        if span_end <= span_start or value <= 0:
            continue
        span = span_end - span_start
        if increment_s:
            span = math.ceil(span / increment_s - 1e-9) * increment_s
        total += value * span
    return total


def estimate(
    prices: PriceTable,
    *,
    window: tuple[float, float],
    functions: list[dict[str, Any]],
    provisioned: list[dict[str, Any]],
    tables: list[dict[str, Any]],
    api_requests: int,
    sqs_requests: int,
    transitions: int,
) -> CostEstimate:
    """functions: {name, arch, memory_mb, requests, billed_ms_on_demand, billed_ms_provisioned}; provisioned:
    {name, qualifier, arch, memory_mb, changes: [(t, count)]}; tables: {name, mode, read_changes, write_changes,
    read_units, write_units}."""
    start, end = window
    out = CostEstimate(window_s=max(0.0, end - start), prices=prices.label)
    per_million = prices.get("lambda", "requests_per_million")
    for f in functions:
        gb = f["memory_mb"] / 1024.0
        if f["requests"]:
            out.lines.append(
                CostLine(
                    "Lambda", f"{f['name']} requests", f["requests"], "requests", f["requests"] / 1e6 * per_million
                )
            )
        if f["billed_ms_on_demand"]:
            gbs = f["billed_ms_on_demand"] / 1000.0 * gb
            price = prices.by_arch("lambda", "duration_gb_second", f["arch"])
            out.lines.append(CostLine("Lambda", f"{f['name']} on-demand duration + INIT", gbs, "GB-s", gbs * price))
        if f["billed_ms_provisioned"]:
            gbs = f["billed_ms_provisioned"] / 1000.0 * gb
            price = prices.by_arch("lambda", "provisioned_duration_gb_second", f["arch"])
            out.lines.append(CostLine("Lambda", f"{f['name']} duration on provisioned", gbs, "GB-s", gbs * price))
    increment = float(prices.get("lambda", "provisioned_billing_increment_s", 300))
    for p in provisioned:
        gbs = integrate(p["changes"], start, end, increment_s=increment) * p["memory_mb"] / 1024.0
        price = prices.by_arch("lambda", "provisioned_concurrency_gb_second", p["arch"])
        if gbs:
            out.lines.append(
                CostLine("Lambda", f"{p['name']}:{p['qualifier']} provisioned concurrency", gbs, "GB-s", gbs * price)
            )
    for t in tables:
        if t["mode"] == "PROVISIONED":
            for kind, key in (("read", "read_capacity_unit_hour"), ("write", "write_capacity_unit_hour")):
                hours = integrate(t[f"{kind}_changes"], start, end) / 3600.0
                out.lines.append(
                    CostLine(
                        "DynamoDB",
                        f"{t['name']} {kind} capacity",
                        hours,
                        "unit-hours",
                        hours * prices.get("dynamodb", key),
                    )
                )
        else:
            for kind, key in (("read", "read_request_units_per_million"), ("write", "write_request_units_per_million")):
                units = t[f"{kind}_units"]
                if units:
                    out.lines.append(
                        CostLine(
                            "DynamoDB",
                            f"{t['name']} {kind} request units",
                            units,
                            "units",
                            units / 1e6 * prices.get("dynamodb", key),
                        )
                    )
    if api_requests:
        price = prices.get("apigateway", "rest_requests_per_million")
        out.lines.append(
            CostLine("API Gateway", "REST API requests", api_requests, "requests", api_requests / 1e6 * price)
        )
    if sqs_requests:
        price = prices.get("sqs", "standard_requests_per_million")
        out.lines.append(CostLine("SQS", "requests", sqs_requests, "requests", sqs_requests / 1e6 * price))
    if transitions:
        price = prices.get("stepfunctions", "standard_state_transitions_per_thousand")
        out.lines.append(
            CostLine("Step Functions", "state transitions", transitions, "transitions", transitions / 1e3 * price)
        )
    return out
