"""Delivering an event to a target the way EventBridge rules and EventBridge Scheduler do: Lambda (asynchronous
invoke, through the Lambda service's async queue), SQS, SNS, Step Functions, another event bus, Kinesis, CloudWatch
Logs. Failures come back as `DeliveryError` with the EventBridge DLQ error code and whether retrying can help."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambdalab.awsclients import local_session
from lambdalab.clock import Clock
from lambdalab.sources.invoke import AsyncInvoker, InvokeRefused

LOG = logging.getLogger(__name__)

_NOT_FOUND = (
    "NonExistentQueue",
    "QueueDoesNotExist",
    "NotFound",
    "ResourceNotFoundException",
    "StateMachineDoesNotExist",
    "ResourceNotFound",
)


class DeliveryError(Exception):
    """The target did not take the event. `code` is what an EventBridge DLQ message's ERROR_CODE says."""

    def __init__(self, code: str, message: str, *, retriable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retriable = retriable


@dataclass(frozen=True)
class Target:
    """Where an event goes and the target-specific parameters that shape the call."""

    arn: str
    message_group_id: str | None = None  # SqsParameters
    partition_key: str | None = None  # KinesisParameters (already resolved)
    detail_type: str | None = None  # Scheduler EventBridgeParameters
    source: str | None = None

    @property
    def service(self) -> str:
        parts = self.arn.split(":")
        return parts[2] if len(parts) > 5 else ""


def _error(exc: ClientError) -> DeliveryError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
    if any(marker in code for marker in _NOT_FOUND):
        return DeliveryError("NO_RESOURCE", f"{code}: {error.get('Message', '')}", retriable=False)
    if code in ("AccessDenied", "AccessDeniedException"):
        return DeliveryError("NO_PERMISSIONS", str(error.get("Message", "")), retriable=False)
    if status == 429 or "Throttl" in code:
        return DeliveryError("THROTTLING", str(error.get("Message", "")), retriable=True)
    return DeliveryError("INTERNAL_ERROR", f"{code}: {error.get('Message', '')}", retriable=status >= 500)


class TargetDelivery:
    """One delivery attempt per call; the caller owns retries and dead-letter queues."""

    def __init__(self, invoker: AsyncInvoker, moto_url: str, gateway_url: str, region: str, *, epoch: Clock) -> None:
        self._invoker = invoker
        self._epoch = epoch  # a CloudWatch Logs target's event timestamp
        self.moto_url = moto_url  # moto's own HTTP server (the scheduler deletes finished one-time schedules there)
        self._gateway_url = gateway_url
        self._region = region

    def _client(self, service: str, *, via_gateway: bool = False) -> Any:
        return local_session(self._region).client(
            service,
            endpoint_url=self._gateway_url if via_gateway else self.moto_url,
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    async def deliver(self, target: Target, payload: str) -> None:
        service = target.service
        if service == "lambda":
            try:
                await self._invoker.invoke_async(target.arn, payload.encode())
            except InvokeRefused as exc:
                if exc.throttled or exc.status >= 500:
                    raise DeliveryError("THROTTLING", exc.message, retriable=True) from None
                code = "NO_RESOURCE" if exc.status == 404 else "INVALID_PARAMETER"
                raise DeliveryError(code, f"{exc.code}: {exc.message}", retriable=False) from None
            return
        try:
            await asyncio.to_thread(self._deliver_blocking, target, payload)
        except ClientError as exc:
            raise _error(exc) from None
        except BotoCoreError as exc:
            raise DeliveryError("INTERNAL_ERROR", str(exc), retriable=True) from None

    async def deliver_message(self, queue_arn: str, body: str, attributes: Mapping[str, str]) -> None:
        """A dead-letter message: `body` with String message attributes, to an SQS queue."""
        try:
            await asyncio.to_thread(self._send_with_attributes, queue_arn, body, attributes)
        except ClientError as exc:
            raise _error(exc) from None
        except BotoCoreError as exc:
            raise DeliveryError("INTERNAL_ERROR", str(exc), retriable=True) from None

    def _send_with_attributes(self, queue_arn: str, body: str, attributes: Mapping[str, str]) -> None:
        parts = queue_arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise DeliveryError("INVALID_PARAMETER", f"{queue_arn} is not an SQS queue", retriable=False)
        sqs = self._client("sqs")
        url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()},
        )

    def _deliver_blocking(self, target: Target, payload: str) -> None:
        parts = target.arn.split(":")
        service, account, resource = target.service, parts[4], parts[5]
        if service == "sqs":
            sqs = self._client("sqs")
            url = sqs.get_queue_url(QueueName=resource, QueueOwnerAWSAccountId=account)["QueueUrl"]
            kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": payload}
            if target.message_group_id:
                kwargs["MessageGroupId"] = target.message_group_id
            if resource.endswith(".fifo"):
                kwargs.setdefault("MessageGroupId", "default")
                kwargs["MessageDeduplicationId"] = str(uuid.uuid4())
            sqs.send_message(**kwargs)
        elif service == "sns":
            self._client("sns").publish(TopicArn=target.arn, Message=payload)
        elif service == "states":
            self._client("stepfunctions", via_gateway=True).start_execution(stateMachineArn=target.arn, input=payload)
        elif service == "events" and resource.startswith("event-bus/"):
            entry: dict[str, Any] = {"EventBusName": target.arn}
            try:
                event = json.loads(payload)
            except ValueError:
                event = None
            if target.detail_type is not None or not isinstance(event, dict) or "detail-type" not in event:
                entry.update(
                    Source=target.source or "aws.scheduler", DetailType=target.detail_type or "Event", Detail=payload
                )
            else:
                entry.update(
                    Source=event.get("source"),
                    DetailType=event.get("detail-type"),
                    Detail=json.dumps(event.get("detail", {})),
                    Resources=list(event.get("resources") or []),
                )
            failed = self._client("events").put_events(Entries=[entry]).get("FailedEntryCount", 0)
            if failed:
                raise DeliveryError("INTERNAL_ERROR", "the event bus refused the event", retriable=False)
        elif service == "kinesis" and resource.startswith("stream/"):
            self._client("kinesis").put_record(
                StreamName=resource.split("/", 1)[1],
                Data=payload.encode(),
                PartitionKey=target.partition_key or str(uuid.uuid4()),
            )
        elif service == "logs" and resource.startswith("log-group:"):
            group = resource.split(":", 1)[1].removesuffix(":*")
            logs = self._client("logs")
            stream = str(uuid.uuid4())
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": int(self._epoch.now() * 1000), "message": payload}],
            )
        else:
            raise DeliveryError(
                "UNSUPPORTED_TARGET",
                f"the local cloud does not deliver to {target.arn} (Lambda, SQS, SNS, Step Functions, event buses, "
                "Kinesis and CloudWatch Logs targets are supported)",
                retriable=False,
            )
