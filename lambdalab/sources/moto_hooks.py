"""Where moto's SNS, EventBridge and S3 deliver events, the smallest wraps that send them to our router instead.

moto keeps the state (topics, subscriptions, filter policies, buses, rules, targets, buckets, notification
configurations) and validates the API calls; what it does with an event once accepted is not what AWS does:

* SNS: a `lambda` subscription calls moto's own Lambda (which needs Docker) and answers JSON to an XML API when the
  function is not there; filter policies use moto's matcher. → Lambda subscriptions go to the router; every filter
  policy (all protocols) is matched by lambdalab.sources.patterns (dialects SNS_ATTRIBUTES / SNS_BODY).
* EventBridge: `Rule.send_to_targets` matches with moto's matcher and raises NotImplementedError for Lambda, SNS and
  Step Functions targets (PutEvents answers 500). → the router matches and delivers; disabled rules and schedule-only
  rules match nothing, as on AWS.
* S3: notifications are built with a partial record shape, Lambda goes to moto's Lambda, and EventBridge
  notifications reach every bus. → the router gets AWS's record for each matching configuration (moto's own
  `Notification.matches` decides event type and prefix/suffix) and the default bus gets the EventBridge event.

`install(router)` patches once per process and points the hooks at `router`; `uninstall()` points them nowhere (moto
then behaves as it always did). Each wrap calls moto's original when no router is set.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import uuid
from typing import Any
from urllib.parse import quote_plus

from lambdalab.sources.patterns import Dialect, Pattern, PatternError, compile_pattern, loads, sns_attribute_document
from lambdalab.sources.router import SourceRouter, iso_ms

LOG = logging.getLogger(__name__)

_lock = threading.Lock()
_installed = False
_router: SourceRouter | None = None
_policies: dict[tuple[str, str], Pattern | None] = {}


def install(router: SourceRouter) -> None:
    global _installed, _router  # noqa: PLW0603 - process-wide hooks into a third-party module
    with _lock:
        _router = router
        if _installed:
            return
        _patch_sns()
        _patch_events()
        _patch_s3()
        _installed = True
        LOG.debug("moto SNS, EventBridge and S3 delivery hooks installed")


def uninstall() -> None:
    global _router  # noqa: PLW0603
    with _lock:
        _router = None


def current() -> SourceRouter | None:
    return _router


# --- SNS ----------------------------------------------------------------------------------------------------------


def _policy(policy: Any, scope: str) -> Pattern | None:
    dialect = Dialect.SNS_BODY if scope == "MessageBody" else Dialect.SNS_ATTRIBUTES
    key = (json.dumps(policy, sort_keys=True), dialect.value)
    with _lock:
        if key in _policies:
            return _policies[key]
    try:
        compiled: Pattern | None = compile_pattern(json.dumps(policy), dialect)
    except PatternError as exc:
        LOG.warning("SNS filter policy %s cannot be matched locally (nothing matches it): %s", key[0], exc)
        compiled = None
    with _lock:
        _policies[key] = compiled
    return compiled


def policy_matches(policy: Any, scope: str | None, attributes: Any, message: str) -> bool:
    """Whether an SNS subscription with `policy` takes this message (no policy: every message)."""
    if not policy:
        return True
    compiled = _policy(policy, scope or "MessageAttributes")
    if compiled is None:
        return False
    if scope == "MessageBody":
        try:
            document = loads(message)
        except ValueError:
            return False  # "Filter policies for the message body assume that the message payload is a well-formed JSON"
        return isinstance(document, dict) and compiled.matches(document)
    return compiled.matches(sns_attribute_document(attributes))


def _patch_sns() -> None:
    from moto.sns import models, utils

    def matches(self: Any, message_attributes: Any, message: str) -> bool:
        return policy_matches(self.filter_policy, self.filter_policy_scope, message_attributes, message)

    utils.FilterPolicyMatcher.matches = matches  # type: ignore[method-assign]

    original = models.Subscription.publish

    def publish(
        self: Any,
        message: str,
        message_id: str,
        *,
        subject: str | None = None,
        message_attributes: Any = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        router = _router
        if router is None or self.protocol != "lambda":
            return original(
                self,
                message,
                message_id,
                subject=subject,
                message_attributes=message_attributes,
                group_id=group_id,
                deduplication_id=deduplication_id,
                message_structure=message_structure,
            )
        if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(
            message_attributes, message
        ):
            return None
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        router.on_sns_to_lambda(
            subscription_arn=self.arn,
            endpoint=self.endpoint,
            topic_arn=self.topic.arn,
            message=message,
            message_id=message_id,
            subject=subject,
            attributes=message_attributes,
            redrive_policy=self.attributes.get("RedrivePolicy"),
        )
        return None

    models.Subscription.publish = publish  # type: ignore[method-assign,assignment]


# --- EventBridge --------------------------------------------------------------------------------------------------


def normalized_event(event: dict[str, Any], router: SourceRouter) -> dict[str, Any]:
    """moto's event message (epoch `time`, `ingestion-time`) → the event as EventBridge delivers it."""
    when = event.get("time")
    if isinstance(when, str):
        try:
            when = float(when)
        except ValueError:
            when = None
    out = router.eventbridge_event(
        source=str(event.get("source", "")),
        detail_type=str(event.get("detail-type", "")),
        detail=event.get("detail", {}),
        resources=list(event.get("resources") or []),
        event_time=when if isinstance(when, (int, float)) else None,
        event_id=str(event.get("id") or uuid.uuid4()),
        region=str(event.get("region") or router.region),
        account=str(event.get("account") or router.account_id),
    )
    if isinstance(event.get("time"), str) and when is None:
        out["time"] = event["time"]
    if "replay-name" in event:
        out["replay-name"] = event["replay-name"]
    return out


def _is_archive(arn: str) -> bool:
    """moto's archives are rules whose target is `arn:aws:events:<region>:::` (no resource)."""
    parts = arn.split(":")
    return len(parts) >= 6 and parts[2] == "events" and not parts[5]


def _patch_events() -> None:
    from moto.events import models

    original = models.Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        router = _router
        if router is None:
            return original(self, original_event, transform_input)
        if self.state != "ENABLED":
            return None
        raw = self.event_pattern.dump()
        if not raw:
            return None  # a schedule-only rule: the local scheduler fires it, events never match it
        event = normalized_event(dict(original_event), router)
        if not router.rule_matches(raw, event):
            return None
        archives = [t for t in self.targets if _is_archive(str(t.get("Arn", "")))]
        others = [t for t in self.targets if t not in archives]
        if archives:  # EventBridge archives: moto's own handling
            saved, self.targets = self.targets, archives
            try:
                original(self, original_event, transform_input)
            finally:
                self.targets = saved
        router.on_rule_match(self.arn, self.name, others, event)
        return None

    models.Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


# --- S3 -----------------------------------------------------------------------------------------------------------

_REASONS = {
    "Put": "PutObject",
    "Post": "POST Object",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
    "Delete": "DeleteObject",
    "DeleteMarkerCreated": "DeleteObject",
}


def _sequencer(now: float) -> str:
    """S3's `sequencer`: hex that grows with the event's time (µs), then a counter for events of the same µs."""
    return f"{int(now * 1_000_000):X}{next(_SEQUENCE) & 0xFFFF:04X}"


_SEQUENCE = itertools.count()


def s3_record(
    event_name: str, bucket: Any, key: Any, *, configuration_id: str, region: str, account: str, now: float
) -> dict[str, Any]:
    """One S3 event record as S3 sends it ("Event message structure", eventVersion 2.1), at `now` (epoch s)."""
    name = event_name[3:] if event_name.startswith("s3:") else event_name
    removed = name.startswith("ObjectRemoved")
    obj: dict[str, Any] = {"key": quote_plus(key.name, safe="/")}  # "URL encoded" with + for spaces; / kept
    if not removed:
        obj.update(size=key.size, eTag=key.etag.replace('"', ""))
    version = getattr(key, "version_id", None)
    if version and version != "null":
        obj["versionId"] = version
    obj["sequencer"] = _sequencer(now)
    request_id = uuid.uuid4().hex[:16].upper()
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": iso_ms(now),
        "eventName": name,
        "userIdentity": {"principalId": f"AWS:{account}"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": request_id, "x-amz-id-2": uuid.uuid4().hex},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": bucket.name,
                "ownerIdentity": {"principalId": account},
                "arn": f"arn:aws:s3:::{bucket.name}",
            },
            "object": obj,
        },
    }


def s3_eventbridge_detail(
    event_name: str, bucket: Any, key: Any, account: str, now: float
) -> tuple[str, dict[str, Any]]:
    """(detail-type, detail) of the event S3 sends to EventBridge ("Amazon S3 Event Notifications with
    EventBridge")."""
    from moto.s3.notifications import _detail_type

    detail_type = _detail_type(event_name)
    name = event_name[3:] if event_name.startswith("s3:") else event_name
    obj: dict[str, Any] = {"key": key.name, "sequencer": _sequencer(now)}
    if not name.startswith("ObjectRemoved"):
        obj.update(size=key.size, etag=key.etag.replace('"', ""))
    version = getattr(key, "version_id", None)
    if version and version != "null":
        obj["version-id"] = version
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account,
        "source-ip-address": "127.0.0.1",
        "reason": _REASONS.get(name.split(":", 1)[-1], name),
    }
    if name.startswith("ObjectRemoved"):
        detail["deletion-type"] = (
            "Delete Marker Created" if name.endswith("DeleteMarkerCreated") else "Permanently Deleted"
        )
    return detail_type, detail


def _patch_s3() -> None:
    from moto.s3 import notifications

    original = notifications.send_event

    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        router = _router
        if router is None:
            return original(account_id, event_name, bucket, key)
        config = bucket.notification_configuration
        if config is None:
            return None
        name = str(getattr(event_name, "value", event_name))
        region = bucket.region_name
        now = router.epoch.now()  # the event's time, for the records and the EventBridge event alike
        deliveries: list[tuple[str, str]] = []
        for group in (config.cloud_function, config.queue, config.topic):
            for notification in group:
                if notification.matches(name, key.name):
                    record = s3_record(
                        name, bucket, key, configuration_id=notification.id, region=region, account=account_id, now=now
                    )
                    deliveries.append((notification.arn, json.dumps({"Records": [record]})))
        eventbridge = None
        if config.event_bridge is not None:
            try:
                detail_type, detail = s3_eventbridge_detail(name, bucket, key, account_id, now)
            except ValueError:
                detail_type = ""
            if detail_type:
                eventbridge = router.eventbridge_event(
                    source="aws.s3",
                    detail_type=detail_type,
                    detail=detail,
                    resources=[f"arn:aws:s3:::{bucket.name}"],
                    region=region,
                    account=account_id,
                    event_time=now,
                )
        router.on_s3_records(deliveries, eventbridge)
        return None

    notifications.send_event = send_event  # moto.s3.models calls it through the module, so this reaches it
