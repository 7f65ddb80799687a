"""Embedded metric format: log lines with `_aws` metadata (what Powertools Metrics writes) become CloudWatch metrics,
as CloudWatch does for the events Lambda delivers.

The rules of the specification ("Specification: Embedded metric format", CloudWatch user guide): the root is a JSON
object whose `_aws` member has `Timestamp` (ms) and `CloudWatchMetrics`, an array of directives each with
`Namespace`, `Dimensions` (an array of dimension sets, each an array of at most 30 member names) and `Metrics` (at
most 100 definitions with `Name`, optional `Unit` and `StorageResolution` 1 or 60); every dimension names a string
member of the root and every metric a number or an array of at most 100 numbers. An event that breaks a rule stays a
log event and makes no metric (CloudWatch's behaviour); `parse` says why, for the local cloud's log.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger(__name__)

UNITS = {
    *("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes"),
    *("Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second"),
    *("Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second"),
    *("Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"),
}
MAX_DIMENSIONS = 30
MAX_METRICS = 100
MAX_VALUES = 100


class EmfError(ValueError):
    """Why an event is not valid EMF."""


@dataclass(frozen=True)
class Datum:
    """One PutMetricData MetricDatum."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    values: tuple[float, ...]
    timestamp_ms: int
    unit: str = "None"
    storage_resolution: int = 60

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "MetricName": self.name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
            "Timestamp": self.timestamp_ms / 1000,
            "Unit": self.unit,
            "StorageResolution": self.storage_resolution,
        }
        if len(self.values) == 1:
            out["Value"] = self.values[0]
        else:
            out["Values"] = list(self.values)
        return out


def looks_like_emf(message: str) -> bool:
    return '"_aws"' in message and message.lstrip().startswith("{")


def parse(message: str) -> list[Datum]:
    """The metrics of one EMF event; raises EmfError naming the broken rule."""
    try:
        root = json.loads(message)
    except ValueError as exc:
        raise EmfError(f"not JSON: {exc}") from None
    if not isinstance(root, dict):
        raise EmfError("the root is not an object")
    meta = root.get("_aws")
    if not isinstance(meta, dict):
        raise EmfError("_aws is not an object")
    timestamp = meta.get("Timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise EmfError("_aws.Timestamp is not a number")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        raise EmfError("_aws.CloudWatchMetrics is not an array")
    out: list[Datum] = []
    for directive in directives:
        out.extend(_directive(root, directive, int(timestamp)))
    return out


def _directive(root: dict[str, Any], directive: Any, timestamp: int) -> list[Datum]:
    if not isinstance(directive, dict):
        raise EmfError("a CloudWatchMetrics directive is not an object")
    namespace = directive.get("Namespace")
    if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255:
        raise EmfError("Namespace must be a string of 1 to 255 characters")
    dimension_sets = directive.get("Dimensions")
    if not isinstance(dimension_sets, list):
        raise EmfError("Dimensions is not an array")
    resolved_sets: list[tuple[tuple[str, str], ...]] = []
    for dimension_set in dimension_sets:
        if not isinstance(dimension_set, list) or not all(isinstance(d, str) for d in dimension_set):
            raise EmfError("a dimension set is not an array of strings")
        if len(dimension_set) > MAX_DIMENSIONS:
            raise EmfError(f"a dimension set has more than {MAX_DIMENSIONS} dimensions")
        pairs = []
        for name in dimension_set:
            value = root.get(name)
            if not isinstance(value, str):
                raise EmfError(f"dimension {name} is not a string member of the root")
            pairs.append((name, value))
        resolved_sets.append(tuple(pairs))
    if not resolved_sets:
        resolved_sets = [()]
    metrics = directive.get("Metrics")
    if not isinstance(metrics, list):
        raise EmfError("Metrics is not an array")
    if len(metrics) > MAX_METRICS:
        raise EmfError(f"more than {MAX_METRICS} metrics in one directive")
    out = []
    for definition in metrics:
        if not isinstance(definition, dict) or not isinstance(definition.get("Name"), str):
            raise EmfError("a metric definition has no Name")
        name = definition["Name"]
        unit = definition.get("Unit", "None")
        if unit not in UNITS:
            raise EmfError(f"metric {name} has an unknown Unit {unit}")
        resolution = definition.get("StorageResolution", 60)
        if resolution not in (1, 60):
            raise EmfError(f"metric {name} has StorageResolution {resolution} (1 or 60)")
        raw = root.get(name)
        values: list[Any] = raw if isinstance(raw, list) else [raw]
        if not values or len(values) > MAX_VALUES:
            raise EmfError(f"metric {name} has no values or more than {MAX_VALUES}")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            raise EmfError(f"metric {name} is not a number or an array of numbers")
        for dims in resolved_sets:
            out.append(Datum(namespace, name, dims, tuple(float(v) for v in values), timestamp, unit, resolution))
    return out


class EmfPublisher:
    """Extracts EMF from Lambda's log events (the LogWriter's listener) and sends it to CloudWatch from its own
    thread, 20 datums per PutMetricData call per namespace (the API's limit is higher; small calls stay quick)."""

    BATCH = 20

    def __init__(self, cloudwatch: Any, interval_s: float = 0.5) -> None:
        self.cloudwatch = cloudwatch
        self.interval_s = interval_s
        self._pending: deque[Datum] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.published = 0
        self.rejected = 0

    def __call__(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        for _timestamp, message in events:
            if not looks_like_emf(message):
                continue
            try:
                self._pending.extend(parse(message))
            except EmfError as exc:
                self.rejected += 1
                LOG.info("not embedded metric format (%s, %s): %s", group, stream, exc)
        if self._pending:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lambdalab-emf", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        while self._pending:
            by_namespace: dict[str, list[Datum]] = {}
            while self._pending and sum(len(v) for v in by_namespace.values()) < 200:
                datum = self._pending.popleft()
                by_namespace.setdefault(datum.namespace, []).append(datum)
            for namespace, data in by_namespace.items():
                for start in range(0, len(data), self.BATCH):
                    chunk = data[start : start + self.BATCH]
                    try:
                        self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=[d.to_api() for d in chunk])
                        self.published += len(chunk)
                    except Exception:
                        LOG.exception("could not publish %d embedded metrics to %s", len(chunk), namespace)

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
