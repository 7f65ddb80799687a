"""Templates read as CloudFormation reads them: YAML 1.1 scalars, no timestamps, every short-form tag, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdalab.deploy.cfnyaml import MAX_EXPANDED_NODES, TemplateFormatError, parse_text
from lambdalab.deploy.template import load_document
from lambdalab.errors import UserError


def props(text: str) -> dict:
    document = parse_text("Resources:\n  R:\n    Type: X\n    Properties:\n" + text).document
    return document["Resources"]["R"]["Properties"]


def test_an_unquoted_date_is_the_text_cloudformation_makes_of_it() -> None:
    # GIVEN the IAM policy version as most templates in the wild write it
    p = props("      Version: 2012-10-17\n      At: 2001-12-14t21:59:43.10-05:00\n      Day: 2024-1-5\n")
    # THEN it is the string, and the whole document is JSON-serialisable (a date was not)
    assert p == {"Version": "2012-10-17", "At": "2001-12-14t21:59:43.10-05:00", "Day": "2024-1-5"}
    assert json.loads(json.dumps(p)) == p


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("yes", True),
        ("No", False),
        ("on", True),
        ("OFF", False),
        ("true", True),
        ("0777", 511),  # YAML 1.1 octal
        ("0x1F", 31),
        ("1_000", 1000),
        ("1:20", 80),  # sexagesimal
        ("010", 8),
        ("08", "08"),  # not octal, not decimal: a string
        ("1e3", "1e3"),  # YAML 1.1 floats need a dot
        ("1.5e3", "1.5e3"),  # ... and a signed exponent
        ("1.5e+3", 1500.0),
        ("2.0", 2.0),
        ("~", None),
        ("0o17", "0o17"),  # YAML 1.2 octal is a string in 1.1
        ("'0777'", "0777"),
        ("!!str 0777", "0777"),
    ],
)
def test_plain_scalars_resolve_as_yaml_1_1(scalar: str, value: object) -> None:
    assert props(f"      V: {scalar}\n")["V"] == value


def test_keys_become_strings_as_in_cloudformations_json() -> None:
    document = parse_text("Mappings:\n  Ports:\n    80: {Name: http}\n    yes: {Name: y}\nResources: {}\n").document
    assert document["Mappings"]["Ports"] == {"80": {"Name": "http"}, "true": {"Name": "y"}}


@pytest.mark.parametrize("tag", ["binary", "omap", "pairs", "set", "timestamp"])
def test_tags_cloudformation_does_not_support_are_refused_with_the_line(tag: str) -> None:
    with pytest.raises(TemplateFormatError) as caught:
        parse_text(f"Resources:\n  R:\n    Type: X\n    Properties:\n      V: !!{tag} x\n")
    assert caught.value.line == 5
    assert f"does not support the YAML tag !!{tag}" in caught.value.message


def test_every_short_form_tag_becomes_its_long_form() -> None:
    text = """
      A: !Ref P
      B: !GetAtt Res.Arn
      C: !GetAtt Res.Endpoint.Address
      D: !GetAtt [Res, Arn]
      E: !Sub "${AWS::Region}-x"
      F: !Sub ["${X}-y", {X: !Ref P}]
      G: !Select [0, !GetAZs ""]
      H: !Split [",", "a,b"]
      I: !Join ["-", [a, !Ref P]]
      J: !FindInMap [M, !Ref "AWS::Region", K]
      K: !ImportValue shared-export
      L: !Base64 text
      M: !Cidr ["10.0.0.0/16", 2, 8]
      N: !If [Cond, a, !Ref "AWS::NoValue"]
      O: !Condition Cond
      Q: !Equals [a, b]
      R: !Not [!Condition Cond]
      S: !And [!Condition Cond, !Condition Other]
      T: !Or [!Condition Cond, !Condition Other]
      U: !ToJsonString {a: 1}
      V: !Length [1, 2]
      W: !Transform {Name: AWS::Include, Parameters: {Location: s3://b/k}}
      X: !GetAtt
        - Res
        - !Ref Attr
    """
    p = props(text)
    assert p["A"] == {"Ref": "P"}
    assert p["B"] == {"Fn::GetAtt": ["Res", "Arn"]}
    assert p["C"] == {"Fn::GetAtt": ["Res", "Endpoint.Address"]}  # split at the first dot only
    assert p["D"] == {"Fn::GetAtt": ["Res", "Arn"]}
    assert p["E"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert p["F"] == {"Fn::Sub": ["${X}-y", {"X": {"Ref": "P"}}]}
    assert p["G"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert p["H"] == {"Fn::Split": [",", "a,b"]}
    assert p["I"] == {"Fn::Join": ["-", ["a", {"Ref": "P"}]]}
    assert p["J"] == {"Fn::FindInMap": ["M", {"Ref": "AWS::Region"}, "K"]}
    assert p["K"] == {"Fn::ImportValue": "shared-export"}
    assert p["L"] == {"Fn::Base64": "text"}
    assert p["M"] == {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}
    assert p["N"] == {"Fn::If": ["Cond", "a", {"Ref": "AWS::NoValue"}]}
    assert p["O"] == {"Condition": "Cond"}
    assert p["Q"] == {"Fn::Equals": ["a", "b"]}
    assert p["R"] == {"Fn::Not": [{"Condition": "Cond"}]}
    assert p["S"] == {"Fn::And": [{"Condition": "Cond"}, {"Condition": "Other"}]}
    assert p["T"] == {"Fn::Or": [{"Condition": "Cond"}, {"Condition": "Other"}]}
    assert p["U"] == {"Fn::ToJsonString": {"a": 1}}
    assert p["V"] == {"Fn::Length": [1, 2]}
    assert p["W"] == {"Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": "s3://b/k"}}}
    assert p["X"] == {"Fn::GetAtt": ["Res", {"Ref": "Attr"}]}


def test_a_tagged_scalar_keeps_its_text() -> None:
    # `!Ref 2012-10-17` or `!Sub 0777` is the text itself: a tag suppresses YAML's type resolution
    assert props("      A: !Sub 0777\n      B: !Ref yes\n") == {"A": {"Fn::Sub": "0777"}, "B": {"Ref": "yes"}}


def test_aliases_and_merge_keys_resolve_to_independent_copies() -> None:
    p = props("      A: &env {X: '1', Y: '2'}\n      B: *env\n      C: {<<: *env, Y: '3'}\n")
    assert p["A"] == p["B"] == {"X": "1", "Y": "2"}
    assert p["C"] == {"X": "1", "Y": "3"}
    p["A"]["X"] = "changed"  # the SAM transform mutates properties in place: an alias must not follow
    assert p["B"]["X"] == "1"


def test_alias_amplification_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(TemplateFormatError, match=f"more than {MAX_EXPANDED_NODES:,} values"):
        parse_text("\n".join(lines) + "\nResources: {}\n")


def test_duplicate_keys_are_kept_last_with_a_warning_naming_the_line() -> None:
    parsed = parse_text("Resources:\n  R:\n    Type: X\n    Type: Y\n")
    assert parsed.document["Resources"]["R"]["Type"] == "Y"
    assert parsed.warnings == [
        "line 4: duplicate key 'Type'; CloudFormation's behaviour is undefined, the last one is used"
    ]
    parsed = parse_text('{"Resources": {"R": {"Type": "X", "Type": "Y"}}}')
    assert parsed.format == "JSON"
    assert parsed.document["Resources"]["R"]["Type"] == "Y"
    assert len(parsed.warnings) == 1


def test_a_null_key_is_refused_with_the_line() -> None:
    with pytest.raises(TemplateFormatError) as caught:
        parse_text("Resources:\n  ~: 1\n")
    assert caught.value.line == 2
    assert "null key" in caught.value.message


def test_json_templates_parse_as_json_and_a_bad_one_names_line_and_column(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{\n  "Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"Version": "2012-10-17"}}}\n}')
    assert load_document(good)["Resources"]["Q"]["Properties"] == {"Version": "2012-10-17"}
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "Resources": {\n    "Q": {"Type": "AWS::SQS::Queue"]\n  }\n}\n')
    with pytest.raises(UserError) as caught:
        load_document(bad)
    assert caught.value.where == f"{bad}:3"
    assert caught.value.message == "Template format error: JSON not well-formed: Expecting ',' delimiter"


def test_a_yaml_flow_mapping_that_is_not_json_is_still_a_template() -> None:
    # as sam reads it: JSON first, then YAML (0777 is no JSON number, so YAML 1.1 makes it octal)
    parsed = parse_text("{Resources: {Q: {Type: AWS::SQS::Queue, Properties: {DelaySeconds: 0777}}}}")
    assert parsed.format == "YAML"
    assert parsed.document == {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": 511}}}}


def test_a_template_without_resources_gets_cloudformations_message(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("Description: nothing\n")
    with pytest.raises(UserError, match="At least one Resources member must be defined"):
        load_document(path)


def test_parsing_changes_nothing_global() -> None:
    import yaml

    # GIVEN a template was parsed
    parse_text("Resources:\n  R: !Ref X\n")
    # THEN PyYAML's own SafeLoader still makes dates and knows no CloudFormation tags
    assert type(yaml.safe_load("d: 2012-10-17")["d"]).__name__ == "date"
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("a: !Ref X")
