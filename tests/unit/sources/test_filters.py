"""Lambda FilterCriteria on SQS messages and stream records: the body-format rules, the data keys, validation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lambdalab.awslambda.core.esm import SourceKind, settings_from
from lambdalab.awslambda.core.exceptions import InvalidParameterValueException
from lambdalab.sources.filters import FilterCriteriaError, compile_filter_criteria


def criteria(*patterns: Any) -> dict[str, Any]:
    return {"Filters": [{"Pattern": p if isinstance(p, str) else json.dumps(p)} for p in patterns]}


def sqs_record(body: str, **attributes: str) -> dict[str, Any]:
    return {"messageId": "m", "body": body, "attributes": attributes, "messageAttributes": {}, "eventSource": "aws:sqs"}


def test_json_body_against_a_json_pattern() -> None:
    filters = compile_filter_criteria(criteria({"body": {"kind": ["order"], "qty": [{"numeric": [">", 2]}]}}), "sqs")
    assert filters.matches(sqs_record('{"kind": "order", "qty": 3}'))
    assert not filters.matches(sqs_record('{"kind": "order", "qty": 1}'))
    assert not filters.matches(sqs_record("kind=order"))  # a plain body against a JSON pattern: dropped


def test_plain_body_against_a_plain_pattern() -> None:
    filters = compile_filter_criteria(criteria({"body": [{"prefix": "ERROR"}]}), "sqs")
    assert filters.matches(sqs_record("ERROR disk full"))
    assert not filters.matches(sqs_record("INFO ok"))
    assert not filters.matches(sqs_record('{"msg": "ERROR"}'))  # a JSON body against a plain pattern: dropped


def test_metadata_only_patterns_ignore_the_body_format() -> None:
    filters = compile_filter_criteria(criteria({"attributes": {"ApproximateReceiveCount": ["1"]}}), "sqs")
    assert filters.matches(sqs_record("plain", ApproximateReceiveCount="1"))
    assert filters.matches(sqs_record('{"a": 1}', ApproximateReceiveCount="1"))
    assert not filters.matches(sqs_record("plain", ApproximateReceiveCount="2"))


def test_filters_are_or_ed_and_no_filters_keep_everything() -> None:
    filters = compile_filter_criteria(criteria({"body": {"a": [1]}}, {"body": {"b": [2]}}), "sqs")
    assert filters.matches(sqs_record('{"b": 2}'))
    assert not filters.matches(sqs_record('{"c": 3}'))
    assert compile_filter_criteria({}, "sqs").matches(sqs_record("anything"))
    assert not compile_filter_criteria({}, "sqs")


def test_kinesis_data_is_decoded_and_matched_under_data() -> None:
    def record(data: bytes) -> dict[str, Any]:
        return {"kinesis": {"partitionKey": "1", "data": base64.b64encode(data).decode()}, "eventSource": "aws:kinesis"}

    filters = compile_filter_criteria(criteria({"data": {"order": {"type": ["buy"]}}}), "kinesis")
    assert filters.matches(record(b'{"record": 1, "order": {"type": "buy"}}'))
    assert not filters.matches(record(b'{"order": {"type": "sell"}}'))
    assert not filters.matches(record(b"not json"))


def test_dynamodb_filters_on_the_dynamodb_key_and_event_name() -> None:
    filters = compile_filter_criteria(
        criteria({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["open"]}}}}), "dynamodb"
    )
    insert = {"eventName": "INSERT", "dynamodb": {"NewImage": {"status": {"S": "open"}}}}
    assert filters.matches(insert)
    assert not filters.matches({**insert, "eventName": "MODIFY"})


@pytest.mark.parametrize(
    ("value", "source", "message"),
    [
        ({"Filters": [{"Pattern": "{nope"}]}, "sqs", "Invalid filter pattern definition."),
        ({"Filters": [{"Pattern": {"a": [1]}}]}, "sqs", "Invalid filter pattern definition."),
        ({"Filters": [{"Pattern": '{"a": "x"}'}]}, "sqs", "Invalid filter pattern definition."),
        ({"Filters": [{"Pattern": '{"a": [{"wildcard": "x*"}]}'}]}, "sqs", "wildcard"),
        (criteria(*[{"a": [i]} for i in range(6)]), "sqs", "exceeds the limit of 5"),
        (criteria({"data": ["plain"]}), "kinesis", "must be a JSON object"),
        ("nope", "sqs", "FilterCriteria must be an object"),
    ],
)
def test_bad_filter_criteria_are_refused(value: Any, source: str, message: str) -> None:
    with pytest.raises(FilterCriteriaError, match=message):
        compile_filter_criteria(value, source)


def test_mapping_settings_carry_filters_and_report_them_back() -> None:
    given = criteria({"body": {"a": [1]}})
    settings = settings_from({"FilterCriteria": given, "MetricsConfig": {"Metrics": ["EventCount"]}})
    assert settings.filters.criteria == given and settings.metrics == ("EventCount",)
    with pytest.raises(InvalidParameterValueException, match="Invalid filter pattern definition"):
        settings_from({"FilterCriteria": {"Filters": [{"Pattern": "[]"}]}})
    with pytest.raises(InvalidParameterValueException, match=r"metricsConfig\.metrics"):
        settings_from({"MetricsConfig": {"Metrics": ["KafkaMetrics"]}})
    cleared = settings_from({"FilterCriteria": {}}, base=settings)
    assert not cleared.filters and cleared.filters.criteria == {}


def test_stream_settings_validation() -> None:
    kinesis = SourceKind.KINESIS
    base = {"StartingPosition": "TRIM_HORIZON"}
    parsed = settings_from({**base, "ParallelizationFactor": 3, "BisectBatchOnFunctionError": True}, source=kinesis)
    assert parsed.batch_size == 100 and parsed.parallelization_factor == 3 and parsed.maximum_retry_attempts == -1
    for body, message in [
        ({}, "StartingPosition is required"),
        ({**base, "ParallelizationFactor": 11}, "parallelizationFactor"),
        ({**base, "MaximumRecordAgeInSeconds": 30}, "maximumRecordAgeInSeconds"),
        ({**base, "MaximumRetryAttempts": 10001}, "maximumRetryAttempts"),
        ({**base, "ScalingConfig": {"MaximumConcurrency": 5}}, "ScalingConfig is supported for Amazon SQS"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "StartingPositionTimestamp is required"),
        ({**base, "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:s3:::b"}}}, "S3 destinations"),
    ]:
        with pytest.raises(InvalidParameterValueException, match=message):
            settings_from(body, source=kinesis)
    with pytest.raises(InvalidParameterValueException, match="AT_TIMESTAMP for DynamoDB"):
        settings_from({"StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": 1}, source=SourceKind.DYNAMODB)
    with pytest.raises(
        InvalidParameterValueException, match="Unsupported startingPosition parameter for an Amazon SQS"
    ):
        settings_from(base)
