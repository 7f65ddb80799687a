"""SQS event source mappings: the mapping model, its validation, and the pure poller-scaling policy on a clock."""

from __future__ import annotations

import enum
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from lambdalab.awslambda.exceptions import InvalidParameterValueException
from lambdalab.clock import Clock

LOG = logging.getLogger(__name__)

# "Configuring scaling behavior for SQS event source mappings" (docs.aws.amazon.com/lambda/latest/dg/
# services-sqs-scaling.html): five batches at a time at first, up to 300 more per minute while messages are
# available, at most 1,000 batches at once; back to five when traffic is low. MaximumConcurrency is 2-1000.
INITIAL_CONCURRENCY = 5
SCALE_UP_PER_MINUTE = 300
MAX_CONCURRENCY = 1000
MIN_MAXIMUM_CONCURRENCY = 2
# CreateEventSourceMapping's limits for standard SQS queues.
MIN_BATCH_SIZE = 1
MAX_BATCH_SIZE = 10000
MAX_BATCH_SIZE_WITHOUT_WINDOW = 10
MAX_BATCHING_WINDOW_S = 300
DEFAULT_BATCH_SIZE = 10
FUNCTION_RESPONSE_TYPES = ("ReportBatchItemFailures",)


class MappingState(enum.Enum):
    """The `State` the API reports; transitions are Creating→Enabled/Disabled, Enabling→Enabled,
    Disabling→Disabled, Updating→Enabled/Disabled, Deleting→(gone)."""

    CREATING = "Creating"
    ENABLING = "Enabling"
    ENABLED = "Enabled"
    DISABLING = "Disabling"
    DISABLED = "Disabled"
    UPDATING = "Updating"
    DELETING = "Deleting"


@dataclass
class MappingSettings:
    """What a caller may set on an SQS mapping (CreateEventSourceMapping / UpdateEventSourceMapping)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window_s: int = 0
    enabled: bool = True
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None

    def validate(self) -> None:
        _range("batchSize", self.batch_size, MIN_BATCH_SIZE, MAX_BATCH_SIZE)
        _range("maximumBatchingWindowInSeconds", self.batching_window_s, 0, MAX_BATCHING_WINDOW_S)
        if self.batch_size > MAX_BATCH_SIZE_WITHOUT_WINDOW and self.batching_window_s <= 0:
            raise InvalidParameterValueException(
                "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
            )
        if self.maximum_concurrency is not None:
            _range(
                "scalingConfig.maximumConcurrency", self.maximum_concurrency, MIN_MAXIMUM_CONCURRENCY, MAX_CONCURRENCY
            )


@dataclass
class EventSourceMapping:
    """One SQS → function mapping as the Lambda API describes it."""

    uuid: str
    event_source_arn: str
    function_arn: str  # qualified when the mapping names a version or alias
    settings: MappingSettings
    region: str
    account_id: str
    state: MappingState = MappingState.CREATING
    state_transition_reason: str = "USER_INITIATED"
    last_modified: float = field(default_factory=time.time)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:event-source-mapping:{self.uuid}"

    def to_api(self) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "UUID": self.uuid,
            "BatchSize": s.batch_size,
            "MaximumBatchingWindowInSeconds": s.batching_window_s,
            "EventSourceArn": self.event_source_arn,
            "FunctionArn": self.function_arn,
            "LastModified": round(self.last_modified, 3),
            "State": self.state.value,
            "StateTransitionReason": self.state_transition_reason,
            "FunctionResponseTypes": ["ReportBatchItemFailures"] if s.report_batch_item_failures else [],
            "EventSourceMappingArn": self.arn,
        }
        if s.maximum_concurrency is not None:
            body["ScalingConfig"] = {"MaximumConcurrency": s.maximum_concurrency}
        return body


def new_uuid() -> str:
    return str(uuid.uuid4())


def _range(member: str, value: int, low: int, high: int) -> None:
    if value < low:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {low}"
        )
    if value > high:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            f"Member must have value less than or equal to {high}"
        )


def _integer(body: dict[str, Any], key: str, member: str, lenient: bool) -> int | None:
    """An integer member; `lenient` accepts the digit strings CloudFormation parameters resolve to."""
    value = body.get(key)
    if value is None:
        return None
    if lenient and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            "Member must be an integer"
        )
    return value


def settings_from(body: dict[str, Any], base: MappingSettings | None = None, lenient: bool = False) -> MappingSettings:
    """Create/Update request members (or CloudFormation properties when `lenient`) → validated settings."""
    current = base or MappingSettings()
    batch_size = _integer(body, "BatchSize", "batchSize", lenient)
    window = _integer(body, "MaximumBatchingWindowInSeconds", "maximumBatchingWindowInSeconds", lenient)
    enabled = body.get("Enabled", current.enabled)
    if isinstance(enabled, str) and lenient:
        enabled = enabled.lower() == "true"
    if not isinstance(enabled, bool):
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{enabled}' at 'enabled' failed to satisfy constraint: "
            "Member must be a boolean"
        )
    report = current.report_batch_item_failures
    if "FunctionResponseTypes" in body:
        types = body.get("FunctionResponseTypes") or []
        if not isinstance(types, list) or any(t not in FUNCTION_RESPONSE_TYPES for t in types):
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{types}' at 'functionResponseTypes' failed to satisfy "
                "constraint: Member must satisfy constraint: [Member must satisfy enum value set: "
                "[ReportBatchItemFailures]]"
            )
        report = "ReportBatchItemFailures" in types
    maximum = current.maximum_concurrency
    if "ScalingConfig" in body:
        scaling = body.get("ScalingConfig") or {}
        if not isinstance(scaling, dict):
            raise InvalidParameterValueException("ScalingConfig must be an object")
        maximum = _integer(scaling, "MaximumConcurrency", "scalingConfig.maximumConcurrency", lenient)
    settings = MappingSettings(
        batch_size=current.batch_size if batch_size is None else batch_size,
        batching_window_s=current.batching_window_s if window is None else window,
        enabled=enabled,
        report_batch_item_failures=report,
        maximum_concurrency=maximum,
    )
    settings.validate()
    return settings


# --- scaling ------------------------------------------------------------------------------------------------------


@dataclass
class ScalingSnapshot:
    level: int
    active: int
    peak_active: int


class SqsScaling:
    """How many batches one SQS mapping may process at once, on an injected clock.

    Starts at 5. While polls find messages the level rises by up to 300 per minute (the minute multiplied by
    `time_scale`), to the cap: 1,000 or `MaximumConcurrency`. A poll that finds the queue empty scales back to 5.
    Batches start only through `try_start`, so active batches never exceed the level, and the level never exceeds
    the cap.
    """

    def __init__(self, clock: Clock, maximum_concurrency: int | None = None, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self.clock = clock
        self.time_scale = time_scale
        self.cap = MAX_CONCURRENCY
        self.floor = INITIAL_CONCURRENCY
        self._level = float(INITIAL_CONCURRENCY)
        self._growing_since: float | None = None
        self.active = 0
        self.peak_active = 0
        self.set_maximum(maximum_concurrency)

    def set_maximum(self, maximum_concurrency: int | None) -> None:
        self.cap = MAX_CONCURRENCY if maximum_concurrency is None else min(MAX_CONCURRENCY, maximum_concurrency)
        self.floor = min(INITIAL_CONCURRENCY, self.cap)
        self._level = min(max(self._level, self.floor), self.cap)

    @property
    def level(self) -> int:
        """Concurrent batches allowed now."""
        self._advance()
        return int(self._level)

    def _advance(self) -> None:
        if self._growing_since is None:
            return
        now = self.clock.now()
        elapsed = now - self._growing_since
        if elapsed <= 0:
            return
        minute = 60.0 * self.time_scale
        self._level = min(float(self.cap), self._level + SCALE_UP_PER_MINUTE * elapsed / minute)
        self._growing_since = now

    def found_messages(self) -> None:
        """A poll returned messages: keep (or start) scaling up."""
        self._advance()
        if self._growing_since is None:
            self._growing_since = self.clock.now()

    def found_empty(self) -> None:
        """A poll found the queue empty: traffic is low, back to the initial level."""
        self._advance()
        self._growing_since = None
        self._level = float(self.floor)

    def try_start(self) -> bool:
        """Take a slot for one batch if the level allows it."""
        if self.active >= self.level:
            return False
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        return True

    def finish(self) -> None:
        if self.active <= 0:
            raise RuntimeError("finish() without a started batch")
        self.active -= 1

    def seconds_to_reach(self, level: int) -> float:
        """How long (on the clock) scaling up from 5 takes to reach `level`, capped — for docs and tests."""
        target = min(level, self.cap)
        if target <= self.floor:
            return 0.0
        return math.ceil(target - self.floor) * 60.0 * self.time_scale / SCALE_UP_PER_MINUTE

    def snapshot(self) -> ScalingSnapshot:
        return ScalingSnapshot(self.level, self.active, self.peak_active)
