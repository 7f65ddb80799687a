"""The AWS look-ups around the traces: a stack's functions, an execution's trace, CloudWatch counts, sampling rules."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdalab.errors import UserError
from lambdalab.traces.analysis import parse_function_arn
from lambdalab.traces.reader import RetryPolicy, Window

LOG = logging.getLogger(__name__)

MAX_PAGES = 100  # ListStackResources / GetMetricData / GetSamplingRules pages followed at most
_TRACE_ROOT = re.compile(r"Root=(1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24})")


def stack_functions(session: Any, stack: str, retry: RetryPolicy | None = None) -> list[str]:
    """Function names of a CloudFormation stack: its AWS::Lambda::Function resources and any Lambda ARN output."""
    retry = retry or RetryPolicy()
    cfn = session.client("cloudformation")
    names: dict[str, None] = {}
    kwargs: dict[str, Any] = {"StackName": stack}
    try:
        for _ in range(MAX_PAGES):
            page = retry.call("ListStackResources", cfn.list_stack_resources, **kwargs)
            for resource in page.get("StackResourceSummaries", []):
                if resource.get("ResourceType") == "AWS::Lambda::Function" and resource.get("PhysicalResourceId"):
                    names.setdefault(resource["PhysicalResourceId"], None)
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        stacks = retry.call("DescribeStacks", cfn.describe_stacks, StackName=stack).get("Stacks", [])
    except ClientError as exc:
        raise UserError(f"cannot read stack {stack!r}: {exc.response.get('Error', {}).get('Message', exc)}") from None
    for output in stacks[0].get("Outputs", []) if stacks else []:
        parsed = parse_function_arn(output.get("OutputValue"))
        if parsed:
            names.setdefault(parsed[0], None)
    if not names:
        raise UserError(f"stack {stack!r} has no Lambda functions")
    return list(names)


@dataclass
class ExecutionLookup:
    execution_arn: str
    trace_id: str | None
    window: Window | None
    functions: list[str] = field(default_factory=list)


def describe_execution(session: Any, arn: str, retry: RetryPolicy | None = None) -> ExecutionLookup:
    """Its trace id from DescribeExecution's traceHeader; its window, and from the history the functions it called."""
    retry = retry or RetryPolicy()
    states = session.client("stepfunctions")
    try:
        described = retry.call("DescribeExecution", states.describe_execution, executionArn=arn)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", exc)
        raise UserError(f"cannot describe execution {arn}: {message}") from None
    match = _TRACE_ROOT.search(described.get("traceHeader") or "")
    start: datetime | None = described.get("startDate")
    stop: datetime | None = described.get("stopDate")
    window = Window(start, stop) if start and stop and stop > start else None
    functions: dict[str, None] = {}
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    try:
        for _ in range(MAX_PAGES):
            page = retry.call("GetExecutionHistory", states.get_execution_history, **kwargs)
            for event in page.get("events", []):
                details = event.get("lambdaFunctionScheduledEventDetails") or {}
                parsed = parse_function_arn(details.get("resource"))
                if parsed:
                    functions.setdefault(parsed[0], None)
                task = event.get("taskScheduledEventDetails") or {}
                if task.get("resourceType") == "lambda":
                    params = task.get("parameters") or ""
                    for found in re.findall(r"arn:aws[\w-]*:lambda:[^\"\s]+", params):
                        parsed = parse_function_arn(found)
                        if parsed:
                            functions.setdefault(parsed[0], None)
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    except ClientError as exc:
        LOG.info("no history for %s: %s", arn, exc)
    return ExecutionLookup(arn, match.group(1) if match else None, window, list(functions))


@dataclass
class Metrics:
    """CloudWatch sums over the window; None values mean the metric could not be read (and `notes` says why)."""

    invocations: dict[str, int] = field(default_factory=dict)
    spillover: dict[tuple[str, str], int] | None = None
    notes: list[str] = field(default_factory=list)


def read_metrics(session: Any, functions: Sequence[str], aliases: Sequence[tuple[str, str]], window: Window) -> Metrics:
    """Best effort: `Invocations` per function and `ProvisionedConcurrencySpilloverInvocations` per alias/version."""
    metrics = Metrics()
    if not functions:
        return metrics
    seconds = (window.end - window.start).total_seconds()
    period = max(60, math.ceil(seconds / 60.0) * 60)
    queries = []
    for n, name in enumerate(functions):
        queries.append(_query(f"i{n}", "Invocations", [("FunctionName", name)], period))
    qualified = [(f, q) for f, q in aliases if q != "$LATEST"]
    for n, (name, qualifier) in enumerate(qualified):
        dims = [("FunctionName", name), ("Resource", f"{name}:{qualifier}")]
        queries.append(_query(f"s{n}", "ProvisionedConcurrencySpilloverInvocations", dims, period))
    sums: dict[str, float] = {}
    try:
        client = session.client("cloudwatch")
        for offset in range(0, len(queries), 500):
            kwargs: dict[str, Any] = {
                "MetricDataQueries": queries[offset : offset + 500],
                "StartTime": window.start,
                "EndTime": window.end,
            }
            for _ in range(MAX_PAGES):
                page = client.get_metric_data(**kwargs)
                for result in page.get("MetricDataResults", []):
                    sums[result["Id"]] = sums.get(result["Id"], 0.0) + sum(result.get("Values", []))
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
    except (ClientError, BotoCoreError) as exc:
        metrics.notes.append(f"CloudWatch metrics unavailable ({exc}); spillover and sampling coverage not checked")
        return metrics
    metrics.invocations = {name: int(sums.get(f"i{n}", 0)) for n, name in enumerate(functions)}
    metrics.spillover = {key: int(sums.get(f"s{n}", 0)) for n, key in enumerate(qualified)}
    return metrics


def _query(query_id: str, metric: str, dims: list[tuple[str, str]], period: int) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/Lambda",
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
            },
            "Period": period,
            "Stat": "Sum",
        },
        "ReturnData": True,
    }


def sampling_rules(session: Any) -> list[dict[str, Any]] | None:
    """The account's X-Ray sampling rules, or None when they cannot be read (moto has no GetSamplingRules)."""
    try:
        client = session.client("xray")
        rules: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        for _ in range(MAX_PAGES):
            page = client.get_sampling_rules(**kwargs)
            rules.extend(record.get("SamplingRule", {}) for record in page.get("SamplingRuleRecords", []))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    except (ClientError, BotoCoreError) as exc:
        LOG.info("GetSamplingRules unavailable: %s", exc)
        return None
    return rules


SAMPLING_FIX = (
    "deploy the stack's own X-Ray sampling rule (AWS::XRay::SamplingRule, FixedRate 1.0 for the lab's "
    "functions) so every call is traced"
)


def sampling_warnings(
    traced: dict[str, int], metrics: Metrics, rules: list[dict[str, Any]] | None
) -> tuple[list[str], list[str]]:
    """(warnings, notes): traced fewer calls than CloudWatch counted, or only the default 1/s + 5% rule exists."""
    warnings: list[str] = []
    notes: list[str] = []
    for name, counted in sorted(metrics.invocations.items()):
        seen = traced.get(name, 0)
        if counted > seen:
            warnings.append(
                f"{name}: X-Ray traced {seen} of the {counted} invocations CloudWatch counted — sampling missed "
                f"{counted - seen}; {SAMPLING_FIX}"
            )
    if rules is None:
        notes.append("sampling rules could not be read (GetSamplingRules unavailable)")
    elif all(rule.get("RuleName") == "Default" for rule in rules):
        warnings.append(
            "only the Default sampling rule exists (1 request per second plus 5%): cold starts can go untraced; "
            + SAMPLING_FIX
        )
    return warnings, notes
