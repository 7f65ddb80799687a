"""CloudFormation intrinsic functions and conditions, resolved against parameters and created resources."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger(__name__)


class _NoValue:
    """What `Ref: AWS::NoValue` resolves to: the enclosing key or list item is removed."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class IntrinsicError(Exception):
    """An intrinsic that cannot be resolved; `path` is where inside the resource (e.g. Properties.Environment...)."""

    def __init__(self, message: str, path: str = "") -> None:
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class MissingResource(IntrinsicError):
    """A reference to a resource that exists in the template but was not created (unsupported or skipped)."""

    def __init__(self, message: str, path: str, logical_id: str) -> None:
        super().__init__(message, path)
        self.logical_id = logical_id


@dataclass
class ResourceFacts:
    """What intrinsics need from a created resource: Ref's value and GetAtt's attributes."""

    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scope:
    """Everything an intrinsic can refer to."""

    parameters: dict[str, Any]
    pseudo: dict[str, Any]
    mappings: dict[str, Any] = field(default_factory=dict)
    condition_definitions: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, ResourceFacts] = field(default_factory=dict)  # created so far
    declared_resources: dict[str, str] = field(default_factory=dict)  # logical id → type, every active resource
    region: str = "us-east-1"
    inactive_resources: dict[str, str] = field(default_factory=dict)  # logical id → its false Condition
    # Fn::ImportValue: export name → value, from the other stacks in the same local cloud; None: no such registry
    exports: Mapping[str, str] | None = None


def pseudo_parameters(*, region: str, account_id: str, stack_name: str, stack_id: str) -> dict[str, Any]:
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::StackName": stack_name,
        "AWS::StackId": stack_id,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
    }


# What CloudFormation lists when a template uses a function it does not know. [CloudFormation error text]
SUPPORTED_FUNCTIONS = (
    "Fn::Base64, Fn::GetAtt, Fn::GetAZs, Fn::ImportValue, Fn::Join, Fn::Split, Fn::FindInMap, Fn::Select, Ref, "
    "Fn::Equals, Fn::If, Fn::Not, Condition, Fn::And, Fn::Or, Fn::Contains, Fn::EachMemberEquals, "
    "Fn::EachMemberIn, Fn::ValueOf, Fn::ValueOfAll, Fn::RefAll, Fn::Sub, Fn::Cidr"
)
PLACEHOLDER_PREFIX = "lambdalab-not-created-"
# Types whose Ref is an ARN (CloudFormation resource reference, "Return values"): a placeholder for one of them is
# ARN-shaped too, so a policy that names it in Resource stays a valid policy.
REF_IS_ARN = frozenset({
    "AWS::StepFunctions::StateMachine", "AWS::StepFunctions::Activity", "AWS::SNS::Topic", "AWS::Lambda::Version",
    "AWS::Lambda::Alias", "AWS::IAM::ManagedPolicy", "AWS::SecretsManager::Secret", "AWS::CloudFormation::Stack",
    "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::ElasticLoadBalancingV2::Listener", "AWS::ECS::TaskDefinition", "AWS::Batch::JobQueue",
    "AWS::Batch::JobDefinition", "AWS::AppSync::GraphQLApi",
})  # fmt: skip


def availability_zones(region: str) -> list[str]:
    """Fn::GetAZs: the Region's zones as moto's EC2 lists them (us-east-1 has six), else three made-up ones."""
    try:
        from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
    except ImportError:  # pragma: no cover - moto is a dependency
        return [f"{region}{zone}" for zone in "abc"]
    zones = RegionsAndZonesBackend.zones.get(region)
    return [zone.name for zone in zones] if zones else [f"{region}{zone}" for zone in "abc"]


# CloudFormation's service name → the ARN's service prefix, where they differ.
_ARN_SERVICE = {
    "StepFunctions": "states", "ElasticLoadBalancingV2": "elasticloadbalancing", "ApiGatewayV2": "apigateway",
    "ApiGateway": "apigateway", "KinesisFirehose": "firehose", "CertificateManager": "acm",
}  # fmt: skip


class _PlaceholderAttributes(dict[str, Any]):
    """Fn::GetAtt of a resource that was not created: every attribute reads as a named placeholder."""

    def __init__(self, logical_id: str, kind: str, region: str, account: str) -> None:
        super().__init__()
        self._logical_id = logical_id
        service = kind.split("::")[1] if kind.count("::") == 2 else "resource"
        self._service = _ARN_SERVICE.get(service, service.lower())
        self._region, self._account = region, account

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        name = f"{PLACEHOLDER_PREFIX}{self._logical_id}"
        if key.endswith("Arn") and "." not in key:  # Arn, StreamArn, TopicArn; not a nested stack's Outputs.XArn
            return f"arn:aws:{self._service}:{self._region}:{self._account}:{name}"
        return f"{name}.{key}"


def intrinsic_name(value: Any) -> str | None:
    """The function name if `value` is an intrinsic call ({"Ref": ...} or {"Fn::X": ...}), else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key,) = value
        if key == "Ref" or (isinstance(key, str) and key.startswith("Fn::")):
            return key
    return None


def _text(value: Any, path: str, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise IntrinsicError(f"{what} must be a string, got {json.dumps(value, default=str)}", path)


def _as_list(value: Any, path: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise IntrinsicError(f"{what} must be a list, got {json.dumps(value, default=str)}", path)
    return value


def split_getatt(argument: Any, path: str) -> tuple[str, Any]:
    """`Fn::GetAtt` accepts [Resource, Attribute] or "Resource.Attribute"."""
    if isinstance(argument, str) and "." in argument:
        logical_id, attribute = argument.split(".", 1)
        return logical_id, attribute
    if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str):
        return argument[0], argument[1]
    raise IntrinsicError(f"Fn::GetAtt needs [LogicalId, Attribute], got {json.dumps(argument, default=str)}", path)


class Resolver:
    """Resolves intrinsics and conditions in a scope. Conditions are evaluated once and memoised."""

    def __init__(self, scope: Scope, *, lenient: bool = False) -> None:
        """`lenient`: a reference to a resource that was not created resolves to a named placeholder (and the
        logical id is added to `missing`) instead of raising MissingResource."""
        self.scope = scope
        self.lenient = lenient
        self.missing: list[str] = []
        self._conditions: dict[str, bool] = {}
        self._evaluating: list[str] = []
        self._functions: dict[str, Callable[[Any, str], Any]] = {
            "Ref": self._ref,
            "Fn::GetAtt": self._getatt,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::FindInMap": self._find_in_map,
            "Fn::GetAZs": self._get_azs,
            "Fn::Base64": self._base64,
            "Fn::ToJsonString": self._to_json_string,
            "Fn::Length": self._length,
            "Fn::Cidr": self._cidr,
            "Fn::ImportValue": self._import_value,
            "Fn::Equals": self._bool_function,
            "Fn::Not": self._bool_function,
            "Fn::And": self._bool_function,
            "Fn::Or": self._bool_function,
        }

    # --- conditions ---------------------------------------------------------------------------------------------

    def condition(self, name: str, path: str = "") -> bool:
        """The value of a named condition from the template's Conditions section."""
        if name in self._conditions:
            return self._conditions[name]
        if name not in self.scope.condition_definitions:
            raise IntrinsicError(f"condition {name!r} is not defined in Conditions", path)
        if name in self._evaluating:
            cycle = " → ".join([*self._evaluating[self._evaluating.index(name) :], name])
            raise IntrinsicError(f"conditions refer to each other in a cycle: {cycle}", path)
        self._evaluating.append(name)
        try:
            value = self.evaluate_condition(self.scope.condition_definitions[name], f"Conditions.{name}")
        finally:
            self._evaluating.pop()
        self._conditions[name] = value
        return value

    def all_conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self.scope.condition_definitions}

    def evaluate_condition(self, expression: Any, path: str) -> bool:
        if isinstance(expression, dict) and len(expression) == 1 and "Condition" in expression:
            return self.condition(_text(expression["Condition"], path, "Condition"), path)
        name = intrinsic_name(expression)
        if name == "Fn::Equals":
            args = _as_list(expression[name], f"{path}.Fn::Equals", "Fn::Equals")
            if len(args) != 2:
                raise IntrinsicError("Fn::Equals needs exactly two values", f"{path}.Fn::Equals")
            left, right = (self.resolve(arg, f"{path}.Fn::Equals[{i}]") for i, arg in enumerate(args))
            return _comparable(left) == _comparable(right)
        if name == "Fn::Not":
            args = _as_list(expression[name], f"{path}.Fn::Not", "Fn::Not")
            if len(args) != 1:
                raise IntrinsicError("Fn::Not needs exactly one condition", f"{path}.Fn::Not")
            return not self.evaluate_condition(args[0], f"{path}.Fn::Not[0]")
        if name in ("Fn::And", "Fn::Or"):
            args = _as_list(expression[name], f"{path}.{name}", name)
            if not 2 <= len(args) <= 10:
                raise IntrinsicError(f"{name} needs between 2 and 10 conditions", f"{path}.{name}")
            values = [self.evaluate_condition(arg, f"{path}.{name}[{i}]") for i, arg in enumerate(args)]
            return all(values) if name == "Fn::And" else any(values)
        if isinstance(expression, bool):
            return expression
        if isinstance(expression, str) and expression.lower() in ("true", "false"):
            return expression.lower() == "true"
        raise IntrinsicError(f"not a condition: {json.dumps(expression, default=str)}", path)

    # --- values ------------------------------------------------------------------------------------------------

    def resolve(self, value: Any, path: str = "") -> Any:
        """Resolve every intrinsic inside `value`; AWS::NoValue removes keys and list items."""
        name = intrinsic_name(value)
        if name is not None:
            function = self._functions.get(name)
            if function is None:
                raise IntrinsicError(self._unsupported(name), path)
            return function(value[name], f"{path}.{name}" if path else name)
        if isinstance(value, dict):
            resolved: dict[str, Any] = {}
            for key, item in value.items():
                out = self.resolve(item, f"{path}.{key}" if path else str(key))
                if out is not NO_VALUE:
                    resolved[key] = out
            return resolved
        if isinstance(value, list):
            items = [self.resolve(item, f"{path}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    @staticmethod
    def _unsupported(name: str) -> str:
        if name == "Fn::Transform":
            return "Fn::Transform (a macro) is not supported by the local cloud; only AWS::Include is expanded"
        if name == "Fn::ForEach" or name.startswith("Fn::ForEach::"):
            return "Fn::ForEach (AWS::LanguageExtensions) is not supported by the local cloud"
        if name in (
            "Fn::Contains",
            "Fn::EachMemberEquals",
            "Fn::EachMemberIn",
            "Fn::ValueOf",
            "Fn::ValueOfAll",
            "Fn::RefAll",
        ):
            return f"Template error: {name} can only be used in the Rules section"
        return f"Template format error: Encountered unsupported function: {name} Supported functions are: " + (
            f"[{SUPPORTED_FUNCTIONS}]"
        )

    def _ref(self, argument: Any, path: str) -> Any:
        target = _text(self.resolve(argument, path), path, "Ref")
        if target == "AWS::NoValue":
            return NO_VALUE
        if target in self.scope.pseudo:
            return self.scope.pseudo[target]
        if target in self.scope.parameters:
            return self.scope.parameters[target]
        return self._resource(target, path, "Ref").physical_id

    def _resource(self, logical_id: str, path: str, how: str) -> ResourceFacts:
        facts = self.scope.resources.get(logical_id)
        if facts is not None:
            return facts
        if logical_id in self.scope.declared_resources:
            kind = self.scope.declared_resources[logical_id]
            if self.lenient:
                self.missing.append(logical_id)
                account = str(self.scope.pseudo.get("AWS::AccountId", ""))
                attributes = _PlaceholderAttributes(logical_id, kind, self.scope.region, account)
                physical = attributes["Arn"] if kind in REF_IS_ARN else f"{PLACEHOLDER_PREFIX}{logical_id}"
                return ResourceFacts(physical, attributes)
            raise MissingResource(f"{how} to {logical_id} ({kind}), which was not created", path, logical_id)
        block = "Outputs" if path.startswith("Outputs.") else "Resources"
        hint = ""
        if logical_id in self.scope.inactive_resources:
            hint = f" ({logical_id} is not created: its Condition {self.scope.inactive_resources[logical_id]} is false)"
        elif how == "Ref" and logical_id not in self.scope.parameters:
            hint = " (no parameter, pseudo parameter or resource has that name)"
        raise IntrinsicError(
            f"Template format error: Unresolved resource dependencies [{logical_id}] in the {block} block of the "
            f"template{hint}",
            path,
        )

    def _getatt(self, argument: Any, path: str) -> Any:
        logical_id, attribute = split_getatt(argument, path)
        attribute = _text(self.resolve(attribute, path), path, "Fn::GetAtt attribute")
        facts = self._resource(logical_id, path, "Fn::GetAtt")
        if attribute not in facts.attributes:
            kind = self.scope.declared_resources.get(logical_id, "resource")
            known = ", ".join(sorted(facts.attributes)) or "none"
            raise IntrinsicError(
                f"Template error: resource {logical_id} does not support attribute type {attribute} in Fn::GetAtt "
                f"({kind}; the local cloud knows: {known})",
                path,
            )
        return facts.attributes[attribute]

    def _sub_variable(self, name: str, variables: Mapping[str, Any], path: str) -> str:
        name = name.strip()
        if name in variables:
            return _text(variables[name], path, f"Fn::Sub variable {name}")
        if name in self.scope.pseudo or name in self.scope.parameters:
            value = self._ref(name, path)
            if isinstance(value, list):
                raise IntrinsicError(f"${{{name}}} is a list; Fn::Sub needs a string", path)
            return _text(value, path, name)
        if "." in name:
            value = self._getatt(name, path)
            return _text(value, path, f"${{{name}}}")
        return _text(self._resource(name, path, "Fn::Sub").physical_id, path, name)

    def _sub(self, argument: Any, path: str) -> str:
        if isinstance(argument, list):
            if len(argument) != 2 or not isinstance(argument[1], dict):
                raise IntrinsicError("Fn::Sub needs a string or [string, {variables}]", path)
            template = argument[0]
            variables = {k: self.resolve(v, f"{path}[1].{k}") for k, v in argument[1].items()}
        else:
            template, variables = argument, {}
        if not isinstance(template, str):
            template = _text(self.resolve(template, path), path, "Fn::Sub string")

        def replace(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            return self._sub_variable(inner, variables, path)

        return _SUB_VARIABLE.sub(replace, template)

    def _join(self, argument: Any, path: str) -> str:
        args = _as_list(argument, path, "Fn::Join")
        if len(args) != 2:
            raise IntrinsicError("Fn::Join needs [delimiter, [values]]", path)
        delimiter = _text(self.resolve(args[0], f"{path}[0]"), path, "Fn::Join delimiter")
        values = _as_list(self.resolve(args[1], f"{path}[1]"), f"{path}[1]", "Fn::Join values")
        return delimiter.join(_text(v, f"{path}[1]", "Fn::Join value") for v in values)

    def _select(self, argument: Any, path: str) -> Any:
        args = _as_list(argument, path, "Fn::Select")
        if len(args) != 2:
            raise IntrinsicError("Fn::Select needs [index, [values]]", path)
        index_text = _text(self.resolve(args[0], f"{path}[0]"), path, "Fn::Select index")
        try:
            index = int(index_text)
        except ValueError:
            raise IntrinsicError(f"Fn::Select index {index_text!r} is not an integer", path) from None
        values = _as_list(self.resolve(args[1], f"{path}[1]"), f"{path}[1]", "Fn::Select values")
        if not 0 <= index < len(values):
            raise IntrinsicError(
                f"Template error: Fn::Select cannot select nonexistent value at index {index} "
                f"(the list has {len(values)})",
                path,
            )
        return values[index]

    def _split(self, argument: Any, path: str) -> list[str]:
        args = _as_list(argument, path, "Fn::Split")
        if len(args) != 2:
            raise IntrinsicError("Fn::Split needs [delimiter, string]", path)
        delimiter = _text(self.resolve(args[0], f"{path}[0]"), path, "Fn::Split delimiter")
        source = _text(self.resolve(args[1], f"{path}[1]"), path, "Fn::Split string")
        if not delimiter:
            raise IntrinsicError("Fn::Split delimiter must not be empty", path)
        return source.split(delimiter)

    def _if(self, argument: Any, path: str) -> Any:
        args = _as_list(argument, path, "Fn::If")
        if len(args) != 3:
            raise IntrinsicError("Fn::If needs [condition, value if true, value if false]", path)
        chosen = 1 if self.condition(_text(args[0], path, "Fn::If condition"), path) else 2
        return self.resolve(args[chosen], f"{path}[{chosen}]")

    def _find_in_map(self, argument: Any, path: str) -> Any:
        args = _as_list(argument, path, "Fn::FindInMap")
        if len(args) not in (3, 4):
            raise IntrinsicError("Fn::FindInMap needs [map, top-level key, second-level key]", path)
        names = [_text(self.resolve(arg, f"{path}[{i}]"), path, "Fn::FindInMap key") for i, arg in enumerate(args[:3])]
        default = None
        if len(args) == 4:  # AWS::LanguageExtensions: {"DefaultValue": ...}
            if not isinstance(args[3], dict) or "DefaultValue" not in args[3]:
                raise IntrinsicError("the fourth Fn::FindInMap argument must be {DefaultValue: ...}", path)
            default = args[3]["DefaultValue"]
        mapping = self.scope.mappings.get(names[0])
        if mapping is None and default is None:
            raise IntrinsicError(
                f"Template error: Mapping named '{names[0]}' is not present in the 'Mappings' section", path
            )
        top = mapping.get(names[1]) if isinstance(mapping, dict) else None
        found = top.get(names[2]) if isinstance(top, dict) else None
        if found is None:
            if default is not None:
                return self.resolve(default, f"{path}[3]")
            raise IntrinsicError(f"Template error: Unable to get mapping for {names[0]}::{names[1]}::{names[2]}", path)
        return found

    def _get_azs(self, argument: Any, path: str) -> list[str]:
        region = _text(self.resolve(argument, path), path, "Fn::GetAZs region") or self.scope.region
        return availability_zones(region)

    def _import_value(self, argument: Any, path: str) -> str:
        """The value another stack exported under that name; the local cloud knows the stacks deployed into it."""
        name = _text(self.resolve(argument, path), path, "Fn::ImportValue name")
        exports = self.scope.exports
        if exports is not None and name in exports:
            return exports[name]
        where = "in this local cloud" if exports is not None else "(no other stacks are known here)"
        raise IntrinsicError(
            f"No export named {name} found {where}: deploy the stack that exports it first, into the same local cloud",
            path,
        )

    def _base64(self, argument: Any, path: str) -> str:
        text = _text(self.resolve(argument, path), path, "Fn::Base64 value")
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    def _to_json_string(self, argument: Any, path: str) -> str:
        value = self.resolve(argument, path)
        if not isinstance(value, (dict, list)):
            raise IntrinsicError("Fn::ToJsonString needs an object or a list", path)
        return json.dumps(value, separators=(",", ":"))

    def _length(self, argument: Any, path: str) -> int:
        return len(_as_list(self.resolve(argument, path), path, "Fn::Length"))

    def _cidr(self, argument: Any, path: str) -> list[str]:
        args = _as_list(self.resolve(argument, path), path, "Fn::Cidr")
        if len(args) != 3:
            raise IntrinsicError("Fn::Cidr needs [ipBlock, count, cidrBits]", path)
        try:
            network = ipaddress.ip_network(str(args[0]), strict=False)
            count, bits = int(args[1]), int(args[2])
            subnets = network.subnets(new_prefix=network.max_prefixlen - bits)
            result = [str(next(subnets)) for _ in range(count)]
        except (ValueError, StopIteration) as exc:
            raise IntrinsicError(f"Fn::Cidr {args}: {exc or 'not enough addresses'}", path) from None
        return result

    def _bool_function(self, argument: Any, path: str) -> str:
        name = path.rsplit(".", 1)[-1]
        value = self.evaluate_condition({name: argument}, path.rsplit(".", 1)[0] if "." in path else "")
        return "true" if value else "false"

    # --- dependencies ------------------------------------------------------------------------------------------

    def references(self, value: Any) -> set[str]:
        """Names (parameters, pseudo parameters and logical ids) that `value` refers to, through the chosen Fn::If
        branches only."""
        found: set[str] = set()
        self._collect(value, found)
        return found

    def _collect(self, value: Any, found: set[str]) -> None:
        name = intrinsic_name(value)
        if name == "Ref" and isinstance(value[name], str):
            found.add(value[name])
            return
        if name == "Fn::GetAtt":
            try:
                logical_id, attribute = split_getatt(value[name], "")
            except IntrinsicError:
                return
            found.add(logical_id)
            self._collect(attribute, found)
            return
        if name == "Fn::Sub":
            argument = value[name]
            template, variables = (
                (argument[0], argument[1]) if isinstance(argument, list) and argument else (argument, {})
            )
            if isinstance(variables, dict):
                self._collect(list(variables.values()), found)
            if isinstance(template, str):
                for match in _SUB_VARIABLE.finditer(template):
                    inner = match.group(1).strip()
                    if inner.startswith("!") or (isinstance(variables, dict) and inner in variables):
                        continue
                    found.add(inner.split(".", 1)[0] if not inner.startswith("AWS::") else inner)
            else:
                self._collect(template, found)
            return
        if name == "Fn::If" and isinstance(value[name], list) and len(value[name]) == 3:
            try:
                chosen = 1 if self.condition(str(value[name][0])) else 2
            except IntrinsicError:
                self._collect(value[name][1:], found)
                return
            self._collect(value[name][chosen], found)
            return
        if isinstance(value, dict):
            for item in value.values():
                self._collect(item, found)
        elif isinstance(value, list):
            for item in value:
                self._collect(item, found)


def _comparable(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value
