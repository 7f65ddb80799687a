"""Transform the SAM template to CloudFormation offline, in process, the way `sam deploy` would."""

import copy
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

LOG = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
OFFLINE_BUCKET = "lambdalab-offline-artifacts"

# The managed policies SAM attaches for the features the template uses. SAM CLI asks IAM for this map;
# offline we give it the public ARNs of the AWS managed policies instead.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
    "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    "AmazonAPIGatewayPushToCloudWatchLogs": (
        "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    ),
}


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation short-form tags (!Ref, !Sub, !GetAtt ...) as their long form."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The SAM template as a dict, short-form tags expanded."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)


def code_digest(folder: Path) -> str:
    """A sha256 over the names and bytes of every file in `folder` (caches excluded)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def package_offline(template: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """What `sam package` does, without uploading: local `CodeUri` folders become S3 URIs named by a digest of their
    content (so AutoPublishAlias still publishes a new version when code changes), and each state machine's local
    `DefinitionUri` is inlined as `Definition`."""
    result = copy.deepcopy(template)
    for logical_id, resource in result.get("Resources", {}).items():
        props = resource.get("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            folder = base_dir / props["CodeUri"]
            if not folder.is_dir():
                raise FileNotFoundError(f"{logical_id}: CodeUri {props['CodeUri']} is not a folder under {base_dir}")
            props["CodeUri"] = f"s3://{OFFLINE_BUCKET}/{folder.name}/{code_digest(folder)}.zip"
        if kind == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            path = base_dir / props.pop("DefinitionUri")
            props["Definition"] = json.loads(path.read_text(encoding="utf-8"))
    return result


def transform(
    template: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> dict[str, Any]:
    """Transform `template` (default: the lab's template.yaml) to CloudFormation without calling AWS."""
    source = package_offline(template if template is not None else load_template(), TEMPLATE.parent)
    values: dict[str, Any] = {"AWS::Region": region, "AWS::AccountId": account_id, **(parameters or {})}
    translator = Translator(MANAGED_POLICIES, Parser(), boto_session=boto3.session.Session(region_name=region))
    return translator.translate(source, parameter_values=values, get_managed_policy_map=lambda: MANAGED_POLICIES)


NO_VALUE = object()


class Resolver:
    """Evaluate a transformed template's intrinsics against parameter values, for assertions in tests.

    Ref of a parameter gives its value (override, else default); Ref of a resource gives "<LogicalId>"; GetAtt gives
    "<LogicalId>.<Attribute>"; If, Equals, Not, And, Or, Sub and Join are evaluated. Anything else raises.
    """

    def __init__(self, template: dict[str, Any], overrides: dict[str, Any] | None = None) -> None:
        self.template = template
        params = template.get("Parameters", {})
        self.values: dict[str, Any] = {name: spec.get("Default") for name, spec in params.items()}
        self.values.update(overrides or {})
        self.values.update(
            {
                "AWS::Region": DEFAULT_REGION,
                "AWS::AccountId": DEFAULT_ACCOUNT_ID,
                "AWS::Partition": "aws",
                "AWS::StackName": "lambda-concurrency-lab",
                "AWS::URLSuffix": "amazonaws.com",
            }
        )
        self.conditions = {name: self.resolve(expr) for name, expr in template.get("Conditions", {}).items()}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.values:
            return self.values[name]
        if name in self.template.get("Resources", {}):
            return f"<{name}>"
        raise KeyError(f"Ref to unknown name {name}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                target = arg if isinstance(arg, list) else arg.split(".", 1)
                return f"<{target[0]}.{target[1]}>"
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self.resolve(if_true if self.conditions[name] else if_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(p) for p in self.resolve(parts))
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else arg
                local = {k: self.resolve(v) for k, v in extra.items()}
                return self._substitute(text, local)
            if key.startswith("Fn::"):
                raise ValueError(f"unsupported intrinsic {key}")
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not NO_VALUE}

    def _substitute(self, text: str, local: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return f"<{logical_id}.{attribute}>"
            return str(self.ref(name))

        return re.sub(r"\$\{([^!}][^}]*)\}", one, text)

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resolved Properties of a resource."""
        return self.resolve(self.template["Resources"][logical_id].get("Properties", {}))

    def exists(self, logical_id: str) -> bool:
        """Whether the resource is created under the current parameter values."""
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or bool(self.conditions[condition])
