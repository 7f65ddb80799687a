"""Delivery retry schedules of the services that call functions asynchronously. Pure code: delays from attempt
numbers (and a random source for jitter), decisions from ages; the caller sleeps and sends.

* EventBridge (rule targets) and EventBridge Scheduler: `RetryPolicy` — MaximumRetryAttempts 0-185 (default 185),
  MaximumEventAgeInSeconds 60-86400 (default 86400); "exponential back off and jitter" [EventBridge "Event retry
  policy and using dead-letter queues"; Scheduler "RetryPolicy"]. Errors that retrying cannot fix (the target does
  not exist, no permission) go to the DLQ at once. The backoff's base and cap are not documented; 1 s doubling to
  at most 5 minutes, with full jitter, is used here.
* SNS to AWS-managed endpoints (Lambda, SQS): the fixed delivery policy of "Amazon SNS message delivery retries":
  3 immediate retries, 2 one second apart, 10 backing off from 1 s to 20 s, then 100,000 twenty seconds apart.
  Client-side errors (the function was deleted, no permission) are not retried.

Every delay and age is multiplied by the local cloud's `time_scale`.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

DEFAULT_MAX_RETRY_ATTEMPTS = 185
MAX_RETRY_ATTEMPTS = 185
DEFAULT_MAX_EVENT_AGE_S = 86400
MIN_EVENT_AGE_S = 60
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0

SNS_IMMEDIATE = 3
SNS_PRE_BACKOFF = 2
SNS_BACKOFF = 10
SNS_POST_BACKOFF = 100_000
SNS_MIN_DELAY_S = 1.0
SNS_MAX_DELAY_S = 20.0


class Exhausted(enum.StrEnum):
    """`EXHAUSTED_RETRY_CONDITION` of an EventBridge DLQ message."""

    RETRIES = "MaximumRetryAttempts"
    AGE = "MaximumEventAgeInSeconds"


@dataclass(frozen=True)
class RetryPolicy:
    maximum_retry_attempts: int = DEFAULT_MAX_RETRY_ATTEMPTS
    maximum_event_age_s: int = DEFAULT_MAX_EVENT_AGE_S

    def __post_init__(self) -> None:
        if not 0 <= self.maximum_retry_attempts <= MAX_RETRY_ATTEMPTS:
            raise ValueError(f"MaximumRetryAttempts must be from 0 to {MAX_RETRY_ATTEMPTS}")
        if not MIN_EVENT_AGE_S <= self.maximum_event_age_s <= DEFAULT_MAX_EVENT_AGE_S:
            raise ValueError(f"MaximumEventAgeInSeconds must be from {MIN_EVENT_AGE_S} to {DEFAULT_MAX_EVENT_AGE_S}")

    @classmethod
    def from_api(cls, value: dict[str, object] | None) -> RetryPolicy:
        value = value or {}
        retries = value.get("MaximumRetryAttempts", DEFAULT_MAX_RETRY_ATTEMPTS)
        age = value.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)
        return cls(int(str(retries)), int(str(age)))

    def decide(self, retries_done: int, age_s: float, time_scale: float = 1.0) -> Exhausted | None:
        """None: retry again; else why not. `age_s` is measured on the (scaled) local clock."""
        if retries_done >= self.maximum_retry_attempts:
            return Exhausted.RETRIES
        if age_s >= self.maximum_event_age_s * time_scale:
            return Exhausted.AGE
        return None

    def delay(self, retries_done: int, rng: random.Random, time_scale: float = 1.0) -> float:
        """Seconds before retry number `retries_done + 1`: full jitter over an exponential cap."""
        cap = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**retries_done)
        return rng.uniform(0.0, cap) * time_scale


def sns_delay(retry: int, time_scale: float = 1.0) -> float | None:
    """Seconds before SNS's retry number `retry` (1-based) to a Lambda or SQS endpoint; None when it gives up."""
    if retry < 1:
        raise ValueError("retries are numbered from 1")
    if retry <= SNS_IMMEDIATE:
        return 0.0
    retry -= SNS_IMMEDIATE
    if retry <= SNS_PRE_BACKOFF:
        return SNS_MIN_DELAY_S * time_scale
    retry -= SNS_PRE_BACKOFF
    if retry <= SNS_BACKOFF:
        ratio = (SNS_MAX_DELAY_S / SNS_MIN_DELAY_S) ** ((retry - 1) / (SNS_BACKOFF - 1))
        return SNS_MIN_DELAY_S * ratio * time_scale
    retry -= SNS_BACKOFF
    if retry <= SNS_POST_BACKOFF:
        return SNS_MAX_DELAY_S * time_scale
    return None
