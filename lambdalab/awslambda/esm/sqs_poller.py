"""Event source mappings at run time: the mapping store (SQS queues, Kinesis and DynamoDB streams) and the asyncio SQS
pollers against the local SQS (moto); stream mappings run in lambdalab.sources.streams."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambdalab.awsclients import local_session
from lambdalab.awslambda.core.esm import (
    EventSourceMapping,
    MappingSettings,
    MappingState,
    SourceKind,
    SqsScaling,
    new_uuid,
    settings_from,
    source_kind,
)
from lambdalab.awslambda.core.exceptions import (
    InvalidParameterValueException,
    LocalCapacityException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalab.awslambda.core.models import split_function_name
from lambdalab.awslambda.core.outcome import Invoker, Outcome, Rejected
from lambdalab.clock import Clocks
from lambdalab.sources import esm_metrics
from lambdalab.sources.esm_metrics import EsmMetrics
from lambdalab.sources.invoke import Sender, SyncInvoker
from lambdalab.sources.streams import StreamRuntime, stream_reader

LOG = logging.getLogger(__name__)

LONG_POLL_S = 1  # Lambda long-polls 20 s; 1 s keeps stop() prompt and moto re-checks its queue every second anyway
RECEIVE_MAX = 10  # ReceiveMessage's MaxNumberOfMessages limit
PAYLOAD_BUDGET = 5 * 1024 * 1024  # stay under the 6 MB synchronous payload limit, records' envelopes included
THROTTLE_BACKOFF_S = 0.2  # a poller that was throttled pauses before polling again
ERROR_BACKOFF_S = 0.5  # after an SQS error (moto is not thread-safe under heavy concurrent receives)
STOP_TIMEOUT_S = 10.0
STOP_GRACE_S = 3.0  # disable/delete: how long a poller may finish its batch; at shutdown it is cancelled at once
POLL_THREADS = 64


@dataclass
class MappingStats:
    """What one mapping's pollers did; logged at stop and readable in process (tests, experiments)."""

    polls: int = 0
    empty_polls: int = 0
    received: int = 0
    batches: int = 0
    succeeded: int = 0
    function_errors: int = 0
    throttles: int = 0
    other_errors: int = 0
    item_failures: int = 0
    deleted: int = 0
    delete_failures: int = 0
    sqs_errors: int = 0
    filtered_out: int = 0  # messages FilterCriteria left out (deleted from the queue, as Lambda does)


@dataclass
class _Runtime:
    """A mapping's live state: its queue, scaling, pollers."""

    mapping: EventSourceMapping
    queue_url: str
    scaling: SqsScaling
    stats: MappingStats = field(default_factory=MappingStats)
    supervisor: asyncio.Task[None] | None = None
    workers: set[asyncio.Task[None]] = field(default_factory=set)
    # One ReceiveMessage at a time per mapping: moto's receive is not thread-safe (two concurrent receives can return
    # the same message or fail moving one to the DLQ); a receive that finds messages returns at once.
    receive_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    running: bool = False


def _queue_name(arn: str) -> tuple[str, str, str]:
    """An SQS queue ARN → (region, account, name)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
        raise InvalidParameterValueException(
            f"Unsupported event source {arn!r}: the local Lambda service runs SQS queue event sources only"
        )
    return parts[3], parts[4], parts[5]


def lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS MessageAttributes → the camel-case form Lambda puts in each record."""
    converted: dict[str, Any] = {}
    for name, value in attributes.items():
        item: dict[str, Any] = {}
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            item["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
        item["stringListValues"] = list(value.get("StringListValues") or [])
        item["binaryListValues"] = list(value.get("BinaryListValues") or [])
        item["dataType"] = value.get("DataType", "String")
        converted[name] = item
    return converted


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda sends for a batch of SQS messages."""
    records = []
    for message in messages:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": dict(message.get("Attributes") or {}),
            "messageAttributes": lambda_message_attributes(message.get("MessageAttributes") or {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def failed_item_ids(body: bytes, message_ids: set[str]) -> set[str] | None:
    """The ids a ReportBatchItemFailures response returns to the queue; None means the whole batch failed.

    As "Reporting batch item failures" documents: an empty or null response, or an empty or null
    `batchItemFailures`, is complete success; invalid JSON, or an itemIdentifier that is empty, null, misnamed or not a
    message of the batch, is complete failure.
    """
    text = body.decode(errors="replace").strip()
    if not text or text == "null":
        return set()
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if parsed is None:
        return set()
    if not isinstance(parsed, dict):
        return None
    failures = parsed.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for item in failures:
        if not isinstance(item, dict):
            return None
        identifier = item.get("itemIdentifier")
        if not isinstance(identifier, str) or not identifier or identifier not in message_ids:
            return None
        ids.add(identifier)
    return ids


class LambdaFunctions(Invoker, Protocol):
    """What the mappings need of the Lambda service: the typed internal invoke and its functions' names."""

    def mapping_function_arn(self, function_name: str) -> str:
        """The ARN a mapping targets; ResourceNotFoundException for an unknown function, version or alias."""
        ...

    def check_function(self, function_name: str) -> None:
        """ResourceNotFoundException unless the function exists."""
        ...

    def function_role(self, function_name: str) -> str: ...

    def function_timeout_s(self, function_name: str) -> int:
        """The timeout of the version or alias the (possibly qualified) name resolves to."""
        ...


class EventSourceMappings:
    """The account's event source mappings and their pollers. Methods run on the service's event loop unless noted."""

    def __init__(
        self,
        functions: LambdaFunctions,
        clocks: Clocks,
        *,
        region: str,
        account_id: str,
        endpoint_url: str,
        source_endpoints: dict[str, str] | None = None,
        time_scale: float,
        spawn_task: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
        sender: Sender,
        stream_invoker: SyncInvoker,
        metrics: EsmMetrics | None = None,
        sqs_client: Any = None,
    ) -> None:
        self.functions = functions
        self.clocks = clocks  # both, for the stream mappings' runtimes
        self.clock = clocks.monotonic  # scaling, batching windows
        self.epoch = clocks.epoch  # LastModified
        self.region = region
        self.account_id = account_id
        self.time_scale = time_scale
        self._spawn_task = spawn_task  # the Lambda service's: it cancels what is left at its stop
        self._sender = sender  # destinations of stream mappings
        self.sqs_endpoint_url = endpoint_url  # the local cloud points this at moto (SQS, Kinesis)
        # source kind ("dynamodb") → its own endpoint, if not moto's
        self.source_endpoint_urls: dict[str, str] = dict(source_endpoints or {})
        self.metrics = metrics  # MetricsConfig EventCount metrics and IteratorAge, when wired
        self.stream_invoker = stream_invoker  # how stream mappings invoke
        self._runtimes: dict[str, _Runtime | StreamRuntime] = {}
        self._visibility_timeouts: dict[str, int] = {}  # queue URL -> seconds, read when the queue was resolved
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._client: Any = sqs_client  # None: a boto3 client for endpoint_url, made on first use (tests pass a fake)
        self._stopping = False

    # --- SQS access (blocking; called in threads) ---------------------------------------------------------------

    def _sqs(self) -> Any:
        if self._client is None:
            self._client = local_session(self.region).client(
                "sqs",
                endpoint_url=self.sqs_endpoint_url,
                config=Config(
                    max_pool_connections=POLL_THREADS,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    read_timeout=LONG_POLL_S + 30,
                ),
            )
        return self._client

    def _endpoint_of(self, kind: str) -> str:
        return self.source_endpoint_urls.get(kind, self.sqs_endpoint_url)

    def resolve_queue(self, queue_arn: str) -> str:
        """The queue URL of an SQS ARN (a stream ARN is checked and returned as is), or Lambda's error for a source
        that does not exist. Blocking."""
        kind = source_kind(queue_arn)
        if kind.is_stream:
            reader = stream_reader(
                kind.value, queue_arn, self._endpoint_of(kind.value), self.region, "", epoch=self.epoch
            )
            try:
                reader.shards()
            except Exception:
                raise InvalidParameterValueException(f"Stream not found: {queue_arn}") from None
            return queue_arn
        _, account, name = _queue_name(queue_arn)
        try:
            url = str(self._sqs().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
            attributes = self._sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
            visibility = attributes.get("Attributes", {}).get("VisibilityTimeout")
            if visibility is not None:
                self._visibility_timeouts[url] = int(visibility)
            return url
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or code == "QueueDoesNotExist":
                raise InvalidParameterValueException(
                    "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. "
                    "SQS Error Message: The specified queue does not exist for this wsdl version."
                ) from None
            raise

    def _executor_or_new(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=POLL_THREADS, thread_name_prefix="sqs-poller")
        return self._executor

    async def _blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor_or_new(), lambda: fn(*args, **kwargs))

    async def resolve_queue_async(self, queue_arn: str) -> str:
        return str(await self._blocking(self.resolve_queue, queue_arn))

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for runtime in self._runtimes.values():
            if runtime.mapping.settings.enabled:
                self._start_pollers(runtime)

    async def stop(self) -> None:
        self._stopping = True
        runtimes = list(self._runtimes.values())
        await asyncio.gather(*(self._stop_pollers(r, grace_s=0.0) for r in runtimes), return_exceptions=True)
        for runtime in runtimes:
            LOG.info("event source mapping %s: %s", runtime.mapping.uuid, runtime.stats)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # --- control --------------------------------------------------------------------------------------------------

    def _function_arn(self, function_name: str) -> str:
        return self.functions.mapping_function_arn(function_name)  # unknown version or alias: ResourceNotFound

    def check(self, body: dict[str, Any], lenient: bool = False) -> tuple[str, str, MappingSettings]:
        """Validate a CreateEventSourceMapping request (lenient: CloudFormation properties), all but the source's
        existence: (source ARN, function ARN, settings)."""
        source = body.get("EventSourceArn")
        if not isinstance(source, str) or not source:
            raise InvalidParameterValueException("EventSourceArn is required for this event source mapping")
        function_name = body.get("FunctionName")
        if not isinstance(function_name, str) or not function_name:
            raise InvalidParameterValueException(
                "1 validation error detected: Value null at 'functionName' failed to satisfy constraint: "
                "Member must not be null"
            )
        kind = source_kind(source)
        function_arn = self._function_arn(function_name)
        settings = settings_from(body, lenient=lenient, source=kind)
        if kind is SourceKind.SQS and _queue_name(source)[2].endswith(".fifo") and settings.batch_size > 10:
            raise InvalidParameterValueException("Batch size for SQS FIFO queues must be less than or equal to 10")
        for runtime in self._runtimes.values():
            existing = runtime.mapping
            if existing.event_source_arn == source and existing.function_arn == function_arn:
                raise ResourceConflictException(
                    f'The event source arn (" {source} ") and function (" {function_name} ") provided mapping '
                    f"already exists. Please update or delete the existing mapping with UUID {existing.uuid}"
                )
        return source, function_arn, settings

    def create(self, body: dict[str, Any], queue_url: str | None = None, lenient: bool = False) -> EventSourceMapping:
        """CreateEventSourceMapping. Resolves the source if `queue_url` is not given (blocking: not on the gateway's
        loop unless the source is reached directly)."""
        source, function_arn, settings = self.check(body, lenient)
        url = queue_url if queue_url is not None else self.resolve_queue(source)
        visibility = self._visibility_timeouts.get(url) if settings.source is SourceKind.SQS else None
        timeout = self.functions.function_timeout_s(str(body["FunctionName"]))
        if visibility is not None and visibility < timeout:  # as Lambda refuses it (and CloudFormation with it)
            raise InvalidParameterValueException(
                f"Queue visibility timeout: {visibility} seconds is less than Function timeout: {timeout} seconds"
            )
        mapping = EventSourceMapping(
            uuid=new_uuid(),
            event_source_arn=source,
            function_arn=function_arn,
            settings=settings,
            region=self.region,
            account_id=self.account_id,
            last_modified=self.epoch.now(),
        )
        runtime: _Runtime | StreamRuntime
        if settings.source.is_stream:
            runtime = self._stream_runtime(mapping)
        else:
            scaling = SqsScaling(self.clock, settings.maximum_concurrency, self.time_scale)
            runtime = _Runtime(mapping, url, scaling)
        self._runtimes[mapping.uuid] = runtime
        LOG.info("event source mapping %s: %s -> %s (%s)", mapping.uuid, source, function_arn, settings)
        if settings.tumbling_window_s:
            LOG.warning(
                "event source mapping %s: TumblingWindowInSeconds %s is accepted but tumbling windows are not run "
                "locally (batches carry no window or state)",
                mapping.uuid,
                settings.tumbling_window_s,
            )
        if settings.enabled:
            self._start_pollers(runtime)
        else:
            self._later(runtime, MappingState.DISABLED)
        return mapping

    def _stream_runtime(self, mapping: EventSourceMapping) -> StreamRuntime:
        function_name, _ = split_function_name(mapping.function_arn)
        role = self.functions.function_role(function_name)
        reader = stream_reader(
            mapping.settings.source.value,
            mapping.event_source_arn,
            self._endpoint_of(mapping.settings.source.value),
            self.region,
            role,
            epoch=self.epoch,
        )
        return StreamRuntime(
            mapping,
            reader,
            self.stream_invoker,
            blocking=self._blocking,
            clocks=self.clocks,
            time_scale=self.time_scale,
            sender=self._sender,
            metrics=self.metrics,
            function_name=function_name,
        )

    def get(self, mapping_uuid: str) -> EventSourceMapping:
        return self._runtime(mapping_uuid).mapping

    def stats(self, mapping_uuid: str) -> Any:
        return self._runtime(mapping_uuid).stats

    def scaling(self, mapping_uuid: str) -> SqsScaling:
        runtime = self._runtime(mapping_uuid)
        if not isinstance(runtime, _Runtime):
            raise InvalidParameterValueException("stream mappings scale with ParallelizationFactor, not SqsScaling")
        return runtime.scaling

    def runtime(self, mapping_uuid: str) -> _Runtime | StreamRuntime:
        """The live state of a mapping (tests and experiments read its stats)."""
        return self._runtime(mapping_uuid)

    def _runtime(self, mapping_uuid: str) -> _Runtime | StreamRuntime:
        try:
            return self._runtimes[mapping_uuid]
        except KeyError:
            raise ResourceNotFoundException("The resource you requested does not exist.") from None

    def list_mappings(
        self, event_source_arn: str | None = None, function_name: str | None = None
    ) -> list[EventSourceMapping]:
        mappings = [r.mapping for r in self._runtimes.values()]
        if event_source_arn:
            mappings = [m for m in mappings if m.event_source_arn == event_source_arn]
        if function_name:
            name, qualifier = split_function_name(function_name)
            self.functions.check_function(name)  # an unknown function is ResourceNotFoundException, as on AWS
            mappings = [
                m
                for m in mappings
                if split_function_name(m.function_arn)[0] == name
                and (qualifier is None or split_function_name(m.function_arn)[1] == qualifier)
            ]
        return mappings

    def update(self, mapping_uuid: str, body: dict[str, Any]) -> EventSourceMapping:
        runtime = self._runtime(mapping_uuid)
        mapping = runtime.mapping
        if mapping.state in (MappingState.DELETING, MappingState.CREATING, MappingState.UPDATING):
            raise ResourceConflictException(
                f"The operation cannot be performed at this time. The event source mapping is currently in "
                f"{mapping.state.value} state."
            )
        if body.get("FunctionName"):
            mapping.function_arn = self._function_arn(str(body["FunctionName"]))
        was_enabled = mapping.settings.enabled
        settings = settings_from(body, base=mapping.settings)
        mapping.settings = settings
        mapping.last_modified = self.epoch.now()
        if isinstance(runtime, StreamRuntime):
            runtime.apply(settings)
        else:
            runtime.scaling.set_maximum(settings.maximum_concurrency)
        if settings.enabled and not was_enabled:
            mapping.state = MappingState.ENABLING
            self._start_pollers(runtime)
        elif was_enabled and not settings.enabled:
            mapping.state = MappingState.DISABLING
            self._spawn(self._disable(runtime), f"esm-disable-{mapping.uuid}")
        else:
            mapping.state = MappingState.UPDATING
            self._later(runtime, MappingState.ENABLED if settings.enabled else MappingState.DISABLED)
        return mapping

    def delete(self, mapping_uuid: str) -> EventSourceMapping:
        runtime = self._runtime(mapping_uuid)
        if runtime.mapping.state == MappingState.DELETING:
            return runtime.mapping
        runtime.mapping.state = MappingState.DELETING
        self._spawn(self._delete(runtime), f"esm-delete-{mapping_uuid}")
        return runtime.mapping

    def settings_of(self, mapping_uuid: str) -> MappingSettings:
        return self._runtime(mapping_uuid).mapping.settings

    # --- state transitions ----------------------------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any] | None:
        if self._loop is None:  # not started yet: start() picks enabled mappings up
            coro.close()
            return None
        return self._spawn_task(coro, name)

    def _later(self, runtime: _Runtime | StreamRuntime, state: MappingState) -> None:
        async def settle() -> None:
            await asyncio.sleep(0.05)
            if runtime.mapping.state not in (MappingState.DELETING,):
                runtime.mapping.state = state

        if self._spawn(settle(), f"esm-settle-{runtime.mapping.uuid}") is None:
            runtime.mapping.state = state

    async def _disable(self, runtime: _Runtime | StreamRuntime) -> None:
        await self._stop_pollers(runtime)
        if runtime.mapping.state == MappingState.DISABLING:
            runtime.mapping.state = MappingState.DISABLED

    async def _delete(self, runtime: _Runtime | StreamRuntime) -> None:
        await self._stop_pollers(runtime)
        self._runtimes.pop(runtime.mapping.uuid, None)
        LOG.info("event source mapping %s deleted: %s", runtime.mapping.uuid, runtime.stats)

    def _start_pollers(self, runtime: _Runtime | StreamRuntime) -> None:
        if runtime.running or self._stopping:
            return
        if isinstance(runtime, StreamRuntime):
            if self._loop is None:  # not started yet: start() picks enabled mappings up
                return
            runtime.start(self._spawn)
            return
        runtime.running = True
        task = self._spawn(self._supervise(runtime), f"esm-{runtime.mapping.uuid}")
        if task is None:
            runtime.running = False
            return
        runtime.supervisor = task

    async def _stop_pollers(self, runtime: _Runtime | StreamRuntime, grace_s: float | None = None) -> None:
        """Let pollers finish their batch for up to `grace_s` (default STOP_GRACE_S), then cancel them: a cancelled
        batch's messages stay in flight and reappear after the visibility timeout (a stream batch goes back to the
        front of its lane), so nothing is lost."""
        if grace_s is None:
            grace_s = STOP_GRACE_S
        if isinstance(runtime, StreamRuntime):
            await runtime.stop(grace_s)
            return
        runtime.running = False
        tasks = [t for t in [runtime.supervisor, *runtime.workers] if t is not None]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            # At shutdown (grace 0) cancelling is the plan, not news; a disable that outlasts its grace is.
            LOG.log(
                logging.WARNING if grace_s > 0 else logging.DEBUG,
                "event source mapping %s: %d pollers did not stop within %s s; cancelled",
                runtime.mapping.uuid,
                len(pending),
                grace_s,
            )
            await asyncio.wait(pending, timeout=STOP_TIMEOUT_S)
        runtime.supervisor = None

    # --- pollers --------------------------------------------------------------------------------------------------

    async def _supervise(self, runtime: _Runtime) -> None:
        """Keep as many pollers as the scaling level allows; each holds one batch slot."""
        mapping = runtime.mapping
        if mapping.state in (MappingState.CREATING, MappingState.ENABLING, MappingState.UPDATING):
            mapping.state = MappingState.ENABLED
        while runtime.running and not self._stopping:
            while runtime.running and runtime.scaling.try_start():
                task = asyncio.ensure_future(self._poll(runtime))
                task.set_name(f"esm-poller-{mapping.uuid}")
                runtime.workers.add(task)
                task.add_done_callback(runtime.workers.discard)
            await asyncio.sleep(0.05)
        if runtime.workers:
            await asyncio.wait(list(runtime.workers), timeout=STOP_TIMEOUT_S)

    async def _poll(self, runtime: _Runtime) -> None:
        scaling = runtime.scaling
        try:
            while runtime.running and not self._stopping and scaling.active <= scaling.level:
                messages = await self._receive_batch(runtime)
                if not messages:
                    scaling.found_empty()
                    continue
                scaling.found_messages()
                await self._process(runtime, messages)
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("poller of event source mapping %s failed", runtime.mapping.uuid)
        finally:
            scaling.finish()

    async def _receive(self, runtime: _Runtime, count: int, wait_s: int) -> list[dict[str, Any]]:
        runtime.stats.polls += 1
        try:
            async with runtime.receive_lock:
                if not runtime.running:
                    return []
                answer = await self._blocking(
                    self._sqs().receive_message,
                    QueueUrl=runtime.queue_url,
                    MaxNumberOfMessages=count,
                    WaitTimeSeconds=wait_s,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
        except (ClientError, BotoCoreError, RuntimeError) as exc:
            runtime.stats.sqs_errors += 1
            LOG.warning("event source mapping %s: ReceiveMessage failed: %s", runtime.mapping.uuid, exc)
            await asyncio.sleep(ERROR_BACKOFF_S)
            return []
        messages: list[dict[str, Any]] = list(answer.get("Messages") or [])
        if not messages:
            runtime.stats.empty_polls += 1
        runtime.stats.received += len(messages)
        return messages

    async def _receive_batch(self, runtime: _Runtime) -> list[dict[str, Any]]:
        """Up to BatchSize messages; with a batching window, keep gathering until the batch or the window is full."""
        settings = runtime.mapping.settings
        batch: list[dict[str, Any]] = []
        size = 0
        deadline: float | None = None
        while runtime.running and len(batch) < settings.batch_size and size < PAYLOAD_BUDGET:
            wanted = min(RECEIVE_MAX, settings.batch_size - len(batch))
            if not batch:
                got = await self._receive(runtime, wanted, LONG_POLL_S)
                if not got:
                    return []
                if settings.batching_window_s > 0:
                    deadline = self.clock.now() + settings.batching_window_s
            else:
                if deadline is None:
                    break
                remaining = deadline - self.clock.now()
                if remaining <= 0:
                    break
                got = await self._receive(runtime, wanted, min(LONG_POLL_S, int(remaining)))
                if not got:
                    await asyncio.sleep(min(0.05, max(0.0, deadline - self.clock.now())))
            batch.extend(got)
            size += sum(len(m.get("Body", "")) + 1024 for m in got)
        return batch

    def _count(self, runtime: _Runtime, name: str, events: int) -> None:
        if self.metrics is not None and "EventCount" in runtime.mapping.settings.metrics:
            self.metrics.count(runtime.mapping.uuid, name, events)

    async def _process(self, runtime: _Runtime, messages: list[dict[str, Any]]) -> None:
        mapping = runtime.mapping
        stats = runtime.stats
        self._count(runtime, esm_metrics.POLLED, len(messages))
        event = sqs_event(messages, mapping.event_source_arn, mapping.region)
        filters = mapping.settings.filters
        if filters:  # Lambda deletes the messages its filter criteria leave out ("Lambda event filtering")
            kept = [(m, r) for m, r in zip(messages, event["Records"], strict=True) if filters.matches(r)]
            left_out = [m for m in messages if m["MessageId"] not in {k["MessageId"] for k, _ in kept}]
            if left_out:
                stats.filtered_out += len(left_out)
                self._count(runtime, esm_metrics.FILTERED_OUT, len(left_out))
                await self._delete_messages(runtime, left_out)
            if not kept:
                return
            messages = [m for m, _ in kept]
            event = {"Records": [r for _, r in kept]}
        stats.batches += 1
        payload = json.dumps(event).encode()
        self._count(runtime, esm_metrics.INVOKED, len(messages))
        run = await self.functions.invoke_internal(mapping.function_arn, payload)
        if isinstance(run, Rejected) or run.outcome is Outcome.LOCAL_ERROR:
            if isinstance(run, Rejected):
                code, message = run.code, run.message
            else:
                code, message = LocalCapacityException.code, run.record.error_message or ""
            stats.other_errors += 1
            self._count(runtime, esm_metrics.FAILED_INVOKE, len(messages))
            LOG.warning("event source mapping %s: invoke failed: %s: %s", mapping.uuid, code, message)
            await asyncio.sleep(ERROR_BACKOFF_S)
            return
        if run.throttle is not None:
            stats.throttles += 1  # the batch stays in flight and reappears after the visibility timeout
            self._count(runtime, esm_metrics.FAILED_INVOKE, len(messages))
            await asyncio.sleep(THROTTLE_BACKOFF_S)
            return
        if run.outcome is not Outcome.SUCCESS or run.result is None:
            stats.function_errors += 1  # the whole batch returns to the queue
            self._count(runtime, esm_metrics.FAILED_INVOKE, len(messages))
            return
        stats.succeeded += 1
        keep: set[str] = set()
        if mapping.settings.report_batch_item_failures:
            ids = {m["MessageId"] for m in messages}
            failed = failed_item_ids(run.result.body, ids)
            if failed is None:
                stats.function_errors += 1
                self._count(runtime, esm_metrics.FAILED_INVOKE, len(messages))
                LOG.info("event source mapping %s: invalid batchItemFailures response; batch failed", mapping.uuid)
                return
            keep = failed
            stats.item_failures += len(failed)
        done = [m for m in messages if m["MessageId"] not in keep]
        before = stats.deleted
        await self._delete_messages(runtime, done)
        self._count(runtime, esm_metrics.DELETED, stats.deleted - before)

    async def _delete_messages(self, runtime: _Runtime, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), RECEIVE_MAX):
            chunk = messages[start : start + RECEIVE_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            for attempt in range(3):
                try:
                    answer = await self._blocking(
                        self._sqs().delete_message_batch, QueueUrl=runtime.queue_url, Entries=entries
                    )
                except (ClientError, BotoCoreError) as exc:
                    LOG.warning("event source mapping %s: DeleteMessageBatch failed: %s", runtime.mapping.uuid, exc)
                    runtime.stats.sqs_errors += 1
                    await asyncio.sleep(ERROR_BACKOFF_S)
                    continue
                runtime.stats.deleted += len(answer.get("Successful") or [])
                failed = {f["Id"] for f in answer.get("Failed") or []}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
                LOG.info(
                    "event source mapping %s: %d deletes failed (attempt %d)",
                    runtime.mapping.uuid,
                    len(entries),
                    attempt + 1,
                )
            else:
                runtime.stats.delete_failures += len(entries)
