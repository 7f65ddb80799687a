"""moto's SQS under concurrent sends and deletes: nothing lost once made thread-safe."""

from __future__ import annotations

import threading

import boto3
import pytest
from moto import mock_aws

from lambdalab.clock import EpochClock
from lambdalab.sqs_moto import make_moto_sqs_thread_safe, speed_up_moto_sqs

SENDERS, CONSUMERS, PER_SENDER = 4, 4, 300


def churn() -> tuple[set[str], set[str], set[str]]:
    """Senders and consumers (receive + delete) on one queue at once: (sent, deleted, left) message ids."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sent: set[str] = set()
    deleted: set[str] = set()
    lock = threading.Lock()
    done_sending = threading.Event()

    def send(worker: int) -> None:
        client = boto3.client("sqs", region_name="us-east-1")
        for start in range(0, PER_SENDER, 10):
            entries = [{"Id": str(i), "MessageBody": f"{worker}-{start + i}"} for i in range(10)]
            answer = client.send_message_batch(QueueUrl=url, Entries=entries)
            with lock:
                sent.update(m["MessageId"] for m in answer["Successful"])

    def consume() -> None:
        client = boto3.client("sqs", region_name="us-east-1")
        while not done_sending.is_set():
            got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
            for message in got:
                client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                with lock:
                    deleted.add(message["MessageId"])

    senders = [threading.Thread(target=send, args=(w,)) for w in range(SENDERS)]
    consumers = [threading.Thread(target=consume) for _ in range(CONSUMERS)]
    for thread in consumers + senders:
        thread.start()
    for thread in senders:
        thread.join()
    done_sending.set()
    for thread in consumers:
        thread.join()
    left: set[str] = set()
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages", []):
        left.update(m["MessageId"] for m in got)
    return sent, deleted, left


@pytest.mark.slow
def test_concurrent_sends_and_deletes_lose_nothing() -> None:
    speed_up_moto_sqs(EpochClock())
    make_moto_sqs_thread_safe()
    with mock_aws():
        sent, deleted, left = churn()
    assert len(sent) == SENDERS * PER_SENDER
    assert deleted | left == sent, f"{len(sent - deleted - left)} messages lost"
    assert not deleted & left
