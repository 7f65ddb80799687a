"""Intrinsic functions and conditions, resolved against a hand-made scope."""

from __future__ import annotations

import base64
import json

import pytest

from lambdalab.deploy.intrinsics import (
    NO_VALUE,
    IntrinsicError,
    MissingResource,
    Resolver,
    ResourceFacts,
    Scope,
    pseudo_parameters,
)


def make_resolver(**overrides) -> Resolver:
    scope = Scope(
        parameters={"Stage": "dev", "Count": "3", "Owners": ["alice", "bob"]},
        pseudo=pseudo_parameters(
            region="eu-west-1", account_id="111122223333", stack_name="lab", stack_id="arn:aws:cloudformation:x"
        ),
        mappings={"Sizes": {"dev": {"Memory": 128}, "prod": {"Memory": 1024}}},
        condition_definitions={
            "IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
            "IsProd": {"Fn::Not": [{"Condition": "IsDev"}]},
            "DevAndThree": {"Fn::And": [{"Condition": "IsDev"}, {"Fn::Equals": [{"Ref": "Count"}, 3]}]},
            "ProdOrThree": {"Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["3", {"Ref": "Count"}]}]},
        },
        resources={
            "Queue": ResourceFacts("http://q/lab-Queue", {"Arn": "arn:aws:sqs:eu-west-1:111122223333:lab-Queue"}),
            "Table": ResourceFacts("lab-Table", {"Arn": "arn:table", "StreamArn": "arn:stream"}),
        },
        declared_resources={"Queue": "AWS::SQS::Queue", "Table": "AWS::DynamoDB::Table", "Rule": "AWS::Events::Rule"},
        region="eu-west-1",
    )
    for key, value in overrides.items():
        setattr(scope, key, value)
    return Resolver(scope)


def test_ref_resolves_parameters_pseudo_parameters_and_physical_ids() -> None:
    resolver = make_resolver()
    assert resolver.resolve({"Ref": "Stage"}) == "dev"
    assert resolver.resolve({"Ref": "Owners"}) == ["alice", "bob"]
    assert resolver.resolve({"Ref": "AWS::Region"}) == "eu-west-1"
    assert resolver.resolve({"Ref": "AWS::AccountId"}) == "111122223333"
    assert resolver.resolve({"Ref": "AWS::StackName"}) == "lab"
    assert resolver.resolve({"Ref": "AWS::Partition"}) == "aws"
    assert resolver.resolve({"Ref": "AWS::URLSuffix"}) == "amazonaws.com"
    assert resolver.resolve({"Ref": "Queue"}) == "http://q/lab-Queue"


def test_no_value_removes_keys_and_list_items() -> None:
    resolver = make_resolver()
    value = {"Keep": 1, "Drop": {"Ref": "AWS::NoValue"}, "List": ["a", {"Ref": "AWS::NoValue"}, "b"]}
    assert resolver.resolve(value) == {"Keep": 1, "List": ["a", "b"]}
    assert resolver.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


def test_getatt_both_forms_and_unknown_attribute() -> None:
    resolver = make_resolver()
    assert resolver.resolve({"Fn::GetAtt": ["Table", "StreamArn"]}) == "arn:stream"
    assert resolver.resolve({"Fn::GetAtt": "Queue.Arn"}) == "arn:aws:sqs:eu-west-1:111122223333:lab-Queue"
    with pytest.raises(
        IntrinsicError, match=r"resource Table does not support attribute type Nope in Fn::GetAtt.*Arn, StreamArn"
    ):
        resolver.resolve({"Fn::GetAtt": ["Table", "Nope"]})


def test_sub_plain_with_variables_and_escape() -> None:
    resolver = make_resolver()
    assert (
        resolver.resolve({"Fn::Sub": "${AWS::StackName}-${Stage}-${Table}-${Queue.Arn}"})
        == "lab-dev-lab-Table-arn:aws:sqs:eu-west-1:111122223333:lab-Queue"
    )
    assert (
        resolver.resolve({"Fn::Sub": ["${Name} in ${AWS::Region}", {"Name": {"Ref": "Stage"}}]}) == "dev in eu-west-1"
    )
    assert resolver.resolve({"Fn::Sub": "${!Literal} and ${ Stage }"}) == "${Literal} and dev"


def test_join_select_split_getazs_base64_length() -> None:
    resolver = make_resolver()
    assert resolver.resolve({"Fn::Join": [":", ["a", {"Ref": "Stage"}, 3]]}) == "a:dev:3"
    assert resolver.resolve({"Fn::Join": [",", {"Ref": "Owners"}]}) == "alice,bob"
    assert resolver.resolve({"Fn::Select": ["1", {"Ref": "Owners"}]}) == "bob"
    assert resolver.resolve({"Fn::Select": [0, {"Fn::Split": ["/", "x/y/z"]}]}) == "x"
    assert resolver.resolve({"Fn::GetAZs": ""}) == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert len(resolver.resolve({"Fn::GetAZs": "us-east-1"})) == 6  # as EC2 lists them
    assert resolver.resolve({"Fn::GetAZs": {"Ref": "AWS::Region"}})[0] == "eu-west-1a"
    encoded = resolver.resolve({"Fn::Base64": {"Fn::Sub": "echo ${Stage}"}})
    assert base64.b64decode(encoded).decode() == "echo dev"
    assert resolver.resolve({"Fn::Length": {"Ref": "Owners"}}) == 2


def test_select_out_of_range_is_an_error_with_its_path() -> None:
    resolver = make_resolver()
    with pytest.raises(IntrinsicError) as caught:
        resolver.resolve({"Env": {"Fn::Select": [5, ["a"]]}}, "Properties")
    assert caught.value.path == "Properties.Env.Fn::Select"
    assert caught.value.message.startswith("Template error: Fn::Select cannot select nonexistent value at index 5")


def test_find_in_map_with_resolved_keys_and_default() -> None:
    resolver = make_resolver()
    assert resolver.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}) == 128
    assert resolver.resolve({"Fn::FindInMap": ["Sizes", "qa", "Memory", {"DefaultValue": 256}]}) == 256
    with pytest.raises(IntrinsicError, match=r"Template error: Unable to get mapping for Sizes::qa::Memory"):
        resolver.resolve({"Fn::FindInMap": ["Sizes", "qa", "Memory"]})
    with pytest.raises(IntrinsicError, match=r"Mapping named 'Nope' is not present in the 'Mappings' section"):
        resolver.resolve({"Fn::FindInMap": ["Nope", "qa", "Memory"]})


def test_to_json_string_resolves_inside_first() -> None:
    resolver = make_resolver()
    text = resolver.resolve({"Fn::ToJsonString": {"stage": {"Ref": "Stage"}, "list": [1, {"Ref": "AWS::NoValue"}]}})
    assert json.loads(text) == {"stage": "dev", "list": [1]}
    assert " " not in text


def test_cidr() -> None:
    assert make_resolver().resolve({"Fn::Cidr": ["10.0.0.0/16", 3, 8]}) == ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]


def test_conditions_equals_not_and_or() -> None:
    resolver = make_resolver()
    assert resolver.all_conditions() == {"IsDev": True, "IsProd": False, "DevAndThree": True, "ProdOrThree": True}
    assert resolver.resolve({"Fn::If": ["IsProd", "big", "small"]}) == "small"
    assert resolver.resolve({"Fn::If": ["IsDev", {"Ref": "AWS::NoValue"}, "x"]}) is NO_VALUE


def test_conditions_follow_the_parameters() -> None:
    resolver = make_resolver(parameters={"Stage": "prod", "Count": "4", "Owners": []})
    assert resolver.all_conditions() == {"IsDev": False, "IsProd": True, "DevAndThree": False, "ProdOrThree": True}


def test_condition_cycle_and_unknown_condition() -> None:
    resolver = make_resolver(condition_definitions={"A": {"Condition": "B"}, "B": {"Fn::Not": [{"Condition": "A"}]}})
    with pytest.raises(IntrinsicError, match="cycle: A → B → A"):
        resolver.condition("A")
    with pytest.raises(IntrinsicError, match="'Missing' is not defined"):
        make_resolver().resolve({"Fn::If": ["Missing", 1, 2]})


def test_unknown_reference_and_missing_resource() -> None:
    resolver = make_resolver()
    with pytest.raises(
        IntrinsicError, match=r"Unresolved resource dependencies \[Nothing\] in the Resources block"
    ) as caught:
        resolver.resolve({"A": {"Ref": "Nothing"}}, "Properties")
    assert caught.value.path == "Properties.A.Ref"
    with pytest.raises(IntrinsicError, match=r"\[Nothing\] in the Outputs block"):
        resolver.resolve({"Fn::Sub": "${Nothing.Arn}"}, "Outputs.X.Value")
    with pytest.raises(MissingResource) as missing:
        resolver.resolve({"Fn::GetAtt": ["Rule", "Arn"]})
    assert missing.value.logical_id == "Rule"


def test_unsupported_function_is_named_as_cloudformation_names_it() -> None:
    with pytest.raises(IntrinsicError, match=r"Encountered unsupported function: Fn::Nope Supported functions are: \["):
        make_resolver().resolve({"Fn::Nope": "x"})
    with pytest.raises(IntrinsicError, match="Fn::Contains can only be used in the Rules section"):
        make_resolver().resolve({"Fn::Contains": [["a"], "a"]})


def test_import_value_reads_the_exports_of_the_local_cloud() -> None:
    resolver = make_resolver(exports={"shared-queue-arn": "arn:aws:sqs:eu-west-1:111122223333:q"})
    assert (
        resolver.resolve({"Fn::ImportValue": {"Fn::Sub": "shared-queue-arn"}}) == "arn:aws:sqs:eu-west-1:111122223333:q"
    )
    with pytest.raises(IntrinsicError, match="No export named missing found in this local cloud"):
        resolver.resolve({"Fn::ImportValue": "missing"})
    with pytest.raises(IntrinsicError, match="No export named x found"):
        make_resolver().resolve({"Fn::ImportValue": "x"})


def test_a_reference_to_a_resource_whose_condition_is_false_says_so() -> None:
    resolver = make_resolver(inactive_resources={"ProdOnly": "IsProd"})
    with pytest.raises(IntrinsicError, match="ProdOnly is not created: its Condition IsProd is false"):
        resolver.resolve({"Ref": "ProdOnly"})


def test_a_lenient_resolver_leaves_a_named_placeholder_for_a_resource_not_created() -> None:
    # GIVEN Rule (AWS::Events::Rule) was declared but not created
    resolver = Resolver(make_resolver().scope, lenient=True)
    # WHEN an environment variable and a policy mention it
    value = resolver.resolve(
        {"Name": {"Ref": "Rule"}, "Arn": {"Fn::GetAtt": ["Rule", "Arn"]}, "S": {"Fn::Sub": "${Rule.Id}"}}
    )
    # THEN each reference reads as an unresolved name, and the resolver says which resources were missing
    assert value == {
        "Name": "lambdalab-not-created-Rule",
        "Arn": "arn:aws:events:eu-west-1:111122223333:lambdalab-not-created-Rule",
        "S": "lambdalab-not-created-Rule.Id",
    }
    assert set(resolver.missing) == {"Rule"}


def test_references_follow_only_the_chosen_if_branch() -> None:
    resolver = make_resolver()
    value = {
        "A": {"Ref": "Queue"},
        "B": {"Fn::Sub": "${Table.Arn}/${AWS::Region}/${!Skip}/${Var}"},
        "C": {"Fn::If": ["IsProd", {"Ref": "ProdThing"}, {"Fn::GetAtt": "DevThing.Arn"}]},
        "D": {"Fn::Sub": ["${X}", {"X": {"Ref": "FromVariables"}, "Var": "v"}]},
    }
    found = resolver.references(value)
    assert {"Queue", "Table", "DevThing", "FromVariables"} <= found
    assert "ProdThing" not in found
    assert "Skip" not in found and "X" not in found
