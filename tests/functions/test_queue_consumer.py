"""Tests for functions/queue_consumer: partial batch responses and the per-batch log line."""

import json
import time

import pytest

from tests.support.events import load_event


@pytest.fixture
def consumer(load_function):
    return load_function("queue_consumer")


def _batch_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_a_clean_batch_reports_no_failures(consumer, capsys):
    result = consumer.lambda_handler(load_event("sqs-batch"), None)
    assert result == {"batchItemFailures": []}
    (line,) = _batch_lines(capsys.readouterr().out)
    assert line["messages"] == 4
    assert line["failed"] == 0
    assert line["environment_id"] == consumer.ENVIRONMENT_ID


def test_only_messages_asking_to_fail_are_reported(consumer):
    # GIVEN a batch of six where messages 2 and 5 carry "fail": true
    event = load_event("sqs-batch-with-failures")
    expected = [
        {"itemIdentifier": record["messageId"]} for record in event["Records"] if json.loads(record["body"])["fail"]
    ]
    # WHEN the consumer handles it
    result = consumer.lambda_handler(event, None)
    # THEN exactly those two go back to the queue
    assert len(expected) == 2
    assert result == {"batchItemFailures": expected}


def test_log_line_counts_batches_and_messages_per_environment(consumer, capsys):
    consumer.lambda_handler(load_event("sqs-batch"), None)
    consumer.lambda_handler(load_event("sqs-batch-with-failures"), None)
    first, second = _batch_lines(capsys.readouterr().out)
    assert first["cold_start"] is True and second["cold_start"] is False
    assert second["environment_batches"] == 2
    assert second["environment_messages"] == 4 + 6
    assert second["failed"] == 2
    assert first["environment_id"] == second["environment_id"]


def test_log_line_never_contains_the_event(consumer, capsys):
    event = load_event("sqs-batch")
    consumer.lambda_handler(event, None)
    out = capsys.readouterr().out
    assert all(record["receiptHandle"] not in out and record["body"] not in out for record in event["Records"])


def test_message_sleep_is_simulated_work(consumer):
    event = load_event("sqs-batch")
    event["Records"] = event["Records"][:1]
    event["Records"][0]["body"] = json.dumps({"sleep": 0.05})
    started = time.perf_counter()
    assert consumer.lambda_handler(event, None) == {"batchItemFailures": []}
    assert time.perf_counter() - started >= 0.05


def test_an_empty_event_is_an_empty_batch(consumer):
    assert consumer.lambda_handler({"Records": []}, None) == {"batchItemFailures": []}
