"""Asynchronous event sources of the local cloud: what SNS, EventBridge and S3 (moto keeps their state) deliver, and
how, once moto has accepted a Publish, a PutEvents or a PutObject.

The moto hooks (lambdalab.sources.moto_hooks) call the `on_*` methods from moto's request threads; each builds the
event AWS sends and hands delivery to the local cloud's event loop, so the API call returns at once, as on AWS:

* SNS → Lambda: the `{"Records": [{"EventSource": "aws:sns", "Sns": {...}}]}` event, invoked asynchronously
  (through the Lambda service's async queue). SNS's own retries cover only a failed Invoke request: throttles and
  5xx follow SNS's delivery policy for AWS-managed endpoints; client errors (the function does not exist) are not
  retried; then the subscription's `RedrivePolicy` dead-letter queue gets the message (RequestID, ErrorCode,
  ErrorMessage attributes), or it is discarded (logged).
* EventBridge rule targets: the rule's pattern matched by lambdalab.sources.patterns, the target's input
  (Input / InputPath / InputTransformer), delivery to Lambda (async), SQS, SNS, Step Functions, event buses,
  Kinesis or Logs; the target's `RetryPolicy` (exponential backoff with jitter, at most 185 retries and 24 h) and
  `DeadLetterConfig` (an SQS queue; RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION,
  RETRY_ATTEMPTS attributes). Errors retrying cannot fix go to the DLQ at once.
* S3 notifications: the S3 event record (eventVersion 2.1) to Lambda (async), SQS and SNS per matching
  configuration (event type, prefix/suffix filter), and to the default event bus when EventBridge is enabled.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from lambdalab.clock import Clocks
from lambdalab.sources.invoke import AsyncInvoker, InvokeRefused, LoopBridge
from lambdalab.sources.patterns import Dialect, Pattern, PatternError, compile_pattern, loads
from lambdalab.sources.retry import RetryPolicy, sns_delay
from lambdalab.sources.targets import DeliveryError, Target, TargetDelivery
from lambdalab.sources.transform import TransformError, target_input

LOG = logging.getLogger(__name__)


def iso_ms(epoch: float) -> str:
    """2026-11-22T07:40:12.123Z"""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def iso_s(epoch: float) -> str:
    """2026-11-22T07:40:12Z (EventBridge's event time)"""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SourceRouter:
    """Built by the local cloud with its loop, Lambda invoker and endpoints; used from moto's threads."""

    def __init__(
        self,
        *,
        bridge: LoopBridge,
        invoker: AsyncInvoker,
        moto_url: str,
        gateway_url: str,
        region: str,
        account_id: str,
        clocks: Clocks,
        time_scale: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.bridge = bridge
        self.invoker = invoker
        self.region = region
        self.account_id = account_id
        self.time_scale = time_scale
        self.clock = clocks.monotonic  # retry budgets (MaximumEventAgeInSeconds)
        self.epoch = clocks.epoch  # SNS Timestamp, EventBridge time
        self.rng = rng or random.Random()
        self.delivery = TargetDelivery(invoker, moto_url, gateway_url, region, epoch=clocks.epoch)
        self._patterns: dict[str, Pattern | None] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}  # what was delivered, retried, dead-lettered, discarded (tests read it)
        self._pending: set[asyncio.Future[Any]] = set()

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.bridge.submit(coro)

    # --- SNS ------------------------------------------------------------------------------------------------------

    def on_sns_to_lambda(
        self,
        *,
        subscription_arn: str,
        endpoint: str,
        topic_arn: str,
        message: str,
        message_id: str,
        subject: str | None,
        attributes: Mapping[str, Any] | None,
        redrive_policy: str | None,
    ) -> None:
        now = self.epoch.now()
        notification = {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic_arn,
            "Subject": subject,
            "Message": message,
            "Timestamp": iso_ms(now),
            "SignatureVersion": "1",
            "Signature": base64.b64encode(hashlib.sha256(f"{message_id}{message}".encode()).digest()).decode(),
            "SigningCertUrl": f"https://sns.{self.region}.amazonaws.com/SimpleNotificationService-local.pem",
            "UnsubscribeUrl": (
                f"https://sns.{self.region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription_arn}"
            ),
            "MessageAttributes": {
                k: {"Type": v.get("Type"), "Value": v.get("Value")} for k, v in (attributes or {}).items()
            },
        }
        event = {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": subscription_arn,
                    "Sns": notification,
                }
            ]
        }
        dlq = None
        if redrive_policy:
            try:
                dlq = json.loads(redrive_policy).get("deadLetterTargetArn")
            except ValueError:
                LOG.warning("subscription %s: RedrivePolicy is not JSON: %r", subscription_arn, redrive_policy)
        self._submit(self._sns_deliver(endpoint, json.dumps(event), notification, dlq))

    async def _sns_deliver(
        self, function_arn: str, payload: str, notification: dict[str, Any], dlq: str | None
    ) -> None:
        retry = 0
        while True:
            try:
                await self.invoker.invoke_async(function_arn, payload.encode())
                self._count("sns.delivered")
                return
            except InvokeRefused as exc:
                error = exc
            client_side = not (error.throttled or error.status >= 500)
            retry += 1
            delay = None if client_side else sns_delay(retry, self.time_scale)
            if delay is None:
                break
            self._count("sns.retried")
            await asyncio.sleep(delay)
        LOG.warning("SNS could not deliver %s to %s: %s", notification["MessageId"], function_arn, error)
        if dlq is None:
            self._count("sns.discarded")
            return
        attributes = {
            "RequestID": str(uuid.uuid4()),
            "ErrorCode": str(error.status),
            "ErrorMessage": f"{error.code}: {error.message}"[:1024],
        }
        try:
            await self.delivery.deliver_message(dlq, json.dumps(notification), attributes)
            self._count("sns.dead_lettered")
        except DeliveryError as exc:
            LOG.warning("SNS dead-letter queue %s refused message %s: %s", dlq, notification["MessageId"], exc)
            self._count("sns.discarded")

    # --- EventBridge ----------------------------------------------------------------------------------------------

    def pattern(self, text: str | None) -> Pattern | None:
        """A rule's compiled pattern (cached by text); None when it cannot be compiled (never matches)."""
        if text is None:
            return None
        with self._lock:
            if text in self._patterns:
                return self._patterns[text]
        try:
            compiled: Pattern | None = compile_pattern(text, Dialect.EVENTBRIDGE)
        except PatternError as exc:
            LOG.warning("EventBridge pattern %r cannot be matched locally: %s", text, exc)
            compiled = None
        with self._lock:
            self._patterns[text] = compiled
        return compiled

    def rule_matches(self, pattern_text: str | None, event: Mapping[str, Any]) -> bool:
        compiled = self.pattern(pattern_text)
        return compiled is not None and compiled.matches(loads(json.dumps(event)))

    def on_rule_match(
        self, rule_arn: str, rule_name: str, targets: list[dict[str, Any]], event: dict[str, Any]
    ) -> None:
        for target in targets:
            try:
                payload = target_input(target, event, rule_arn, rule_name)
            except TransformError as exc:
                LOG.warning("rule %s target %s: %s", rule_name, target.get("Id"), exc)
                continue
            partition_key = None
            kinesis = target.get("KinesisParameters") or {}
            if kinesis.get("PartitionKeyPath"):
                from lambdalab.sources.transform import find_path

                found, value = find_path(str(kinesis["PartitionKeyPath"]), event)
                partition_key = str(value) if found else None
            destination = Target(
                str(target["Arn"]),
                message_group_id=(target.get("SqsParameters") or {}).get("MessageGroupId"),
                partition_key=partition_key,
            )
            try:
                policy = RetryPolicy.from_api(target.get("RetryPolicy"))
            except ValueError as exc:
                LOG.warning("rule %s target %s: RetryPolicy %s; using the defaults", rule_name, target.get("Id"), exc)
                policy = RetryPolicy()
            dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
            attributes = {"RULE_ARN": rule_arn, "TARGET_ARN": destination.arn}
            self._submit(
                self.deliver_with_retries(
                    destination, payload, policy=policy, dlq=dlq, dlq_attributes=attributes, kind="events"
                )
            )

    async def deliver_with_retries(
        self,
        target: Target,
        payload: str,
        *,
        policy: RetryPolicy,
        dlq: str | None,
        dlq_attributes: dict[str, str],
        kind: str,
        attempt_hook: Callable[[int], str] | None = None,
    ) -> None:
        """Deliver, retrying as `policy` says; then the DLQ (an SQS queue) or a logged discard. `attempt_hook(n)`
        may rewrite the payload per attempt (Scheduler's <aws.scheduler.attempt-number>)."""
        started = self.clock.now()
        retries = 0
        while True:
            body = attempt_hook(retries + 1) if attempt_hook is not None else payload
            try:
                await self.delivery.deliver(target, body)
                self._count(f"{kind}.delivered")
                return
            except DeliveryError as exc:
                error = exc
            exhausted = None if error.retriable else "NoRetry"
            if exhausted is None:
                decision = policy.decide(retries, self.clock.now() - started, self.time_scale)
                exhausted = None if decision is None else str(decision)
            if exhausted is not None:
                break
            retries += 1
            self._count(f"{kind}.retried")
            await asyncio.sleep(policy.delay(retries - 1, self.rng, self.time_scale))
        LOG.warning("%s: delivery to %s failed for good (%s): %s", kind, target.arn, exhausted, error)
        if dlq is None:
            self._count(f"{kind}.discarded")
            return
        attributes = {
            **dlq_attributes,
            "ERROR_CODE": error.code,
            "ERROR_MESSAGE": error.message[:1024],
            "RETRY_ATTEMPTS": str(retries),
        }
        if exhausted != "NoRetry":
            attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
        try:
            await self.delivery.deliver_message(dlq, payload, attributes)
            self._count(f"{kind}.dead_lettered")
        except DeliveryError as exc:
            LOG.warning("%s: dead-letter queue %s refused the event: %s", kind, dlq, exc)
            self._count(f"{kind}.discarded")

    def eventbridge_event(
        self,
        *,
        source: str,
        detail_type: str,
        detail: Any,
        resources: list[str] | None = None,
        event_time: float | None = None,
        event_id: str | None = None,
        region: str | None = None,
        account: str | None = None,
    ) -> dict[str, Any]:
        """An event as EventBridge delivers it."""
        return {
            "version": "0",
            "id": event_id or str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": account or self.account_id,
            "time": iso_s(event_time if event_time is not None else self.epoch.now()),
            "region": region or self.region,
            "resources": list(resources or []),
            "detail": detail,
        }

    # --- S3 -------------------------------------------------------------------------------------------------------

    def on_s3_records(self, deliveries: list[tuple[str, str]], eventbridge: dict[str, Any] | None) -> None:
        """`deliveries`: (target ARN, S3 event JSON) for each matching notification; `eventbridge`: the event for the
        default bus when the bucket sends to EventBridge."""
        for arn, payload in deliveries:
            self._submit(self._s3_deliver(arn, payload))
        if eventbridge is not None:
            self._submit(self._s3_eventbridge(eventbridge))

    async def _s3_deliver(self, arn: str, payload: str) -> None:
        # S3 sends each notification once; a failure is lost on AWS too (logged here).
        try:
            await self.delivery.deliver(Target(arn), payload)
            self._count("s3.delivered")
        except DeliveryError as exc:
            LOG.warning("S3 event notification to %s failed: %s", arn, exc)
            self._count("s3.failed")

    async def _s3_eventbridge(self, event: dict[str, Any]) -> None:
        bus = f"arn:aws:events:{self.region}:{self.account_id}:event-bus/default"
        try:
            await self.delivery.deliver(Target(bus), json.dumps(event))
            self._count("s3.eventbridge")
        except DeliveryError as exc:
            LOG.warning("S3 event to EventBridge failed: %s", exc)
            self._count("s3.failed")
