"""Filter patterns: the user guide's examples, and AWS's errors for bad ones."""

from __future__ import annotations

import pytest

from lambdalab.logs.filterpattern import compile_pattern
from lambdalab.logs.store import LogsError

EVENTS = [
    "[ERROR] 400 BAD REQUEST",
    "[ERROR] 401 UNAUTHORIZED REQUEST",
    "[WARNING] 500 INTERNAL SERVER ERROR",
    "[INFO] 200 OK Exiting",
    '{"level": "ERROR", "latency": 120, "cold": true, "user": {"id": "u1"}, "tags": ["a", "b"]}',
    '{"level": "INFO", "latency": "80", "cold": false, "user": {"id": "u2"}, "tags": []}',
    '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 1534',
    '127.0.0.1 - bob [10/Oct/2000:13:25:16 -0700] "GET /index.html HTTP/1.0" 200 2326',
]


def matching(pattern: str) -> list[int]:
    matcher = compile_pattern(pattern)
    return [i for i, e in enumerate(EVENTS) if matcher(e)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("", list(range(8))),
        ("ERROR", [0, 1, 2, 4]),
        ("ERROR REQUEST", [0, 1]),
        ('"BAD REQUEST"', [0]),
        ("ERROR -UNAUTHORIZED", [0, 2, 4]),
        ("?UNAUTHORIZED ?Exiting", [1, 3]),
        ("%4[0-9]{2}%", [0, 1, 6]),
        ('{ $.level = "ERROR" }', [4]),
        ("{ $.latency > 100 }", [4]),
        ("{ $.latency < 100 }", [5]),  # a quoted number compares as a number
        ("{ $.cold IS TRUE }", [4]),
        ("{ $.cold IS FALSE || $.latency >= 120 }", [4, 5]),
        ('{ ($.level = "INFO") && ($.user.id = "u*") }', [5]),
        ('{ $.tags[0] = "a" }', [4]),
        ('{ $.tags[*] = "b" }', [4]),
        ("{ $.missing NOT EXISTS }", [4, 5]),
        ('{ $.level != "ERROR" }', [5]),
        ("[ip, identity, user, timestamp, request, status_code = 4*, bytes]", [6]),
        ("[ip, identity, user, timestamp, request, status_code, bytes > 2000]", [7]),
        ("[ip, ..., status = 404 || status = 200, bytes]", [6, 7]),
        ('[..., request = "*index*", status, bytes]', [7]),
    ],
)
def test_user_guide_patterns(pattern: str, expected: list[int]) -> None:
    assert matching(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ('{ $.level = "ERROR"', "If a filter pattern starts with '{' it must end with '}'"),
        ('""', "Invalid character(s) in term '\"\"'"),
        ("{ level = 1 }", "Invalid filter pattern"),
        ("{ $.a > }", "Invalid filter pattern"),
        ('{ $.a > "x" }', "Invalid filter pattern"),
        ("[a, b = ]", "Invalid filter pattern"),
        ("%(%", "Invalid regex pattern: %(%"),
    ],
)
def test_bad_patterns_are_aws_errors(pattern: str, message: str) -> None:
    with pytest.raises(LogsError) as raised:
        compile_pattern(pattern)
    assert raised.value.code == "InvalidParameterException"
    assert raised.value.message == message
