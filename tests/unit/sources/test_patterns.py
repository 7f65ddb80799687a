"""The one pattern matcher: EventBridge event patterns, Lambda filter criteria, SNS filter policies, and where they
differ. Examples are the services' documented ones (EventBridge content filtering, aws/event-ruler's README, the SNS
developer guide's string and numeric matching pages, Lambda's event filtering page)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdalab.sources.patterns import Dialect, PatternError, compile_pattern, loads, sns_attribute_document

EB = Dialect.EVENTBRIDGE
LAMBDA = Dialect.LAMBDA
SNS = Dialect.SNS_ATTRIBUTES
SNS_BODY = Dialect.SNS_BODY

EC2_EVENT = json.dumps(
    {
        "version": "0",
        "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "012345679012",
        "time": "2017-10-02T16:24:49Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
        "detail": {
            "c-count": 5,
            "d-count": 3,
            "x-limit": 301.8,
            "source-ip": "10.0.0.33",
            "instance-id": "i-000000aaaaaa00000",
            "state": "running",
        },
    }
)


def matches(pattern: Any, event: Any, dialect: Dialect = EB) -> bool:
    return compile_pattern(json.dumps(pattern) if not isinstance(pattern, str) else pattern, dialect).matches(
        loads(json.dumps(event)) if not isinstance(event, str) else loads(event)
    )


@pytest.mark.parametrize("dialect", [EB, LAMBDA, SNS_BODY])
@pytest.mark.parametrize(
    "pattern",
    [
        {
            "detail-type": ["EC2 Instance State-change Notification"],
            "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
            "detail": {"state": ["initializing", "running"]},
        },
        {"time": [{"prefix": "2017-10-02"}]},
        {"source": [{"prefix": {"equals-ignore-case": "AWS.E"}}, "x"]},
        {"source": [{"suffix": "ec2"}]},
        {"source": [{"suffix": {"equals-ignore-case": "EC2"}}]},
        {"source": [{"equals-ignore-case": "AWS.EC2"}]},
        {"detail": {"state": [{"anything-but": "initializing"}]}},
        {"detail": {"x-limit": [{"anything-but": 123}]}},
        {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}},
        {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}},
        {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}], "d-count": [{"numeric": ["<", 10]}]}},
        {"detail": {"x-limit": [{"numeric": ["=", 3.018e2]}]}},
        {"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}},
        {"detail": {"c-count": [{"exists": True}], "nope": [{"exists": False}]}},
        {"source": ["aws.ec2"], "$or": [{"detail": {"state": ["stopped"]}}, {"detail": {"c-count": [5]}}]},
    ],
)
def test_documented_patterns_match_the_sample_event(pattern: dict[str, Any], dialect: Dialect) -> None:
    assert matches(pattern, EC2_EVENT, dialect)


@pytest.mark.parametrize(
    "pattern",
    [
        {"detail": {"state": ["stopped"]}},
        {"source": [{"prefix": "EC2"}]},  # prefix is case sensitive
        {"detail": {"state": [{"anything-but": ["running"]}]}},
        {"detail": {"c-count": [{"numeric": [">", 5]}]}},
        {"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}},
        {"detail": {"c-count": [{"exists": False}]}},
        {"detail": {"missing": [{"exists": True}]}},
        {"detail": {"missing": [{"anything-but": "x"}]}},  # anything-but needs the field
        {"source": ["aws.ec2"], "detail": {"state": ["pending"]}},  # fields are AND-ed
        {"$or": [{"source": ["aws.s3"]}, {"detail": {"state": ["stopped"]}}]},
    ],
)
def test_patterns_that_do_not_match(pattern: dict[str, Any]) -> None:
    assert not matches(pattern, EC2_EVENT)


def test_event_arrays_match_any_element_and_objects_element_by_element() -> None:
    event = {
        "employees": [
            {"firstName": "John", "lastName": "Doe"},
            {"firstName": "Anna", "lastName": "Smith"},
            {"firstName": "Peter", "lastName": "Jones"},
        ],
        "tags": ["a", ["b", "c"]],
    }
    assert matches({"employees": {"firstName": ["Anna"]}}, event)
    assert matches({"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}, event)
    # event-ruler's rulesForJSONEvent: two fields never match in two different elements of one array
    assert not matches({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}, event)
    assert matches({"tags": ["c"]}, event)  # nested arrays are flattened
    assert matches({"tags": [{"anything-but": ["a", "b"]}]}, event)  # c is neither
    assert not matches({"tags": [{"anything-but": ["a", "b", "c"]}]}, event)


def test_null_and_empty_string_are_distinct_values() -> None:
    event = {"detail": {"eventVersion": "", "responseElements": None}}
    assert matches({"detail": {"eventVersion": [""]}}, event)
    assert matches({"detail": {"responseElements": [None]}}, event)
    assert not matches({"detail": {"responseElements": [""]}}, event)
    assert not matches({"detail": {"eventVersion": [None]}}, event)
    assert matches({"detail": {"responseElements": [{"exists": True}]}}, event)  # null is a leaf value


def test_exists_only_looks_at_leaf_nodes() -> None:
    event = {"detail": {"c-count": {"c1": 100}}}
    assert matches({"detail": {"c-count": [{"exists": False}]}}, event)
    assert not matches({"detail": {"c-count": [{"exists": True}]}}, event)
    assert matches({"detail": {"c-count": {"c1": [{"exists": True}]}}}, event)
    assert matches({"nothing": {"below": [{"exists": False}]}}, event)  # an absent parent: absent leaf
    assert matches({"detail": {"list": [{"exists": False}]}}, {"detail": {"list": []}})  # no leaf values


def test_exact_numbers_compare_by_text_in_eventbridge_and_lambda_but_by_value_in_sns() -> None:
    for dialect in (EB, LAMBDA):
        assert matches('{"price": [300]}', '{"price": 300}', dialect)
        assert not matches('{"price": [300]}', '{"price": 300.0}', dialect)
        assert not matches('{"price": [3.0e2]}', '{"price": 300}', dialect)
        assert matches('{"price": [{"numeric": ["=", 300]}]}', '{"price": 3.0e2}', dialect)
    assert matches('{"price": [300]}', '{"price": 3.0e2}', SNS_BODY)
    assert matches('{"price": [{"numeric": ["=", 301.5]}]}', '{"price": 3.015e2}', SNS_BODY)


def test_strings_and_numbers_never_match_each_other() -> None:
    assert not matches({"n": ["5"]}, {"n": 5})
    assert not matches({"n": [5]}, {"n": "5"})
    assert not matches({"n": [{"numeric": [">", 1]}]}, {"n": "5"})
    assert not matches({"s": [{"prefix": "1"}]}, {"s": 12})
    assert not matches({"b": ["true"]}, {"b": True})
    assert matches({"b": [True]}, {"b": True})
    assert not matches({"b": [1]}, {"b": True})


def test_anything_but_forms() -> None:
    assert matches({"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": "eu-west-1"})
    assert not matches({"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": "us-east-1"})
    assert not matches({"r": [{"anything-but": {"prefix": "us-"}}]}, {"r": 5})  # strings only
    assert matches({"f": [{"anything-but": {"suffix": [".png", ".jpg"]}}]}, {"f": "a.gif"})
    assert not matches({"f": [{"anything-but": {"suffix": [".png", ".jpg"]}}]}, {"f": "a.jpg"})
    assert not matches({"s": [{"anything-but": {"equals-ignore-case": "Stopped"}}]}, {"s": "STOPPED"})
    assert matches({"p": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"p": "/usr/bin/x"})
    assert not matches({"p": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"p": "/usr/lib/x"})
    assert matches({"n": [{"anything-but": ["5"]}]}, {"n": 5})  # a number is not the string "5"


def test_wildcards_and_their_escapes() -> None:
    assert matches({"k": [{"wildcard": "dir/*.png"}]}, {"k": "dir/a/b.png"})
    assert not matches({"k": [{"wildcard": "dir/*.png"}]}, {"k": "dir/a.jpg"})
    assert matches({"k": [{"wildcard": "a\\*b"}]}, {"k": "a*b"})
    assert not matches({"k": [{"wildcard": "a\\*b"}]}, {"k": "axxb"})
    with pytest.raises(PatternError, match="consecutive"):
        compile_pattern({"k": [{"wildcard": "a**b"}]}, EB)
    with pytest.raises(PatternError, match="escape"):
        compile_pattern({"k": [{"wildcard": "a\\b"}]}, EB)


def test_cidr_matches_ipv4_and_ipv6_strings_only() -> None:
    assert matches({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8::1"})
    assert not matches({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "10.0.0.1"})
    assert not matches({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "not an address"})


def test_or_needs_two_objects_without_operators_otherwise_it_is_a_field() -> None:
    assert matches({"$or": {"a": ["1"]}}, {"$or": {"a": "1"}})  # legacy: a field named $or
    with pytest.raises(PatternError, match="unrecognized match type a"):  # one object: a field's match values
        compile_pattern({"$or": [{"a": ["1"]}]}, EB)
    nested = {
        "source": ["aws.cloudwatch"],
        "$or": [
            {"metricName": ["CPUUtilization"]},
            {"metricType": ["MetricType"], "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]},
        ],
    }
    assert matches(nested, {"source": "aws.cloudwatch", "metricType": "MetricType", "spaceId": 1000})
    assert not matches(nested, {"source": "aws.cloudwatch", "metricType": "MetricType", "spaceId": 1})
    assert matches(nested, {"source": "aws.cloudwatch", "metricName": "CPUUtilization"})


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ({"source": "aws.ec2"}, "must be an object or an array"),
        ({"a": [{"prefix": 5}]}, "must be a string"),
        ({"a": [{"numeric": [">", "x"]}]}, "must be a number"),
        ({"a": [{"numeric": ["<", 5, ">", 1]}]}, "lower bound"),
        ({"a": [{"numeric": [">", 5, "<", 1]}]}, "bottom must be less than top"),
        ({"a": [{"numeric": ["=", 5, "<", 9]}]}, "cannot be combined"),
        ({"a": [{"numeric": ["!=", 5]}]}, "unrecognized numeric range operator"),
        ({"a": [{"exists": "yes"}]}, "true or false"),
        ({"a": [{"anything-but": ["x", 1]}]}, "all values must be strings or all must be numbers"),
        ({"a": [{"nope": 1}]}, "unrecognized match type"),
        ({"a": [{"prefix": "x", "suffix": "y"}]}, "exactly one operator"),
        ({"a": [{"cidr": "10.0.0.300/8"}]}, "nonstandard IP address"),
        ({"a": [["nested"]]}, "nested arrays"),
    ],
)
def test_invalid_patterns_are_refused(pattern: Any, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        compile_pattern(pattern if isinstance(pattern, str) else json.dumps(pattern), EB)


def test_lambda_refuses_what_event_source_mappings_do_not_support() -> None:
    for pattern in (
        {"a": [{"wildcard": "x*"}]},
        {"a": [{"anything-but": {"prefix": "x"}}]},
        {"a": [{"anything-but": {"suffix": "x"}}]},
        {"a": [{"anything-but": {"equals-ignore-case": "x"}}]},
    ):
        compile_pattern(pattern, EB)
        with pytest.raises(PatternError, match="Lambda filters do not support"):
            compile_pattern(pattern, LAMBDA)
    compile_pattern({"a": [{"suffix": {"equals-ignore-case": "x"}}, {"anything-but": ["y"]}]}, LAMBDA)


def test_sns_attribute_policies_are_flat_and_have_no_wildcard() -> None:
    with pytest.raises(PatternError, match="cannot be nested"):
        compile_pattern({"store": {"name": ["x"]}}, SNS)
    compile_pattern({"store": {"name": ["x"]}}, SNS_BODY)
    with pytest.raises(PatternError, match="wildcard"):
        compile_pattern({"a": [{"wildcard": "x*"}]}, SNS)


def sns_matches(policy: dict[str, Any], attributes: dict[str, Any]) -> bool:
    return compile_pattern(json.dumps(policy), SNS).matches(sns_attribute_document(attributes))


def test_sns_attributes_typed_as_sns_documents() -> None:
    # SNS developer guide, "String value matching" and "Numeric value matching"
    interests = {"customer_interests": ["rugby", "tennis"]}
    assert sns_matches(interests, {"customer_interests": {"Type": "String", "Value": "rugby"}})
    assert sns_matches(interests, {"customer_interests": {"Type": "String.Array", "Value": '["rugby", "tennis"]'}})
    assert not sns_matches(interests, {"customer_interests": {"Type": "String", "Value": "baseball"}})
    assert not sns_matches(interests, {"customer_interests": {"Type": "String.Array", "Value": '["baseball"]'}})
    but = {"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}
    assert sns_matches(but, {"customer_interests": {"Type": "String.Array", "Value": '["rugby", "baseball"]'}})
    assert not sns_matches(but, {})  # anything-but needs the attribute ...
    assert sns_matches({"customer_interests": [{"anything-but": ["rugby"]}, {"exists": False}]}, {})  # ... or this
    price = {"price_usd": [{"numeric": ["=", 301.5]}]}
    assert sns_matches(price, {"price_usd": {"Type": "Number", "Value": "3.015e2"}})
    assert not sns_matches(price, {"price_usd": {"Type": "String", "Value": "301.5"}})  # a String is not a number
    assert sns_matches({"price": [{"anything-but": [100, 500]}]}, {"price": {"Type": "Number", "Value": "100.1"}})
    assert not sns_matches({"price": [{"anything-but": [100, 500]}]}, {"price": {"Type": "Number", "Value": "100"}})
    assert sns_matches({"price": [100]}, {"price": {"Type": "Number", "Value": "1.0e2"}})
    assert not sns_matches({"data": [{"exists": True}]}, {"data": {"Type": "Binary", "Value": "AAEC"}})


@given(
    st.text(min_size=0, max_size=8),
    st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=4),
)
def test_anything_but_is_the_negation_of_equals_on_a_present_string(value: str, excluded: list[str]) -> None:
    event = {"f": value}
    assert matches({"f": [{"anything-but": excluded}]}, event) == (not matches({"f": excluded}, event))


@given(st.dictionaries(st.sampled_from("abc"), st.sampled_from(["x", "y"]), max_size=3))
def test_or_of_two_objects_is_either_pattern(event: dict[str, str]) -> None:
    left, right = {"a": ["x"]}, {"b": ["y"], "c": ["x"]}
    assert matches({"$or": [left, right]}, event) == (matches(left, event) or matches(right, event))
