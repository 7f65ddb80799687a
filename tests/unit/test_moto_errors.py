"""AWS-shaped errors for what moto lacks: botocore's own parsers read them as the codes AWS uses."""

from __future__ import annotations

import pytest
from botocore.parsers import create_parser

from lambdalab.moto_errors import error_response, protocol_of


@pytest.mark.parametrize(
    ("protocol", "code"),
    [
        ("json", "UnknownOperationException"),
        ("query", "InvalidAction"),
        ("rest-xml", "NotImplemented"),
        ("rest-json", "UnknownOperationException"),
    ],
)
def test_botocore_reads_the_error_code_and_message(protocol: str, code: str) -> None:
    status, headers, body = error_response(protocol, not_implemented=True, message="x is not implemented")
    lowered = {k.lower(): v for k, v in headers.items()}  # botocore's response headers are case-insensitive
    parsed = create_parser(protocol).parse({"status_code": status, "headers": lowered, "body": body}, None)
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == "x is not implemented"
    assert status == 501  # not retried by botocore (it retries 500, 502, 503, 504)


def test_a_crash_is_an_internal_failure() -> None:
    status, headers, body = error_response("query", not_implemented=False, message="boom")
    parsed = create_parser("query").parse({"status_code": status, "headers": headers, "body": body}, None)
    assert status == 500 and parsed["Error"]["Code"] == "InternalFailure"


def test_the_protocol_comes_from_what_the_request_carries() -> None:
    assert protocol_of("kinesis", {"X-Amz-Target": "Kinesis_20131202.X"}, {}, None) == "json"
    assert protocol_of("sns", {}, {"Action": "Publish"}, None) == "query"
    assert protocol_of("sns", {}, {}, {"Action": "Publish"}) == "query"
    assert protocol_of("s3", {}, {}, None) == "rest-xml"
    assert protocol_of("scheduler", {}, {}, None) == "rest-json"
