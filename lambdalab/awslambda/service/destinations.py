"""Where a finished asynchronous invocation goes: its destination (OnSuccess / OnFailure) or its dead-letter queue.

The async queue (asyncq.py) decides *what* to send and *where*; the service hands each delivery to `Destinations.send`,
which reaches the target: an SQS queue, an SNS topic or an EventBridge bus through moto's APIs (blocking boto3 calls,
in a worker thread so the loop never waits). A Lambda function target is the service's own asynchronous invoke
(`LambdaService.deliver`), so this needs nothing from the service and is built before it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lambdalab.awsclients import local_client


class Destinations:
    """Delivers async invocation records and DLQ messages to SQS, SNS or EventBridge targets."""

    def __init__(self, moto_url: str) -> None:
        self.moto_url = moto_url

    async def send(self, target_arn: str, body: bytes, attributes: dict[str, str]) -> None:
        """Deliver `body` (with message attributes, for queues and topics) to `target_arn`; raise on failure."""
        parts = target_arn.split(":")
        service = parts[2] if len(parts) > 5 else ""
        await asyncio.to_thread(self._send_blocking, service, parts, target_arn, body, attributes)

    def _send_blocking(
        self, service: str, parts: list[str], target_arn: str, body: bytes, attributes: dict[str, str]
    ) -> None:
        message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        if service == "sqs":
            sqs = local_client("sqs", self.moto_url, parts[3])
            url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
            kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body.decode()}
            if message_attributes:
                kwargs["MessageAttributes"] = message_attributes
            sqs.send_message(**kwargs)
        elif service == "sns":
            local_client("sns", self.moto_url, parts[3]).publish(
                TopicArn=target_arn, Message=body.decode(), MessageAttributes=message_attributes
            )
        elif service == "events":
            local_client("events", self.moto_url, parts[3]).put_events(
                Entries=[
                    {
                        "EventBusName": target_arn,
                        "Source": "lambda",
                        "DetailType": "Lambda Function Invocation Result",
                        "Detail": body.decode(),
                    }
                ]
            )
        else:
            raise ValueError(f"unsupported destination {target_arn}")
