"""SQS dead-letter queue redrive, which moto lacks: StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask.

As the SQS API reference describes them: the source must be a dead-letter queue of another queue (its ARN is some
queue's `RedrivePolicy.deadLetterTargetArn`); without `DestinationArn` messages go back to their source queue; a task
moves at most `MaxNumberOfMessagesPerSecond` (1-500) messages a second, one task at a time per source; statuses
RUNNING → COMPLETED, CANCELLING → CANCELLED, or FAILED with a `FailureReason`. Messages keep their body and message
attributes. Locally, a dead-letter queue serving several source queues needs `DestinationArn` (moto does not record
which queue a dead-lettered message came from); the task moves what the queue holds when it starts.

The JSON protocol only (botocore, the AWS CLI v2 and current SDKs speak it to SQS); anything else goes to moto.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from botocore.exceptions import ClientError

from lambdalab.awsclients import local_client
from lambdalab.clock import Clocks

LOG = logging.getLogger(__name__)

TARGET_PREFIX = "AmazonSQS."
OPERATIONS = ("StartMessageMoveTask", "ListMessageMoveTasks", "CancelMessageMoveTask")
DEFAULT_RATE = 500  # "If not specified, the system will try to maximize the number of messages per second"
MAX_RATE = 500


@dataclass
class MoveTask:
    handle: str
    source_arn: str
    destination_arns: list[str]  # one, or the single source queue of the DLQ
    rate: int | None
    to_move: int
    started_ms: int  # epoch ms
    moved: int = 0
    status: str = "RUNNING"
    failure_reason: str | None = None
    task: asyncio.Task[None] | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "TaskHandle": self.handle,
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.destination_arns and self.destination_arns[0] != "":
            body["DestinationArn"] = self.destination_arns[0]
        if self.rate is not None:
            body["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure_reason:
            body["FailureReason"] = self.failure_reason
        return body


class SqsError(Exception):
    def __init__(self, code: str, message: str, query_code: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.query_code = query_code
        self.status = status


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/x-amz-json-1.0")


class MessageMoveTasks:
    """The three operations, served from the gateway's SQS route; everything else is moto's."""

    def __init__(self, moto_url: str, region: str, *, clocks: Clocks) -> None:
        self._moto_url = moto_url
        self._region = region
        self._clocks = clocks  # monotonic: the rate limit; epoch: StartedTimestamp
        self.tasks: dict[str, MoveTask] = {}

    def _sqs(self) -> Any:
        return local_client("sqs", self._moto_url, self._region)

    async def handle(self, request: web.Request) -> web.StreamResponse | None:
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(TARGET_PREFIX) or target[len(TARGET_PREFIX) :] not in OPERATIONS:
            return None
        operation = target[len(TARGET_PREFIX) :]
        try:
            params = json.loads(await request.read() or b"{}")
            if not isinstance(params, dict):
                raise SqsError(
                    "InvalidParameterValue", "the request body must be a JSON object", "InvalidParameterValue"
                )
            if operation == "StartMessageMoveTask":
                return _json(await self.start(params))
            if operation == "ListMessageMoveTasks":
                return _json(await self.list(params))
            return _json(self.cancel(params))
        except SqsError as exc:
            return _json({"__type": f"com.amazonaws.sqs#{exc.code}", "message": exc.message}, exc.status)
        except ValueError:
            return _json({"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": "malformed JSON"}, 400)

    # --- operations -----------------------------------------------------------------------------------------------

    def _queue_url(self, arn: str) -> str:
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise SqsError("InvalidParameterValue", f"{arn} is not an SQS queue ARN", "InvalidParameterValue")
        try:
            return str(self._sqs().get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"])
        except ClientError:
            raise SqsError(
                "ResourceNotFoundException",
                "The resource that you specified for the SourceArn parameter doesn't exist.",
                "AWS.SimpleQueueService.NonExistentQueue",
            ) from None

    def _sources_of(self, dlq_arn: str) -> list[str]:
        sqs = self._sqs()
        sources = []
        for url in sqs.list_queues().get("QueueUrls", []):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy", "QueueArn"])
            policy = json.loads(attributes.get("Attributes", {}).get("RedrivePolicy") or "{}")
            if policy.get("deadLetterTargetArn") == dlq_arn:
                sources.append(attributes["Attributes"]["QueueArn"])
        return sources

    async def start(self, params: dict[str, Any]) -> dict[str, Any]:
        source = params.get("SourceArn")
        if not isinstance(source, str) or not source:
            raise SqsError("MissingParameter", "The request must contain the parameter SourceArn.", "MissingParameter")
        rate = params.get("MaxNumberOfMessagesPerSecond")
        if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool) or not 1 <= rate <= MAX_RATE):
            raise SqsError(
                "InvalidParameterValue",
                f"Value {rate} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: must be between 1 and "
                f"{MAX_RATE}.",
                "InvalidParameterValue",
            )
        source_url = await asyncio.to_thread(self._queue_url, source)
        sources = await asyncio.to_thread(self._sources_of, source)
        if not sources:
            raise SqsError(
                "InvalidParameterValue",
                "Source queue must be configured as a Dead Letter Queue.",
                "InvalidParameterValue",
            )
        destination = params.get("DestinationArn")
        if destination is not None:
            await asyncio.to_thread(self._queue_url, destination)
        elif len(sources) > 1:
            raise SqsError(
                "InvalidParameterValue",
                f"{source} is the dead-letter queue of {len(sources)} queues; the local cloud cannot tell which queue "
                "each message came from: give DestinationArn",
                "InvalidParameterValue",
            )
        if any(t.source_arn == source and t.status in ("RUNNING", "CANCELLING") for t in self.tasks.values()):
            raise SqsError(
                "UnsupportedOperation",
                "There is already a task running. Only one active task is allowed for a source queue arn at a given "
                "time.",
                "AWS.SimpleQueueService.UnsupportedOperation",
            )
        counts = await asyncio.to_thread(
            self._sqs().get_queue_attributes, QueueUrl=source_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        to_move = int(counts["Attributes"].get("ApproximateNumberOfMessages", "0"))
        handle = base64.b64encode(json.dumps({"taskId": str(uuid.uuid4()), "sourceArn": source}).encode()).decode()
        task = MoveTask(
            handle, source, [destination or sources[0]], rate, to_move, int(self._clocks.epoch.now() * 1000)
        )
        if destination is None:
            task.destination_arns = [sources[0]]
        self.tasks[handle] = task
        task.task = asyncio.ensure_future(self._run(task, source_url))
        LOG.info("message move task %s: %s -> %s (%d messages)", handle, source, task.destination_arns[0], to_move)
        return {"TaskHandle": handle}

    async def list(self, params: dict[str, Any]) -> dict[str, Any]:
        source = params.get("SourceArn")
        if not isinstance(source, str) or not source:
            raise SqsError("MissingParameter", "The request must contain the parameter SourceArn.", "MissingParameter")
        await asyncio.to_thread(self._queue_url, source)
        limit = params.get("MaxResults", 1)
        if not isinstance(limit, int) or not 1 <= limit <= 10:
            raise SqsError(
                "InvalidParameterValue", "Value for parameter MaxResults is invalid: 1 to 10.", "InvalidParameterValue"
            )
        mine = sorted((t for t in self.tasks.values() if t.source_arn == source), key=lambda t: -t.started_ms)
        results = []
        for task in mine[:limit]:
            item = task.to_api()
            if task.status not in ("RUNNING", "CANCELLING"):
                item.pop("TaskHandle", None)  # "Only RUNNING tasks have a task handle"
            results.append(item)
        return {"Results": results}

    def cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        task = self.tasks.get(str(params.get("TaskHandle", "")))
        if task is None:
            raise SqsError(
                "ResourceNotFoundException", "Task does not exist.", "AWS.SimpleQueueService.NonExistentQueue"
            )
        if task.status != "RUNNING":
            raise SqsError(
                "UnsupportedOperation",
                f"Only RUNNING tasks can be cancelled; this one is {task.status}.",
                "AWS.SimpleQueueService.UnsupportedOperation",
            )
        task.status = "CANCELLING"
        return {"ApproximateNumberOfMessagesMoved": task.moved}

    # --- moving ---------------------------------------------------------------------------------------------------

    def _move_some(self, task: MoveTask, source_url: str, destination_url: str, limit: int) -> int:
        """Receive up to `limit` (≤ 10) messages, send each to the destination, then delete it. Blocking."""
        sqs = self._sqs()
        got = sqs.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=limit,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        for message in got:
            kwargs: dict[str, Any] = {"QueueUrl": destination_url, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                kwargs["MessageAttributes"] = message["MessageAttributes"]
            group = (message.get("Attributes") or {}).get("MessageGroupId")
            if group:
                kwargs["MessageGroupId"] = group
                kwargs["MessageDeduplicationId"] = message["MessageId"]
            sqs.send_message(**kwargs)  # sent before deleted: a failure in between duplicates, never loses
            sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
        return len(got)

    async def _run(self, task: MoveTask, source_url: str) -> None:
        try:
            destination_url = await asyncio.to_thread(self._queue_url, task.destination_arns[0])
            rate = task.rate or DEFAULT_RATE
            while task.status == "RUNNING" and task.moved < task.to_move:
                started = self._clocks.monotonic.now()
                chunk = min(10, rate, task.to_move - task.moved)
                moved = await asyncio.to_thread(self._move_some, task, source_url, destination_url, chunk)
                task.moved += moved
                if moved == 0:
                    break  # nothing visible any more (received elsewhere): what is left stays in the DLQ
                await asyncio.sleep(max(0.0, moved / rate - (self._clocks.monotonic.now() - started)))
            task.status = "CANCELLED" if task.status == "CANCELLING" else "COMPLETED"
        except asyncio.CancelledError:
            task.status = "CANCELLED"
            raise
        except Exception as exc:
            task.status = "FAILED"
            task.failure_reason = str(exc)
            LOG.warning("message move task %s failed: %s", task.handle, exc)

    async def close(self) -> None:
        running = [t.task for t in self.tasks.values() if t.task is not None and not t.task.done()]
        for running_task in running:
            running_task.cancel()
        if running:
            await asyncio.wait(running, timeout=5)
