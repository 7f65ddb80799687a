"""The runs are one period apart in schedule time, none is missing, and none comes after the schedule was deleted."""

import itertools
import json
import time
from datetime import datetime


def _drain(sqs, url: str) -> list[dict]:
    taken = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages") or []
        if not messages:
            return taken
        for message in messages:
            taken.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def check(stack) -> None:
    sqs, url = stack.client("sqs"), stack.name_of("Reports")
    time.sleep(1.0)  # the local scheduler re-reads schedules every 0.5 s; a run already started may still report
    runs = stack.received["Reports"] + _drain(sqs, url)
    times = sorted(datetime.fromisoformat(run["at"].replace("Z", "+00:00")) for run in runs)  # a standard queue
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)}
    assert len(times) >= 2 and gaps == {60.0}, times  # rate(1 minute), FlexibleTimeWindow OFF: every minute, once
    time.sleep(1.5)  # more than two periods of 0.6 s
    assert _drain(sqs, url) == [], "the schedule kept running after it was deleted"
