"""Event source mappings (SQS queues, Kinesis streams, DynamoDB streams): the mapping model, its validation, and the
pure SQS poller-scaling policy on a clock (the stream rules are lambdalab.sources.stream_policy)."""

from __future__ import annotations

import enum
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdalab.awslambda.core.exceptions import InvalidParameterValueException
from lambdalab.clock import Clock
from lambdalab.sources.filters import FilterCriteriaError, FilterSet, compile_filter_criteria

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
METRICS = ("EventCount",)  # EventSourceMappingMetricsConfig: the others are for Kafka sources
# CreateEventSourceMapping's limits for Kinesis and DynamoDB streams (API reference; botocore's Lambda model).
DEFAULT_STREAM_BATCH_SIZE = 100
MAX_PARALLELIZATION_FACTOR = 10
MAX_STREAM_RETRY_ATTEMPTS = 10000
MIN_RECORD_AGE_S = 60
MAX_RECORD_AGE_S = 604800
MAX_TUMBLING_WINDOW_S = 900
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
_STREAM_ONLY = (
    ("StartingPosition", "startingPosition"),
    ("StartingPositionTimestamp", "startingPositionTimestamp"),
    ("ParallelizationFactor", "parallelizationFactor"),
    ("MaximumRetryAttempts", "maximumRetryAttempts"),
    ("MaximumRecordAgeInSeconds", "maximumRecordAgeInSeconds"),
    ("BisectBatchOnFunctionError", "bisectBatchOnFunctionError"),
    ("TumblingWindowInSeconds", "tumblingWindowInSeconds"),
    ("DestinationConfig", "destinationConfig"),
)


class SourceKind(enum.Enum):
    """The event sources the local Lambda service polls."""

    SQS = "sqs"
    KINESIS = "kinesis"
    DYNAMODB = "dynamodb"

    @property
    def is_stream(self) -> bool:
        return self is not SourceKind.SQS


def source_kind(arn: str) -> SourceKind:
    """The kind of an event source ARN: an SQS queue, a Kinesis stream, or a DynamoDB table's stream."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn":
        service, resource = parts[2], parts[5]
        if service == "sqs" and resource and "/" not in resource:
            return SourceKind.SQS
        if service == "kinesis" and resource.startswith("stream/") and len(resource) > len("stream/"):
            return SourceKind.KINESIS
        if service == "dynamodb" and resource.startswith("table/") and "/stream/" in resource:
            return SourceKind.DYNAMODB
    raise InvalidParameterValueException(
        f"Unsupported event source {arn!r}: the local Lambda service polls SQS queues, Kinesis streams and DynamoDB "
        "streams (MSK, Amazon MQ, self-managed Kafka and DocumentDB sources are not run locally)"
    )


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


def _no_filters() -> FilterSet:
    return FilterSet("sqs", {}, ())


@dataclass
class MappingSettings:
    """What a caller may set on a mapping (CreateEventSourceMapping / UpdateEventSourceMapping)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window_s: int = 0
    enabled: bool = True
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None
    source: SourceKind = SourceKind.SQS
    filters: FilterSet = field(default_factory=_no_filters)
    metrics: tuple[str, ...] = ()  # MetricsConfig.Metrics: "EventCount" publishes the mapping's event counts
    # streams only (Kinesis, DynamoDB)
    starting_position: str | None = None
    starting_position_timestamp: float | None = None
    parallelization_factor: int = 1
    maximum_retry_attempts: int = -1  # -1: until the record expires
    maximum_record_age_s: int = -1  # -1: no limit but the stream's retention
    bisect_on_error: bool = False
    tumbling_window_s: int = 0
    on_failure_destination: str | None = None

    def validate(self) -> None:
        _range("batchSize", self.batch_size, MIN_BATCH_SIZE, MAX_BATCH_SIZE)
        _range("maximumBatchingWindowInSeconds", self.batching_window_s, 0, MAX_BATCHING_WINDOW_S)
        if (
            not self.source.is_stream
            and self.batch_size > MAX_BATCH_SIZE_WITHOUT_WINDOW
            and self.batching_window_s <= 0
        ):
            raise InvalidParameterValueException(
                "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
            )
        if self.maximum_concurrency is not None:
            if self.source.is_stream:
                raise InvalidParameterValueException(
                    "ScalingConfig is supported for Amazon SQS event sources only; streams scale with "
                    "ParallelizationFactor"
                )
            _range(
                "scalingConfig.maximumConcurrency", self.maximum_concurrency, MIN_MAXIMUM_CONCURRENCY, MAX_CONCURRENCY
            )
        if not self.source.is_stream:
            return
        _range("parallelizationFactor", self.parallelization_factor, 1, MAX_PARALLELIZATION_FACTOR)
        _range("maximumRetryAttempts", self.maximum_retry_attempts, -1, MAX_STREAM_RETRY_ATTEMPTS)
        _range("maximumRecordAgeInSeconds", self.maximum_record_age_s, -1, MAX_RECORD_AGE_S)
        if 0 <= self.maximum_record_age_s < MIN_RECORD_AGE_S:
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{self.maximum_record_age_s}' at 'maximumRecordAgeInSeconds' "
                f"failed to satisfy constraint: Member must be -1 or have value greater than or equal to "
                f"{MIN_RECORD_AGE_S}"
            )
        _range("tumblingWindowInSeconds", self.tumbling_window_s, 0, MAX_TUMBLING_WINDOW_S)
        if self.starting_position not in STARTING_POSITIONS:
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{self.starting_position}' at 'startingPosition' failed to "
                "satisfy constraint: Member must satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]"
                if self.starting_position is not None
                else "StartingPosition is required for Kinesis and DynamoDB Streams event sources"
            )
        if self.starting_position == "AT_TIMESTAMP":
            if self.source is SourceKind.DYNAMODB:
                raise InvalidParameterValueException(
                    "Unsupported starting position AT_TIMESTAMP for DynamoDB Streams: use TRIM_HORIZON or LATEST"
                )
            if self.starting_position_timestamp is None:
                raise InvalidParameterValueException(
                    "StartingPositionTimestamp is required when StartingPosition is AT_TIMESTAMP"
                )
        if self.on_failure_destination is not None and self.on_failure_destination.split(":")[2:3] not in (
            ["sqs"],
            ["sns"],
        ):
            raise InvalidParameterValueException(
                f"Unsupported DestinationConfig.OnFailure.Destination {self.on_failure_destination!r}: an Amazon SQS "
                "queue or Amazon SNS topic ARN (S3 destinations are not run locally)"
            )


@dataclass
class EventSourceMapping:
    """One event source → function mapping as the Lambda API describes it."""

    uuid: str
    event_source_arn: str
    function_arn: str  # qualified when the mapping names a version or alias
    settings: MappingSettings
    region: str
    account_id: str
    last_modified: float  # epoch seconds of the last create or update (the caller's epoch clock)
    state: MappingState = MappingState.CREATING
    state_transition_reason: str = "USER_INITIATED"
    last_processing_result: str = "No records processed"  # streams: "OK" or "PROBLEM: ..." once batches ran

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
        if s.filters.criteria:
            body["FilterCriteria"] = s.filters.criteria
        if s.metrics:
            body["MetricsConfig"] = {"Metrics": list(s.metrics)}
        if s.source.is_stream:
            body.update(
                StartingPosition=s.starting_position,
                ParallelizationFactor=s.parallelization_factor,
                MaximumRecordAgeInSeconds=s.maximum_record_age_s,
                BisectBatchOnFunctionError=s.bisect_on_error,
                MaximumRetryAttempts=s.maximum_retry_attempts,
                TumblingWindowInSeconds=s.tumbling_window_s,
                DestinationConfig=(
                    {"OnFailure": {"Destination": s.on_failure_destination}} if s.on_failure_destination else {}
                ),
                LastProcessingResult=self.last_processing_result,
            )
            if s.starting_position_timestamp is not None:
                body["StartingPositionTimestamp"] = s.starting_position_timestamp
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


def _boolean(body: dict[str, Any], key: str, member: str, current: bool, lenient: bool) -> bool:
    value = body.get(key, current)
    if isinstance(value, str) and lenient:
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            "Member must be a boolean"
        )
    return value


def _timestamp(value: Any) -> float | None:
    """StartingPositionTimestamp: epoch seconds (the JSON API) or an ISO 8601 text (CloudFormation)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    raise InvalidParameterValueException(f"Invalid StartingPositionTimestamp {value!r}: epoch seconds or ISO 8601")


def settings_from(
    body: dict[str, Any],
    base: MappingSettings | None = None,
    lenient: bool = False,
    source: SourceKind | None = None,
) -> MappingSettings:
    """Create/Update request members (or CloudFormation properties when `lenient`) → validated settings."""
    kind = source or (base.source if base is not None else SourceKind.SQS)
    current = base or MappingSettings(
        source=kind,
        batch_size=DEFAULT_STREAM_BATCH_SIZE if kind.is_stream else DEFAULT_BATCH_SIZE,
        filters=FilterSet(kind.value, {}, ()),
    )
    if not kind.is_stream:
        for key, member in _STREAM_ONLY:
            if body.get(key) is not None:
                raise InvalidParameterValueException(
                    f"Unsupported {member} parameter for an Amazon SQS event source: it applies to Kinesis and "
                    "DynamoDB Streams only"
                )
    elif base is not None and body.get("StartingPosition") is not None:
        raise InvalidParameterValueException("StartingPosition cannot be updated; create a new event source mapping")
    batch_size = _integer(body, "BatchSize", "batchSize", lenient)
    window = _integer(body, "MaximumBatchingWindowInSeconds", "maximumBatchingWindowInSeconds", lenient)
    enabled = _boolean(body, "Enabled", "enabled", current.enabled, lenient)
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
    filters = current.filters
    if "FilterCriteria" in body:
        try:
            filters = compile_filter_criteria(body.get("FilterCriteria"), kind.value)
        except FilterCriteriaError as exc:
            raise InvalidParameterValueException(str(exc)) from None
    metrics = current.metrics
    if "MetricsConfig" in body:
        names = (body.get("MetricsConfig") or {}).get("Metrics") or []
        if not isinstance(names, list) or any(n not in METRICS for n in names):
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{names}' at 'metricsConfig.metrics' failed to satisfy "
                "constraint: Member must satisfy enum value set: [EventCount] for this event source"
            )
        metrics = tuple(dict.fromkeys(names))
    destination = current.on_failure_destination
    if "DestinationConfig" in body:
        config = body.get("DestinationConfig") or {}
        if not isinstance(config, dict):
            raise InvalidParameterValueException("DestinationConfig must be an object")
        if (config.get("OnSuccess") or {}).get("Destination"):
            raise InvalidParameterValueException(
                "Unsupported DestinationConfig.OnSuccess: stream event sources support on-failure destinations only"
            )
        destination = (config.get("OnFailure") or {}).get("Destination") or None

    def integer_or(key: str, member: str, value: int) -> int:
        given = _integer(body, key, member, lenient)
        return value if given is None else given

    settings = MappingSettings(
        batch_size=current.batch_size if batch_size is None else batch_size,
        batching_window_s=current.batching_window_s if window is None else window,
        enabled=enabled,
        report_batch_item_failures=report,
        maximum_concurrency=maximum,
        source=kind,
        filters=filters,
        metrics=metrics,
        starting_position=(
            body.get("StartingPosition", current.starting_position) if base is None else current.starting_position
        ),
        starting_position_timestamp=(
            _timestamp(body.get("StartingPositionTimestamp")) if base is None else current.starting_position_timestamp
        ),
        parallelization_factor=integer_or(
            "ParallelizationFactor", "parallelizationFactor", current.parallelization_factor
        ),
        maximum_retry_attempts=integer_or(
            "MaximumRetryAttempts", "maximumRetryAttempts", current.maximum_retry_attempts
        ),
        maximum_record_age_s=integer_or(
            "MaximumRecordAgeInSeconds", "maximumRecordAgeInSeconds", current.maximum_record_age_s
        ),
        bisect_on_error=_boolean(
            body, "BisectBatchOnFunctionError", "bisectBatchOnFunctionError", current.bisect_on_error, lenient
        ),
        tumbling_window_s=integer_or("TumblingWindowInSeconds", "tumblingWindowInSeconds", current.tumbling_window_s),
        on_failure_destination=destination,
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
