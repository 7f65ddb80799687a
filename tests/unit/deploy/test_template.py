"""Template loading, parameters, samconfig.toml and the offline SAM transform."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdalab.deploy.template import (
    LOCAL_CODE_BUCKET,
    ManagedPolicyLoader,
    load_document,
    load_template,
    parse_parameter_overrides,
    read_samconfig,
    resolve_parameters,
)
from lambdalab.errors import UserError

from .conftest import TEMPLATES

PARAMETERS = {
    "Parameters": {
        "Stage": {"Type": "String", "AllowedValues": ["dev", "prod"], "Default": "dev"},
        "Count": {"Type": "Number", "MinValue": 1, "MaxValue": 10, "Default": 2},
        "Name": {"Type": "String", "AllowedPattern": "[a-z]+", "MaxLength": 5, "Default": "lab"},
        "Zones": {"Type": "CommaDelimitedList", "Default": "a, b"},
        "Sizes": {"Type": "List<Number>", "Default": "1,2"},
        "Secret": {"Type": "String"},
    }
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- parameter overrides ---------------------------------------------------------------------------------------------


def test_parse_parameter_overrides_accepts_both_forms_and_keeps_equals_in_values() -> None:
    items = ["Stage=prod", "ParameterKey=Count,ParameterValue=4", "Query=a=b", "Empty="]
    assert parse_parameter_overrides(items) == {"Stage": "prod", "Count": "4", "Query": "a=b", "Empty": ""}


def test_parse_parameter_overrides_accepts_sam_style_strings() -> None:
    assert parse_parameter_overrides(["Stage=prod Count=3"]) == {"Stage": "prod", "Count": "3"}
    assert parse_parameter_overrides(['Note="two words" Stage=dev']) == {"Note": "two words", "Stage": "dev"}
    assert parse_parameter_overrides(["Note='quoted'"]) == {"Note": "quoted"}
    assert parse_parameter_overrides(["Note=two words"]) == {"Note": "two words"}  # one argv item, one value


@pytest.mark.parametrize("item", ["Stage", "=value", "Bad-Name=1"])
def test_parse_parameter_overrides_rejects_malformed_items(item: str) -> None:
    with pytest.raises(UserError, match="parameter override"):
        parse_parameter_overrides([item])


# --- samconfig.toml ----------------------------------------------------------------------------------------------


def test_samconfig_string_overrides_with_quotes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "samconfig.toml",
        'version = 0.1\n[default.deploy.parameters]\nstack_name = "my-lab"\n'
        'parameter_overrides = \'Stage="prod" Note="two words" Count=3 Odd="x Y=1"\'\n',
    )
    config = read_samconfig(path)
    assert config.stack_name == "my-lab"
    assert config.parameter_overrides == {"Stage": "prod", "Note": "two words", "Count": "3", "Odd": "x Y=1"}


def test_samconfig_list_overrides_and_global_fallback(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "samconfig.toml",
        '[default.global.parameters]\nstack_name = "from-global"\n'
        '[default.deploy.parameters]\nparameter_overrides = ["Stage=dev", "Count=7 Name=abc"]\n',
    )
    config = read_samconfig(path)
    assert config.stack_name == "from-global"
    assert config.parameter_overrides == {"Stage": "dev", "Count": "7", "Name": "abc"}


def test_samconfig_missing_is_empty_and_malformed_is_an_error(tmp_path: Path) -> None:
    assert read_samconfig(tmp_path / "absent.toml").parameter_overrides == {}
    bad = write(tmp_path, "samconfig.toml", "[default.deploy.parameters\n")
    with pytest.raises(UserError, match="not valid TOML") as caught:
        read_samconfig(bad)
    assert caught.value.where == str(bad)


# --- parameter values -------------------------------------------------------------------------------------------


def test_precedence_command_line_then_samconfig_then_default() -> None:
    values = resolve_parameters(PARAMETERS, {"Stage": "prod", "Secret": "s"}, {"Stage": "dev", "Count": "5"})
    assert values["Stage"] == "prod"  # command line beats samconfig
    assert values["Count"] == "5"  # samconfig beats Default
    assert values["Name"] == "lab"  # Default, as a string
    assert values["Zones"] == ["a", "b"]
    assert values["Sizes"] == ["1", "2"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"Stage": "qa"}, "parameter Stage: 'qa' is not one of the AllowedValues"),
        ({"Count": "11"}, "parameter Count: 11 is above MaxValue 10"),
        ({"Count": "0"}, "parameter Count: 0 is below MinValue 1"),
        ({"Count": "many"}, "parameter Count: 'many' is not a Number"),
        ({"Name": "ABC"}, "parameter Name: 'ABC' must match the AllowedPattern"),
        ({"Name": "abcdef"}, "parameter Name: 'abcdef' is longer than MaxLength 5"),
        ({"Sizes": "1,x"}, "parameter Sizes: 'x' is not a Number"),
        ({"Nope": "1"}, "unknown parameter.*Nope"),
    ],
)
def test_bad_values_name_the_parameter(override: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        resolve_parameters(PARAMETERS, {"Secret": "s", **override})


def test_missing_value_and_ssm_type_are_errors() -> None:
    with pytest.raises(UserError, match="parameter Secret has no value"):
        resolve_parameters(PARAMETERS, {})
    ssm = {"Parameters": {"Ami": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/x"}}}
    with pytest.raises(UserError, match=r"parameter Ami: type AWS::SSM::Parameter::Value<String>.*not supported"):
        resolve_parameters(ssm, {})


def test_unknown_samconfig_parameter_is_named() -> None:
    with pytest.raises(UserError, match=r"samconfig\.toml: unknown parameter.*Typo"):
        resolve_parameters(PARAMETERS, {"Secret": "s"}, {"Typo": "1"})


# --- loading and transforming --------------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line() -> None:
    path = TEMPLATES / "bad_yaml" / "template.yaml"
    with pytest.raises(UserError) as caught:
        load_document(path)
    # PyYAML notices the unclosed list on line 8; the message points back to where it started.
    assert caught.value.where == f"{path}:8"
    assert caught.value.message.startswith("Template format error: YAML not well-formed:")
    assert "flow sequence on line 7" in caught.value.message


def test_short_form_tags_are_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n"
        "      QueueName: !Sub '${AWS::StackName}-q'\n      Tags: [{Key: a, Value: !GetAtt X.Arn}]\n",
    )
    props = load_document(path)["Resources"]["Q"]["Properties"]
    assert props["QueueName"] == {"Fn::Sub": "${AWS::StackName}-q"}
    assert props["Tags"][0]["Value"] == {"Fn::GetAtt": ["X", "Arn"]}


def test_sam_transform_keeps_local_code_and_inlines_the_state_machine_definition() -> None:
    path = TEMPLATES / "sam_full" / "template.yaml"
    loaded = load_template(
        path,
        parameter_values={"Stage": "dev", "ProvisionedCount": "2", "ReservedCount": "20", "Owners": ["a"]},
        region="us-east-1",
        account_id="123456789012",
        stack_name="t",
    )
    resources = loaded.transformed["Resources"]
    function = resources["OrdersFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    assert function["Properties"]["Code"]["S3Bucket"] == LOCAL_CODE_BUCKET
    assert loaded.code_dirs["OrdersFunction"] == (path.parent / "src" / "orders").resolve()
    machine = resources["Flow"]["Properties"]
    assert '"StartAt": "Call"' in str(machine["DefinitionString"]) or "Call" in str(machine["DefinitionString"])
    assert set(machine["DefinitionSubstitutions"]) == {"OrdersFunctionArn", "TableName"}
    # The original template is left untouched by the preparation.
    assert loaded.original["Resources"]["OrdersFunction"]["Properties"]["CodeUri"] == "src/orders/"


def test_sam_transform_errors_list_each_cause(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: s3://b/k\n"
        "      Handler: app.h\n      Runtime: python3.12\n      Events:\n        E:\n          Type: Bogus\n",
    )
    with pytest.raises(UserError) as caught:
        load_template(path, parameter_values={}, region="us-east-1", account_id="123456789012", stack_name="t")
    assert "SAM transform failed" in caught.value.message
    assert "Fn" in caught.value.message and "Bogus" in caught.value.message
    assert caught.value.where == str(path)


def test_missing_code_folder_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "template.yaml",
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: nowhere/\n"
        "      Handler: app.h\n      Runtime: python3.12\n",
    )
    with pytest.raises(UserError, match="code folder 'nowhere/' does not exist"):
        load_template(path, parameter_values={}, region="us-east-1", account_id="123456789012", stack_name="t")


def test_managed_policy_loader_never_calls_iam() -> None:
    loader = ManagedPolicyLoader()
    assert loader.load()["AWSXrayWriteOnlyAccess"] == "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
    assert loader.load()["AWSLambdaSQSQueueExecutionRole"] == (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
    )


# --- .zip code packages ------------------------------------------------------------------------------------------

ZIP_TEMPLATE = """Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code}
      Handler: app.lambda_handler
      Runtime: python3.12
  Plain:
    Type: AWS::Lambda::Function
    Properties:
      Code: {code}
      Handler: app.lambda_handler
      Runtime: python3.12
      Role: arn:aws:iam::123456789012:role/r
"""


def _zip(path: Path, files: dict[str, str]) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name == "bootstrap" else 0o644) << 16
            archive.writestr(info, text)
    return path


def _load(path: Path):
    return load_template(path, parameter_values={}, region="us-east-1", account_id="123456789012", stack_name="z")


def test_a_local_zip_code_uri_is_unpacked_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a function whose CodeUri is a .zip package (as `sam build --use-container` or a CI step leaves one)
    monkeypatch.setenv("LAMBDALAB_CACHE_DIR", str(tmp_path / "cache"))
    _zip(
        tmp_path / "src" / "index.zip",
        {"app.py": "def lambda_handler(e, c):\n    return 1\n", "bootstrap": "#!/bin/sh\n"},
    )
    template = write(tmp_path, "template.yaml", ZIP_TEMPLATE.format(code="src/index.zip"))
    # WHEN it is loaded twice
    first, second = _load(template), _load(template)
    # THEN both functions run from one unpacked folder under the cache, keyed by the archive's hash
    folder = first.code_dirs["Fn"]
    assert folder == first.code_dirs["Plain"] == second.code_dirs["Fn"]
    assert folder.parent == tmp_path / "cache" / "code"
    assert (folder / "app.py").read_text().startswith("def lambda_handler")
    assert (folder / "bootstrap").stat().st_mode & 0o111  # executable bits kept
    # AND a changed archive is a new folder
    _zip(tmp_path / "src" / "index.zip", {"app.py": "def lambda_handler(e, c):\n    return 2\n"})
    assert _load(template).code_dirs["Fn"] != folder


def test_a_zip_that_escapes_its_folder_or_a_file_that_is_no_zip_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDALAB_CACHE_DIR", str(tmp_path / "cache"))
    _zip(tmp_path / "evil.zip", {"../outside.py": "x = 1\n"})
    template = write(tmp_path, "template.yaml", ZIP_TEMPLATE.format(code="evil.zip"))
    with pytest.raises(UserError, match="points outside the package"):
        _load(template)
    assert not (tmp_path / "cache" / "outside.py").exists()
    (tmp_path / "notes.txt").write_text("not code")
    template = write(tmp_path, "template.yaml", ZIP_TEMPLATE.format(code="notes.txt"))
    with pytest.raises(UserError, match=r"is a file but not a \.zip archive"):
        _load(template)
    template = write(tmp_path, "template.yaml", ZIP_TEMPLATE.format(code="missing.zip"))
    with pytest.raises(UserError, match=r"code folder .missing\.zip. does not exist"):
        _load(template)
