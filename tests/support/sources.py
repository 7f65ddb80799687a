"""The event-source stack (tests/integration/sources/) on one local cloud per test session, and its ledger.

The SNS, EventBridge, Scheduler, S3, Kinesis, DynamoDB Streams, HTTP API and SQS-filter test files all use the same
cloud (session scope, via tests/integration/conftest.py): one start of ~10 s instead of one per file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cloud import RunningCloud

HERE = Path(__file__).resolve().parents[1] / "integration" / "sources"
TEMPLATE = HERE / "template.yaml"
STACK = "lambdalab-sources"
TIME_SCALE = "0.01"  # async retries 0.6 s, rate(5 minutes) every 3 s, metric periods 0.6 s


@dataclass
class Sources:
    cloud: RunningCloud
    ledger: Path
    out: dict[str, str]

    def entries(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        """What function `name` (its LEDGER_NAME) recorded, in the order it recorded it."""
        folder = self.ledger / name
        if not folder.exists():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            if kind is None or f"-{kind}-" in path.name:
                out.append(json.loads(path.read_text()))
        return out

    def wait_entries(
        self, name: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0, what: str = ""
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        entries = self.entries(name)
        while time.monotonic() < deadline:
            entries = self.entries(name)
            if predicate(entries):
                return entries
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or name}; have {len(entries)} entries")

    def records_of(self, function_name: str, at_least: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The function's invocation records, once at least `at_least` were written (they are written in the
        background, so they can trail the function's own ledger)."""
        records = self.cloud.wait_records(
            lambda rs: sum(r.get("function_name") == function_name for r in rs) >= at_least,
            timeout=timeout,
            what=f"{at_least} invocation records of {function_name}",
        )
        return [r for r in records if r.get("function_name") == function_name]


def drain(sqs: Any, url: str, *, wait_s: float = 10.0, expect: int | None = None) -> list[dict[str, Any]]:
    """Receive (and delete) messages until `expect` arrived or nothing more comes within a short wait."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (expect is None or len(got) < expect):
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        for message in answer:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        got += answer
        if not answer and expect is None and got:
            break
    return got
